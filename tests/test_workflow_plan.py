"""What the DAG plans from a config: runs of existing fMRIPrep derivatives chosen by the atlas settings."""

import json
import re

from semantoks.config import validate_config
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
