"""File names of the simulated cohort: a raw BIDS tree of sidecars and fMRIPrep-style derivatives."""

from pathlib import Path

from semantoks.bids_names import subject_dir

SPACE = "MNI152NLin2009cAsym"
DERIVATIVES = Path("derivatives") / "fmriprep"


def derivative_paths(root, run):
    """Every file of one simulated run under the cohort folder `root`, by role."""
    root = Path(root)
    scan = run.scan_id
    func = subject_dir(run.entities) / "func"
    derivatives = root / DERIVATIVES / func
    return {
        "scan_id": scan,
        "bold": derivatives / f"{scan}_space-{SPACE}_desc-preproc_bold.nii.gz",
        "sidecar": derivatives / f"{scan}_space-{SPACE}_desc-preproc_bold.json",
        "mask": derivatives / f"{scan}_space-{SPACE}_desc-brain_mask.nii.gz",
        "confounds": derivatives / f"{scan}_desc-confounds_timeseries.tsv",
        "confounds_sidecar": derivatives / f"{scan}_desc-confounds_timeseries.json",
        "raw_sidecar": root / "bids" / func / f"{scan}_bold.json",
    }


def run_outputs(root, run):
    """The files one `simulate_run` call writes."""
    return [path for role, path in derivative_paths(root, run).items() if role != "scan_id"]


def cohort_paths(root):
    """The cohort-level files `write_cohort_files` writes, by role."""
    root = Path(root)
    return {
        "participants": root / "bids" / "participants.tsv",
        "participants_sidecar": root / "bids" / "participants.json",
        "bids_description": root / "bids" / "dataset_description.json",
        "bids_readme": root / "bids" / "README",
        "derivatives_description": root / DERIVATIVES / "dataset_description.json",
        "ground_truth": root / "ground_truth.json",
    }
