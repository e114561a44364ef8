"""What the DAG plans from a config: runs chosen by the atlas settings, escape hatches, TR fallbacks."""

import json
import re
from pathlib import Path

import pytest
import yaml

from semantoks.config import validate_config
from semantoks.confounds import resolve_strategy
from semantoks.errors import SemantoksError
from semantoks.workflow_plan import planned_runs

SPACE = "MNI152NLin2009cAsym"


def _derivatives_at(root, resolutions):
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    for res in resolutions:
        stem = f"sub-01_task-rest_space-{SPACE}_res-{res}"
        for suffix in ("desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz"):
            (func / f"{stem}_{suffix}").write_text("")
        (func / f"{stem}_desc-preproc_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    (func / "sub-01_task-rest_desc-confounds_timeseries.tsv").write_text("")
    return root


def _config(derivatives, tmp_path, **atlas):
    cohort = {"source": "fmriprep", "derivatives": str(derivatives)}
    return validate_config({"results": str(tmp_path / "results"), "atlas": atlas, "cohorts": {"lab": cohort}})


def test_two_resolutions_suggest_an_atlas_resolution_the_config_accepts(tmp_path):
    derivatives = _derivatives_at(tmp_path / "fmriprep", ["1", "3"])
    (run,) = planned_runs(_config(derivatives, tmp_path), "lab")
    assert run.bold == "" and "several resolutions (res-1, res-3)" in run.problem
    suggested = re.search(r"atlas\.resolution: (\d+)", run.problem)
    # the suggestion is a setting that validates and picks exactly one grid
    (run,) = planned_runs(_config(derivatives, tmp_path, resolution=int(suggested[1])), "lab")
    assert run.problem is None and run.bold.endswith(f"_space-{SPACE}_res-1_desc-preproc_bold.nii.gz")


def test_the_default_atlas_resolution_picks_res_2_among_several(tmp_path):
    derivatives = _derivatives_at(tmp_path / "fmriprep", ["1", "2"])
    (run,) = planned_runs(_config(derivatives, tmp_path), "lab")
    assert run.problem is None and "_res-2_desc-preproc_bold" in run.bold


def _derivatives(root, scans, without_sidecar=()):
    """An fMRIPrep-named tree of empty files: planning reads names only."""
    for scan in scans:
        func = root / scan.split("_")[0] / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = f"{scan}_space-{SPACE}_res-2"
        names = [f"{stem}_desc-preproc_bold.nii.gz", f"{stem}_desc-brain_mask.nii.gz", f"{scan}_desc-confounds_timeseries.tsv"]
        if scan not in without_sidecar:
            names.append(f"{stem}_desc-preproc_bold.json")
        for name in names:
            (func / name).touch()
    return root


@pytest.fixture
def cohort(tmp_path):
    root = _derivatives(tmp_path / "fmriprep", ["sub-01_task-rest", "sub-02_task-rest", "sub-03_task-rest_run-1",
                                                "sub-03_task-rest_run-2"], without_sidecar=["sub-02_task-rest"])

    def plan(**settings):
        config = validate_config({"results": str(tmp_path / "results"),
                                  "cohorts": {"lab": {"source": "fmriprep", "derivatives": str(root), **settings}}})
        return {run.scan_id: run for run in planned_runs(config, "lab")}

    return plan


def test_excluded_subjects_and_scans_carry_their_reason_and_need_no_files(cohort):
    runs = cohort(tr=2.0, exclude=[{"subject": "sub-01", "reason": "incidental finding"},
                                   {"scan": "sub-03_task-rest_run-2", "reason": "fell asleep"}])
    assert runs["sub-01_task-rest"].problem == "Excluded in the config: incidental finding"
    assert runs["sub-03_task-rest_run-2"].problem == "Excluded in the config: fell asleep"
    assert runs["sub-03_task-rest_run-1"].problem is None and runs["sub-02_task-rest"].problem is None
    # an unquoted YAML label is a number: 2 names subject 02, as in the phenotype table's matching
    assert cohort(exclude=[{"subject": 2, "reason": "no consent"}])["sub-02_task-rest"].problem.endswith("no consent")


@pytest.mark.parametrize("entry, named", [
    ({"subject": "99", "reason": "x"}, r"cohorts.lab.exclude\[0\] names subject 99"),
    ({"scan": "sub-01_task-rest_run-7", "reason": "x"}, r"cohorts.lab.exclude\[0\] names scan sub-01_task-rest_run-7"),
    ({"subject": "01", "scan": "sub-01_task-rest", "reason": "x"}, "exactly one of subject or scan"),
])
def test_exclusions_naming_nothing_are_refused(cohort, entry, named):
    with pytest.raises(SemantoksError, match=named):
        cohort(exclude=[entry])


def test_exclusion_without_a_reason_is_refused_at_parse_time(cohort):
    with pytest.raises(SemantoksError, match="reason"):
        cohort(exclude=[{"subject": "01"}])


def test_missing_derivative_sidecar_is_a_problem_unless_tr_or_bids_stand_in(cohort, tmp_path):
    assert "no BOLD JSON sidecar" in cohort()["sub-02_task-rest"].problem
    with_tr = cohort(tr=2.5)["sub-02_task-rest"]
    assert with_tr.problem is None and with_tr.tr == 2.5 and with_tr.sidecar == ""
    with_bids = cohort(bids=str(tmp_path / "bids"))["sub-02_task-rest"]
    assert with_bids.problem is None and with_bids.tr is None and with_bids.bids == str(tmp_path / "bids")


def test_tr_by_site_reads_each_subjects_site_from_the_phenotype_table(cohort, tmp_path):
    table = tmp_path / "participants.tsv"
    table.write_text("participant_id\tsite\nsub-01\t20\n02\tB\nsub-03\tC\n")
    phenotypes = {"table": str(table)}
    with pytest.raises(SemantoksError, match="site 'C' of subject 03 has no repetition time"):
        cohort(tr_by_site={20: 2.0, "B": 0.8}, site_column="site", phenotypes=phenotypes)
    runs = cohort(tr=1.5, tr_by_site={20: 2.0, "B": 0.8}, site_column="site", phenotypes=phenotypes)
    assert [runs[s].tr for s in sorted(runs)] == [2.0, 0.8, 1.5, 1.5]
    with pytest.raises(SemantoksError, match="tr_by_site needs cohorts.lab.site_column"):
        cohort(tr_by_site={"B": 0.8})


def test_dataset_description_names_the_source_datasets(cohort, tmp_path):
    from semantoks.dataset import write_dataset_description
    from semantoks.workflow_plan import source_datasets

    config = validate_config({"results": str(tmp_path / "results"), "cohorts": {
        "lab": {"source": "fmriprep", "derivatives": str(tmp_path / "fmriprep")},
        "demo": {"source": "simulated"}}})
    sources, links = source_datasets(config)
    assert links == {"lab": (tmp_path / "fmriprep").as_uri(), "demo": (tmp_path / "results" / "cohorts" / "demo").as_uri()}
    path = write_dataset_description(tmp_path / "out", "0.1.0", source_datasets=sources, dataset_links=links)
    description = json.loads(path.read_text())
    assert description["GeneratedBy"][0]["Name"] == "semantoks" and description["DatasetType"] == "derivative"
    assert description["SourceDatasets"] == [{"URL": links["lab"]}, {"URL": links["demo"]}]
    assert description["DatasetLinks"] == links


def _yaml_blocks(doc):
    text = (Path(__file__).parents[1] / "docs" / doc).read_text()
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def test_every_config_example_in_the_denoising_docs_validates_and_resolves(tmp_path):
    for block in _yaml_blocks("denoising.md"):
        config = yaml.safe_load(block.replace("/data/lab", str(tmp_path / "lab")))
        config.setdefault("cohorts", {"demo": {"source": "simulated"}})
        config = validate_config({"results": str(tmp_path / "results"), **config})
        strategy = resolve_strategy(config["denoise"]["strategy"], config["denoise"]["overrides"])
        assert strategy["name"] == config["denoise"]["strategy"]


def test_the_escape_hatch_example_plans_as_documented(tmp_path):
    (block,) = [b for b in _yaml_blocks("denoising.md") if "exclude:" in b]
    lab = tmp_path / "lab"
    _derivatives(lab / "derivatives" / "fmriprep", ["sub-0050003_task-rest", "sub-0050004_task-rest_run-1",
                                                    "sub-0050004_task-rest_run-2", "sub-0050005_task-rest"],
                 without_sidecar=["sub-0050005_task-rest"])
    (lab / "participants.tsv").write_text("participant_id\tSITE_ID\n50003\tNYU\n50004\tNYU\n50005\tKKI\n")
    config = validate_config({"results": str(tmp_path / "results"), **yaml.safe_load(block.replace("/data/lab", str(lab)))})
    runs = {run.scan_id: run for run in planned_runs(config, "lab")}
    assert runs["sub-0050003_task-rest"].problem == "Excluded in the config: incidental finding"
    assert runs["sub-0050004_task-rest_run-2"].problem == "Excluded in the config: scanner fault during the run"
    assert runs["sub-0050004_task-rest_run-1"].problem is None and runs["sub-0050004_task-rest_run-1"].tr == 2.0
    assert runs["sub-0050005_task-rest"].problem is None and runs["sub-0050005_task-rest"].tr == 2.5
