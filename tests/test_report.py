import base64
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from semantoks.errors import SemantoksError
from semantoks.probes import run_probes
from semantoks.report import build_report
from semantoks.report.figures import exclusion_reasons

NETWORKS = ["Vis"] * 4 + ["SomMot"] * 3 + ["Default"] * 5


@pytest.fixture(scope="module")
def probe_outputs(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 40
    signal = rng.normal(size=n)
    subjects = [f"{i:02d}" for i in range(n)]
    meta = pd.DataFrame({"cohort": "demo", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    X = np.outer(signal, rng.normal(size=20)) + rng.normal(size=(n, 20))
    phenotypes = pd.DataFrame(
        {"subject": subjects, "group": np.where(signal > 0, "a", "b"), "score": signal, "site": "one"}
    )
    out = tmp_path_factory.mktemp("probes")
    specs = {"group": {"type": "binary"}, "score": {"type": "continuous"}, "site": {"type": "categorical"}}
    run_probes({"fc": (meta, X), "noise": (meta, rng.normal(size=(n, 8)))}, phenotypes, specs,
               n_repeats=3, n_permutations=5, out_dir=out)
    return out


@pytest.fixture()
def report_inputs(probe_outputs, tmp_path):
    rng = np.random.default_rng(1)
    steps = np.arange(0, 50, 5)
    log = pd.DataFrame({"step": steps, "lr": 1e-3 * np.ones(len(steps)), "loss_total": 3 - steps / 30,
                        "loss_compression": 2 - steps / 40, "loss_mtm": 1 - steps / 60})
    log.to_csv(tmp_path / "log.csv", index=False)
    manifest = pd.DataFrame({
        "cohort": "demo", "scan_id": [f"s{i}" for i in range(6)], "subject": list("aabbcc"),
        "mean_fd": [0.1, 0.2, 0.9, 0.15, 0.8, 0.12], "pct_censored": [5.0, 8.0, 60.0, 2.0, 55.0, 1.0],
        "included": [True, True, False, True, False, True],
        "reason": [None, None, "mean FD 0.9 mm above 0.5 mm", None, "mean FD 0.8 mm above 0.5 mm", None],
    })
    data = rng.normal(size=(50, len(NETWORKS)))
    data[:, 2] = np.nan
    return {
        "summary_tsv": probe_outputs / "summary.tsv",
        "phenotype_jsons": sorted(probe_outputs.glob("*.json")),
        "manifest": manifest,
        "log_csv": tmp_path / "log.csv",
        "example_scan": SimpleNamespace(cohort="demo", scan_id="sub-01_task-rest", data=data),
        "labels": pd.DataFrame({"index": range(1, 13), "name": [f"p{i}" for i in range(12)], "network": NETWORKS}),
        "out_html": tmp_path / "report" / "report.html",
    }


def embedded_pngs(page):
    return [base64.b64decode(chunk) for chunk in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]



def test_report_also_writes_each_figure_as_the_png_it_embeds(report_inputs, tmp_path):
    build_report(**report_inputs, figures_dir=tmp_path / "figures")
    written = {path.name: path.read_bytes() for path in (tmp_path / "figures").iterdir()}
    assert sorted(written) == ["QC_histograms.png", "connectivity_matrix.png", "pretraining_loss_curves.png",
                               "probe_results_per_phenotype.png"]
    assert sorted(written.values()) == sorted(embedded_pngs(report_inputs["out_html"].read_text()))

def test_report_embeds_every_figure_and_the_summary_table(report_inputs):
    build_report(**report_inputs, config_hash="abc123")
    page = report_inputs["out_html"].read_text()
    images = embedded_pngs(page)
    assert len(images) == 4 and all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    for alt in ("probe results per phenotype", "pretraining loss curves", "QC histograms", "connectivity matrix"):
        assert f'alt="{alt}"' in page
    summary = pd.read_csv(report_inputs["summary_tsv"], sep="\t", na_values=["n/a"], keep_default_na=False)
    row = summary[(summary["phenotype"] == "group") & (summary["feature_set"] == "fc")]
    accuracy = row[row["metric"] == "balanced_accuracy"].iloc[0]
    assert f"{accuracy['mean']:.3f} ± {accuracy['sd']:.3f}" in page
    assert f"p {accuracy['p_value']:.3f}" in page
    assert "only one class (one)" in page
    assert "abc123" in page and "scikit-learn" in page
    assert "4 scans included" not in page and "6 scans, 4 included and 2 excluded" in page


def test_report_without_pretraining_log_or_manifest_says_so(report_inputs):
    build_report(**{**report_inputs, "log_csv": None, "manifest": None, "example_scan": None})
    page = report_inputs["out_html"].read_text()
    assert len(embedded_pngs(page)) == 1
    assert "No pretraining log" in page and "No manifest given" in page and "No example scan given" in page


def test_report_reads_the_manifest_tsv_and_labels_tsv_written_by_the_dataset_stage(report_inputs, tmp_path):
    manifest_tsv = tmp_path / "manifest" / "atlas=Toy" / "cohort=demo" / "manifest.tsv"
    manifest_tsv.parent.mkdir(parents=True)
    report_inputs["manifest"].drop(columns="cohort").to_csv(manifest_tsv, sep="\t", index=False, na_rep="n/a")
    labels_tsv = tmp_path / "labels.tsv"
    report_inputs["labels"].to_csv(labels_tsv, sep="\t", index=False)
    build_report(**{**report_inputs, "manifest": [manifest_tsv], "labels": labels_tsv})
    page = report_inputs["out_html"].read_text()
    assert len(embedded_pngs(page)) == 4 and "6 scans, 4 included" in page
    assert "<td>demo</td><td class='num'>6</td>" in page


def test_example_scan_and_atlas_labels_must_agree(report_inputs):
    with pytest.raises(SemantoksError, match="labels"):
        build_report(**{**report_inputs, "labels": report_inputs["labels"].iloc[:5]})
    assert not report_inputs["out_html"].exists()


def test_exclusion_reasons_group_sentences_that_differ_only_in_numbers(report_inputs):
    counts = exclusion_reasons(report_inputs["manifest"])
    assert counts.to_dict() == {"mean FD N mm above N mm": 2}


def test_report_shows_training_health_and_a_verdict_per_model(report_inputs, tmp_path):
    log = pd.read_csv(report_inputs["log_csv"])
    # health measured every other logging step; the last row is healthy but the first ones were still at init
    measured = np.arange(len(log)) % 2 == 1
    log["cka_init"] = np.where(measured, np.linspace(1.0, 0.6, len(log)), np.nan)
    log["drift_r"] = np.where(measured, np.linspace(1.0, 0.5, len(log)), np.nan)
    log["rankme"] = np.where(measured, 12.0, np.nan)
    log["token_cosine"] = np.where(measured, 0.3, np.nan)
    log["cls_cosine"] = np.where(measured, np.linspace(0.999, 0.7, len(log)), np.nan)
    log.to_csv(tmp_path / "health_log.csv", index=False)
    build_report(**{**report_inputs, "log_csv": tmp_path / "health_log.csv"})
    page = report_inputs["out_html"].read_text()
    assert len(embedded_pngs(page)) == 5 and 'alt="training health curves"' in page
    assert "<b>model</b>: <b>learning</b> at step 45: linear CKA with the step-0 embeddings is 0.600" in page
    assert "<b>random_init</b>: indistinguishable from its random init, by definition" in page

    log.loc[log.index[-1], "cka_init"] = 0.97
    log.to_csv(tmp_path / "health_log.csv", index=False)
    build_report(**{**report_inputs, "log_csv": tmp_path / "health_log.csv"})
    assert "<b>indistinguishable from its random init</b> at step 45" in report_inputs["out_html"].read_text()


def test_report_without_health_columns_gives_no_model_verdict(report_inputs):
    build_report(**report_inputs)
    page = report_inputs["out_html"].read_text()
    assert "has no training-health columns" in page and "gets no verdict" in page
    assert "<b>random_init</b>: indistinguishable" in page


def test_report_imports_without_torch():
    """The report runs in envs/pipeline.yaml, which has no torch: the health verdict must not need it."""
    import subprocess
    import sys

    code = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import semantoks.report\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_states_which_paired_differences_are_significant(report_inputs):
    page = build_report(**report_inputs).read_text()
    section = page.split("<h3>Paired comparisons</h3>")[1].split("<h2>")[0]
    # fc carries the signal and noise does not: the paired test says so in words
    assert re.search(r"fc beats noise on group \(balanced accuracy [\d.]+ vs [\d.]+, Holm-corrected p = [\d.]+\)", section)
    assert "noise vs fc" in section and "Nadeau-Bengio" in section


def test_report_says_when_no_paired_difference_is_significant(report_inputs):
    records = [json.loads(path.read_text()) for path in report_inputs["phenotype_jsons"]]
    for record in records:
        for row in record.get("paired", []):
            row["p_corrected"] = 0.5
    paths = []
    for record in records:
        path = report_inputs["out_html"].parent.parent / f"{record['phenotype']}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    page = build_report(**{**report_inputs, "phenotype_jsons": paths}).read_text()
    assert "No difference between feature sets is significant at Holm-corrected p &lt; 0.05." in page


def test_report_shows_language_sets_probed_beside_the_main_records_as_one_phenotype(report_inputs, tmp_path):
    from semantoks.probes import expand_phenotype_specs, probe_phenotype, summarise

    rng = np.random.default_rng(2)
    main_json = report_inputs["summary_tsv"].parent / "group.json"
    main = json.loads(main_json.read_text())
    subjects = [f"{i:02d}" for i in range(40)]
    meta = pd.DataFrame({"cohort": "demo", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    # the probe_outputs fixture's labels (its first draw), so both records split the same subjects alike
    signal = np.random.default_rng(0).normal(size=40)
    phenotypes = pd.DataFrame({"subject": subjects, "group": np.where(signal > 0, "a", "b")})
    spec = expand_phenotype_specs({"group": {"type": "binary"}})["group"]
    beside = tmp_path / "language" / "group.json"
    probe_phenotype({"model_aligned": (meta, rng.normal(size=(40, 6)))}, phenotypes, "group", spec,
                    **{k: main["settings"][k] for k in ("n_repeats", "n_permutations", "seed")},
                    out_json=beside, reference=main)
    jsons = [*report_inputs["phenotype_jsons"], beside]
    summarise(jsons, tmp_path / "summary.tsv")
    page = build_report(**{**report_inputs, "summary_tsv": tmp_path / "summary.tsv", "phenotype_jsons": jsons}).read_text()
    assert "2 of 3 phenotypes probed with 3 feature sets (fc, model_aligned, noise)" in page
    assert "<td>model_aligned</td>" in page and "model_aligned vs fc" in page


def _seeded_probe_jsons(out, model_signal, n=40, seeds=(0, 1, 2)):
    """Records of two phenotypes probed on 9 sets, model and random_init drawn at three seeds; fc carries the
    label, and the model carries it when `model_signal` (else it is noise)."""
    from semantoks.probes import probe_phenotype

    rng = np.random.default_rng(3)
    signal = rng.normal(size=n)
    subjects = [f"{i:02d}" for i in range(n)]
    meta = pd.DataFrame({"cohort": "demo", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    informative = lambda noise: np.outer(signal, rng.normal(size=12)) + noise * rng.normal(size=(n, 12))  # noqa: E731
    sets = {"fc": (meta, informative(1.0)), "network_fc": (meta, rng.normal(size=(n, 6)))}
    for name in ("dynamics", "fc_dynamics", "noise_c", "noise_a", "noise_b"):
        sets[name] = (meta, rng.normal(size=(n, 5)))
    for seed in seeds:
        sets[f"model@{seed}"] = (meta, informative(0.3) if model_signal else rng.normal(size=(n, 12)))
        sets[f"random_init@{seed}"] = (meta, rng.normal(size=(n, 12)))
    phenotypes = pd.DataFrame({"subject": subjects, "group": np.where(signal > 0, "a", "b"), "score": signal})
    paths = []
    for name, kind in (("group", "binary"), ("score", "continuous")):
        paths.append(out / f"{name}.json")
        probe_phenotype(sets, phenotypes, name, {"type": kind, "source": name}, n_repeats=5, n_permutations=5,
                        out_json=paths[-1])
    from semantoks.probes import summarise

    summarise(paths, out / "summary.tsv", out / "paired.tsv")
    return {"summary_tsv": out / "summary.tsv", "phenotype_jsons": paths}


@pytest.mark.parametrize("model_signal", [False, True])
def test_report_leads_with_the_model_against_its_best_baseline(report_inputs, tmp_path, model_signal):
    probes = _seeded_probe_jsons(tmp_path, model_signal)
    page = build_report(**{**report_inputs, **probes}).read_text()
    assert page.index("What pretraining bought") < page.index("<h2>Probe results</h2>")
    lead = page.split("What pretraining bought")[1].split("<h2>")[0]
    paired = pd.read_csv(tmp_path / "paired.tsv", sep="\t", na_values=["n/a"])
    pooled = paired.query("phenotype == 'score' and metric == 'r2' and a == 'model' and seed.isna()")
    best = pooled.loc[pooled["mean_b"].idxmax()]
    # the strongest baseline, not only random_init, with its Holm p and the model's seed range
    assert best["b"] == "fc" and f"fc {best['mean_b']:.3f}" in lead and f"{best['p_holm']:.3f}" in lead
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t", na_values=["n/a"])
    model = summary.query("phenotype == 'score' and metric == 'r2' and feature_set == 'model'").iloc[0]
    assert f"{model['mean']:.3f} [{model['seed_min']:.3f}, {model['seed_max']:.3f}]" in lead
    if model_signal:
        assert "beats baselines after Holm" in lead and "random_init" in lead.split("beats baselines")[1]
    else:
        assert "The pretrained model beats no baseline on any phenotype" in lead and ">better<" not in lead


def test_probe_figure_keeps_9_feature_sets_over_seeds_apart(tmp_path):
    from semantoks.report.figures import probe_bars_figure, to_png

    probes = _seeded_probe_jsons(tmp_path, model_signal=True)
    records = [json.loads(path.read_text()) for path in probes["phenotype_jsons"]]
    figure = probe_bars_figure(records)
    renderer = figure.canvas.get_renderer()
    texts = [t for ax in figure.axes for t in [*ax.get_yticklabels(), *ax.get_xticklabels(), ax.title, ax.xaxis.label]
             if t.get_text()]
    assert sum(t.get_text().startswith("model, 3 seeds  (p = ") for t in texts) == 2
    assert {t.get_text().split("  ")[0] for ax in figure.axes for t in ax.get_yticklabels()} >= {
        "fc", "network_fc", "dynamics", "fc_dynamics", "noise_c", "noise_a", "noise_b", "random_init, 3 seeds"}
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlaps = [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i)
                if boxes[i].overlaps(boxes[j])]
    assert overlaps == []
    (tmp_path / "probe_bars.png").write_bytes(to_png(figure))


def test_a_training_stopped_early_says_so_in_the_report(report_inputs):
    # a max_minutes stop read "over 164 steps", as if training had run its course
    log_csv = report_inputs["log_csv"]
    steps = int(pd.read_csv(log_csv)["step"].max())
    build_report(**report_inputs)
    assert f"over {steps} steps" in report_inputs["out_html"].read_text()
    log_csv.with_name("training.json").write_text(json.dumps(
        {"step": steps, "steps": 20000, "stopped_early": "the max_minutes budget of 225 minutes was spent"}))
    build_report(**report_inputs)
    assert (f"over {steps} of 20000 planned steps (training stopped early: the max_minutes budget of 225 minutes "
            "was spent)") in report_inputs["out_html"].read_text()
