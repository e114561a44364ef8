"""What a dry run schedules after one edit to a finished workflow: the edited stage and its downstream, nothing else.

One small workflow (.test/config_reruns) runs for real in a copy of the repository; each case edits one
module or one config key in that copy, dry-runs, compares the job list, then restores the edit. The same
finished run also makes `snakemake --report` (one real run serves both).
"""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import copy_workflow
import yaml

from semantoks.provenance import code_hash_for_script, imported_modules

CONFIG = ".test/config_reruns/config.yaml"

# each stage with everything downstream of it in the DAG
REPORT = {"report"}
SUMMARY = {"probe_summary"} | REPORT
PROBE_LANGUAGE = {"probe_language"} | SUMMARY
PROBES = {"probe_phenotype"} | PROBE_LANGUAGE
LANGUAGE_EVAL = {"language_eval"} | REPORT
CODES = {"codes"} | LANGUAGE_EVAL | PROBE_LANGUAGE
# the trained text-aligned tokenizer reads the aligned tokens and the text space
VQ = {"vq_codes"} | LANGUAGE_EVAL | PROBE_LANGUAGE
ALIGN = {"align"} | CODES | VQ
LANGUAGE = {"descriptors", "text_embed"} | ALIGN
EMBED = {"embed"} | PROBES | ALIGN
PRETRAIN = {"pretrain", "embed:model"} | PROBES | ALIGN
# the baseline feature rules of the registry (semantoks/features/registry.py)
BASELINE_FEATURES = {"connectivity_features", "dynamics_features"}
PARTITION = {"dataset_partition", "dataset_description", "phenotypes", "pretrain", "embed"} | BASELINE_FEATURES | PROBES | LANGUAGE
PARCELLATE = {"parcellate_run"} | PARTITION
SIMULATE = {"simulate_subject", "simulate_cohort_files"} | PARCELLATE
ATLAS = {"atlas", "simulate_subject"} | PARCELLATE

MODULE_EDITS = {
    "src/semantoks/report/figures.py": REPORT,
    # the probes package's face is lazy: its modules belong to the rules that import them, not to every user
    "src/semantoks/probes/estimators.py": {"language_eval"} | PROBES,
    "src/semantoks/probes/probe.py": PROBES,
    # the trained VQ tokenizer names its codes with the k-means codes' helpers
    "src/semantoks/language/codes.py": CODES | VQ,
    # the registry computes every baseline's rows and names the probes' sets; the descriptors use its series
    "src/semantoks/features/dynamics.py": BASELINE_FEATURES | PROBES | LANGUAGE,
    "src/semantoks/model/backbone.py": {"pretrain"} | EMBED,
    # the public API and the CLI sit above every stage: no rule imports them
    "src/semantoks/api.py": set(),
    "src/semantoks/cli.py": set(),
    "src/semantoks/parcellate.py": PARCELLATE,
    "src/semantoks/dataset/build.py": PARTITION,
    "src/semantoks/simulate/bold.py": SIMULATE,
    "src/semantoks/atlas/load.py": ATLAS,
    # fMRIPrep runs only for raw BIDS cohorts: the demo has none
    "src/semantoks/cohorts/fmriprep_runner.py": set(),
}
CONFIG_EDITS = {
    "probe.n_permutations": (("probe", "n_permutations"), 3, PROBES),
    "pretrain.steps": (("pretrain", "steps"), 3, PRETRAIN),
    "embed.n_crops": (("embed", "n_crops"), 2, EMBED),
    "denoise.strategy": (("denoise", "strategy"), "simple", PARCELLATE),
    "atlas.n_parcels": (("atlas", "n_parcels"), 200, ATLAS),
    "cohorts.demo.phenotypes": (("cohorts", "demo", "phenotypes", "columns", "site"), "categorical", {"phenotypes"} | PROBES | ALIGN),
    "cohorts.demo.simulate.seed": (("cohorts", "demo", "simulate", "seed"), 2, SIMULATE),
    "fmriprep.threads": (("fmriprep", "threads"), 4, set()),
    # a training budget or checkpoint cadence changes how the model is trained, not what: nothing reruns
    "pretrain.max_minutes": (("pretrain", "max_minutes"), 30, set()),
    # operational keys never retrain a finished model, flat or under extra; the scheduler's runtime neither
    "pretrain.runtime": (("pretrain", "runtime"), 60, set()),
    "pretrain.log_every": (("pretrain", "log_every"), 7, set()),
    "pretrain.extra.log_every": (("pretrain", "extra", "log_every"), 7, set()),
    "pretrain.extra.num_workers": (("pretrain", "extra", "num_workers"), 1, set()),
    # a recipe setting is a schema key of its own and retrains
    "pretrain.loss.masker": (("pretrain", "loss", "masker"), "mixed", PRETRAIN),
    # the same settings in another key order (as a config tool may write them) change nothing
    "key order": ((), None, set()),
}


def dry_run_jobs(workdir, templateflow_home, *args):
    """{rule: job count} of `snakemake -n` (grouped jobs included); embed jobs count per feature set ("embed:model")."""
    result = snakemake(workdir, templateflow_home, "-n", *args)
    jobs = {}
    for match in re.finditer(r"^ *(?:local)?rule (\w+):\n((?: {4,}.*\n)*)", result.stdout + result.stderr, re.M):
        rule, details = match.groups()
        if rule == "embed":
            rule = "embed:" + re.search(r"feature_set=(\w+)", details).group(1)
        if rule != "all":
            jobs[rule] = jobs.get(rule, 0) + 1
    return jobs


def snakemake(workdir, templateflow_home, *args):
    env = {**os.environ, "SEMANTOKS_CACHE_DIR": str(workdir / ".cache"), "PYTHONPATH": str(workdir / "src"),
           "TEMPLATEFLOW_HOME": str(templateflow_home)}
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", CONFIG, *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def expected_jobs(stages, all_jobs):
    """Every job of the named stages, counted as in the full workflow; "embed" stands for both feature sets."""
    names = {f"embed:{s}" for s in ("model", "random_init")} if "embed" in stages else set()
    names |= {stage for stage in stages if stage != "embed"}
    return {name: all_jobs[name] for name in names}


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory, repo_root, templateflow_home):
    workdir = tmp_path_factory.mktemp("reruns")
    copy_workflow(repo_root, workdir)
    all_jobs = dry_run_jobs(workdir, templateflow_home)
    snakemake(workdir, templateflow_home)
    assert dry_run_jobs(workdir, templateflow_home) == {}
    return workdir, all_jobs, templateflow_home


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(MODULE_EDITS))
def test_editing_a_module_reruns_only_the_stages_that_import_it(finished_workflow, module):
    workdir, all_jobs, templateflow_home = finished_workflow
    path = workdir / module
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        assert dry_run_jobs(workdir, templateflow_home) == expected_jobs(MODULE_EDITS[module], all_jobs)
    finally:
        path.write_text(original)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CONFIG_EDITS))
def test_editing_a_config_key_reruns_only_the_stages_that_use_it(finished_workflow, key):
    workdir, _, templateflow_home = finished_workflow
    keys, value, stages = CONFIG_EDITS[key]
    path = workdir / CONFIG
    original = path.read_text()
    config = yaml.safe_load(original)
    if keys:
        section = config
        for part in keys[:-1]:
            section = section.setdefault(part, {})
        section[keys[-1]] = value
    path.write_text(yaml.safe_dump(config, sort_keys=not keys))
    try:
        # counted in the edited workflow: a new simulation seed plans other runs
        all_jobs = dry_run_jobs(workdir, templateflow_home, "--forceall") if stages else {}
        assert dry_run_jobs(workdir, templateflow_home) == expected_jobs(stages, all_jobs)
    finally:
        path.write_text(original)


def test_code_hash_follows_imports_transitively_and_ignores_unimported_modules(tmp_path, monkeypatch):
    import semantoks.provenance as provenance

    package = tmp_path / "semantoks"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .deep import value\n")
    (package / "sub" / "deep.py").write_text("from semantoks import leaf\nvalue = 1\n")
    (package / "leaf.py").write_text("")
    (package / "unrelated.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("import os\nfrom semantoks.sub import value\n")
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", package)
    provenance._direct_imports.cache_clear()
    assert {p.relative_to(package).as_posix() for p in imported_modules(script)} == {
        "__init__.py", "sub/__init__.py", "sub/deep.py", "leaf.py"}
    before = code_hash_for_script(script)
    (package / "unrelated.py").write_text("# edited\n")
    provenance._direct_imports.cache_clear()
    assert code_hash_for_script(script) == before
    (package / "leaf.py").write_text("# edited\n")
    provenance._direct_imports.cache_clear()
    assert code_hash_for_script(script) != before
    provenance._direct_imports.cache_clear()


@pytest.mark.slow
def test_snakemake_report_zip_holds_the_html_report_the_probe_table_and_every_figure(finished_workflow, tmp_path):
    workdir, _, templateflow_home = finished_workflow
    snakemake(workdir, templateflow_home, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        names = archive.namelist()
        pages = "".join(archive.read(name).decode("utf-8", "replace") for name in names if name.endswith((".html", ".js")))
    basenames = {Path(name).name for name in names}
    assert {"report.html", "summary.tsv", "probe_results_per_phenotype.png", "pretraining_loss_curves.png",
            "QC_histograms.png", "connectivity_matrix.png"} <= basenames
    for caption in ("report.rst", "probe_summary.rst", "figures.rst"):
        first_line = (workdir / "workflow" / "report" / caption).read_text().splitlines()[0]
        assert first_line.split(":")[0] in pages


@pytest.mark.slow
def test_a_new_pretraining_seed_trains_and_embeds_only_that_seed(finished_workflow):
    workdir, _, templateflow_home = finished_workflow
    path = workdir / CONFIG
    original = path.read_text()
    config = yaml.safe_load(original)
    config["pretrain"]["seeds"] = config["pretrain"].get("seeds", 1) + 1
    path.write_text(yaml.safe_dump(config))
    try:
        jobs = dry_run_jobs(workdir, templateflow_home)
        assert {name: jobs[name] for name in ("pretrain", "embed:model", "embed:random_init")} == {
            "pretrain": 1, "embed:model": 1, "embed:random_init": 1}
        assert set(jobs) == {"pretrain", "embed:model", "embed:random_init"} | PROBES
    finally:
        path.write_text(original)
