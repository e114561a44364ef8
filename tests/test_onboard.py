"""Run discovery in fMRIPrep derivatives and raw BIDS (with the cached index), and `semantoks onboard`."""

import json
import re
import os

import pytest
import yaml

from semantoks.cohorts import func_index
from semantoks.cohorts.bids_raw import bids_metadata, find_bids_runs
from semantoks.cohorts.derivatives import find_preprocessed_runs
from semantoks.cohorts.fmriprep_versions import warn_mixed_versions
from semantoks.cohorts.onboard import main, onboard
from semantoks.errors import SemantoksError

SPACE = "MNI152NLin2009cAsym"


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _fmriprep_run(root, stem, folder, tr=2.0, mask=True, confounds="timeseries", spaces=(f"{SPACE}_res-2",)):
    func = root / folder / "func"
    for space in spaces:
        _touch(func / f"{stem}_space-{space}_desc-preproc_bold.nii.gz")
        _touch(func / f"{stem}_space-{space}_desc-preproc_bold.json", json.dumps({"RepetitionTime": tr} if tr else {}))
        if mask:
            _touch(func / f"{stem}_space-{space}_desc-brain_mask.nii.gz")
    if confounds:
        _touch(func / f"{stem}_desc-confounds_{confounds}.tsv")


@pytest.fixture
def derivatives(tmp_path):
    root = tmp_path / "fmriprep"
    description = {"Name": "d", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}]}
    _touch(root / "dataset_description.json", json.dumps(description))
    _fmriprep_run(root, "sub-01_task-rest_run-1", "sub-01")
    _fmriprep_run(root, "sub-01_task-rest_run-2", "sub-01", confounds="regressors")
    _fmriprep_run(root, "sub-02_ses-1_task-rest_acq-mb_run-1", "sub-02/ses-1", tr=None)
    _fmriprep_run(root, "sub-02_ses-1_task-nback", "sub-02/ses-1", mask=False)
    _fmriprep_run(root, "sub-03_task-rest", "sub-03", confounds=None, spaces=("T1w",))
    _touch(root / "sub-01" / "anat" / "sub-01_desc-preproc_T1w.nii.gz")
    _touch(root / "sub-01" / "func" / "sub-01_task-rest_run-1_desc-confounds_timeseries.json", "{}")
    return root


def _by_id(records):
    return {record.scan_id: record for record in records}


def test_finds_runs_with_their_files_and_problems(derivatives, tmp_path):
    runs = _by_id(find_preprocessed_runs(derivatives, f"{SPACE}:res-2", cache_dir=tmp_path / "cache"))
    assert sorted(runs) == ["sub-01_task-rest_run-1", "sub-01_task-rest_run-2", "sub-02_ses-1_task-nback",
                            "sub-02_ses-1_task-rest_acq-mb_run-1", "sub-03_task-rest"]
    good = runs["sub-02_ses-1_task-rest_acq-mb_run-1"]
    assert good.entities == {"sub": "02", "ses": "1", "task": "rest", "acq": "mb", "run": "1"}
    assert good.problem is None and good.res == "2" and good.scan_dir == "sub-02/ses-1/func"
    stem = f"{derivatives}/sub-02/ses-1/func/sub-02_ses-1_task-rest_acq-mb_run-1"
    assert good.paths() == {
        "bold": f"{stem}_space-{SPACE}_res-2_desc-preproc_bold.nii.gz",
        "mask": f"{stem}_space-{SPACE}_res-2_desc-brain_mask.nii.gz",
        "confounds": f"{stem}_desc-confounds_timeseries.tsv",
        "sidecar": f"{stem}_space-{SPACE}_res-2_desc-preproc_bold.json",
    }
    assert all(os.path.isfile(path) for path in good.paths().values())
    assert runs["sub-01_task-rest_run-2"].confounds.endswith("/sub-01_task-rest_run-2_desc-confounds_regressors.tsv")
    assert runs["sub-01_task-rest_run-2"].problem is None
    assert runs["sub-02_ses-1_task-nback"].problem == "no brain mask (desc-brain_mask) beside the BOLD."
    assert runs["sub-03_task-rest"].bold is None
    assert runs["sub-03_task-rest"].problem.startswith(f"no preprocessed BOLD in space {SPACE}:res-2 (found: T1w)")
    assert "no confounds table" in runs["sub-03_task-rest"].problem
    assert [r.scan_id for r in find_preprocessed_runs(derivatives, SPACE, task="nback", cache_dir=False)] == [
        "sub-02_ses-1_task-nback"]


def test_several_resolutions_need_a_choice(tmp_path):
    root = tmp_path / "d"
    _fmriprep_run(root, "sub-01_task-rest", "sub-01", spaces=(f"{SPACE}_res-1", f"{SPACE}_res-2"))
    (run,) = find_preprocessed_runs(root, SPACE, cache_dir=False)
    assert run.bold is None and "several resolutions (res-1, res-2)" in run.problem
    (run,) = find_preprocessed_runs(root, f"{SPACE}:res-1", cache_dir=False)
    assert run.problem is None and run.bold.endswith(f"sub-01_task-rest_space-{SPACE}_res-1_desc-preproc_bold.nii.gz")


@pytest.mark.parametrize("bad", ["sub-01;rm", "sub-0$(id)"])
def test_unsafe_subject_labels_are_refused(tmp_path, bad):
    root = tmp_path / "d"
    _fmriprep_run(root, "sub-01_task-rest", "sub-01")
    (root / bad / "func").mkdir(parents=True)
    with pytest.raises(SemantoksError, match=r"label .* is not alphanumeric as BIDS requires"):
        find_preprocessed_runs(root, SPACE, cache_dir=False)


def test_unsafe_labels_in_file_names_and_task_filter_are_refused(tmp_path):
    root = tmp_path / "d"
    _fmriprep_run(root, "sub-01_task-rest;ls", "sub-01")
    with pytest.raises(SemantoksError, match=r"task label 'rest;ls' is not alphanumeric"):
        find_preprocessed_runs(root, SPACE, cache_dir=False)
    with pytest.raises(SemantoksError, match=r"task label 'a b' is not alphanumeric"):
        find_preprocessed_runs(tmp_path, SPACE, task="a b", cache_dir=False)


def test_cached_index_skips_listing_unchanged_subjects_and_sees_new_files(derivatives, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = find_preprocessed_runs(derivatives, SPACE, cache_dir=cache)
    assert len(list(cache.glob("index-fmriprep*.json"))) == 1
    listed = []
    real_scandir = os.scandir

    def recording_scandir(path):
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(func_index.os, "scandir", recording_scandir)
    assert find_preprocessed_runs(derivatives, SPACE, cache_dir=cache) == first
    assert listed == [str(derivatives.resolve())]
    _fmriprep_run(derivatives, "sub-01_task-rest_run-3", "sub-01")
    listed.clear()
    third = _by_id(find_preprocessed_runs(derivatives, SPACE, cache_dir=cache))
    assert third["sub-01_task-rest_run-3"].problem is None
    assert {os.path.relpath(p, derivatives.resolve()) for p in listed} == {".", "sub-01", "sub-01/func"}


def test_raw_bids_runs_and_metadata_inheritance(tmp_path):
    root = tmp_path / "bids"
    _touch(root / "dataset_description.json", "{}")
    _touch(root / "task-rest_bold.json", json.dumps({"RepetitionTime": 2.0, "TaskName": "rest"}))
    _touch(root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz")
    _touch(root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.json", json.dumps({"RepetitionTime": 0.8}))
    _touch(root / "sub-02" / "ses-A" / "func" / "sub-02_ses-A_task-rest_bold.nii")
    for echo in (1, 2):
        _touch(root / "sub-03" / "func" / f"sub-03_task-rest_echo-{echo}_bold.nii.gz")
    _touch(root / "sub-03" / "func" / "sub-03_task-rest_sbref.nii.gz")
    runs = {run.scan_id: run for run in find_bids_runs(root, cache_dir=False)}
    assert sorted(runs) == ["sub-01_task-rest_run-1", "sub-02_ses-A_task-rest", "sub-03_task-rest"]
    assert len(runs["sub-03_task-rest"].echoes) == 2
    assert bids_metadata(runs["sub-01_task-rest_run-1"], root)["RepetitionTime"] == 0.8
    assert bids_metadata(runs["sub-02_ses-A_task-rest"], root) == {"RepetitionTime": 2.0, "TaskName": "rest"}


def test_non_bids_folders_get_a_clear_error(tmp_path):
    (tmp_path / "data" / "scans").mkdir(parents=True)
    with pytest.raises(SemantoksError, match=r"data: not a BIDS dataset \(no dataset_description.json\)"):
        find_bids_runs(tmp_path / "data")
    _touch(tmp_path / "data" / "dataset_description.json", "{}")
    with pytest.raises(SemantoksError, match=r"data: no sub-\* folders"):
        find_bids_runs(tmp_path / "data")
    with pytest.raises(SemantoksError, match=r"does not exist"):
        find_preprocessed_runs(tmp_path / "missing", SPACE)


def test_mixed_fmriprep_versions_warn_with_versions_and_subjects(derivatives):
    _touch(derivatives / "sub-01" / "log" / "20240101-1200_ab" / "fmriprep.toml",
           '[environment]\ncpu_count = 8\nnipype_version = "1.8.6"\nversion = "20.2.7"\n\n[execution]\nversion = "x"\n')
    _touch(derivatives / "sub-02.html", "<li>fMRIPrep version: <code>24.1.1</code></li>")
    with pytest.warns(UserWarning) as caught:
        message = warn_mixed_versions(derivatives)
    assert str(caught[0].message) == message
    assert "20.2.7 (1: 01)" in message and "23.2.1 (1: 03)" in message and "24.1.1 (1: 02)" in message


def _phenotypes(path, rows):
    lines = ["participant_id\tage\tsex\tgroup\tsite\tnotes\tscanner_id"]
    for i, subject in enumerate(rows):
        lines.append(f"{subject}\t{20 + i * 1.5}\t{'MF'[i % 2]}\t{'ctrl' if i % 3 else 'pat'}\t{'ABC'[i % 3]}"
                     f"\tnote number {i}\tS{i:03d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_onboard_reports_problems_and_writes_the_cohort_entry(derivatives, tmp_path):
    subjects = ["sub-01", "sub-02"] + [f"sub-{i:02d}" for i in range(10, 20)]
    table = _phenotypes(tmp_path / "participants.tsv", subjects)
    out = tmp_path / "config" / "cohort.yaml"
    entry, report = onboard("lab1", table, derivatives=derivatives, space=f"{SPACE}:res-2", out=out,
                            cache_dir=tmp_path / "cache")
    assert entry == {
        "source": "fmriprep",
        "derivatives": str(derivatives.resolve()),
        "phenotypes": {"table": str(table.resolve()), "participant_column": "participant_id",
                       "columns": {"age": "continuous", "sex": "binary", "group": "binary", "site": "categorical"}},
    }
    text = out.read_text()
    assert yaml.safe_load(text) == {"cohorts": {"lab1": entry}}
    assert "# notes: categorical  # left out: looks like an identifier" in text
    assert "# scanner_id: categorical  # left out: looks like an identifier" in text
    assert not [p for p in out.parent.iterdir() if p.name != "cohort.yaml"]
    assert "Runs: 5 of 3 subjects, 1 sessions; tasks: rest 4, nback 1" in report
    assert "Usable in MNI152NLin2009cAsym:res-2: 3 of 5 runs" in report
    assert "sub-02_ses-1_task-nback: no brain mask" in report
    assert ("Runs without RepetitionTime (their parcellation stops with an error until it is added): 1\n"
            "  sub-02_ses-1_task-rest_acq-mb_run-1:") in report
    assert "Subjects with scans but no phenotype row: 1\n  sub-03" in report
    assert "Phenotype rows without scans: 10" in report
    assert "Spaces present (runs): MNI152NLin2009cAsym:res-2 4, T1w 1" in report
    assert "fMRIPrep versions: 23.2.1 (3 subjects)" in report


def test_onboard_shows_the_raw_tr_a_derivative_sidecar_lacks(derivatives, tmp_path):
    bids = tmp_path / "bids"
    _touch(bids / "task-rest_acq-mb_bold.json", json.dumps({"RepetitionTime": 0.72}))
    entry, report = onboard("lab1", derivatives=derivatives, bids=bids, cache_dir=False)
    assert "sub-02_ses-1_task-rest_acq-mb_run-1: sub-02_ses-1_task-rest_acq-mb_run-1_space-MNI152NLin2009cAsym_res-2" \
           "_desc-preproc_bold.json has no RepetitionTime (the raw BIDS metadata says 0.72 s" in report
    assert "phenotypes" not in entry and entry["bids"] == str(bids.resolve())


def test_onboard_raw_bids_cohort_from_the_command_line(tmp_path, capsys):
    bids = tmp_path / "bids"
    _touch(bids / "dataset_description.json", "{}")
    for subject in ("1", "2"):
        _touch(bids / f"sub-{subject}" / "func" / f"sub-{subject}_task-rest_bold.nii.gz")
        _touch(bids / f"sub-{subject}" / "func" / f"sub-{subject}_task-rest_bold.json", json.dumps({"RepetitionTime": 1.5}))
    table = tmp_path / "pheno.csv"
    table.write_text("id,dx\n01,1\n2,2\n")
    out = tmp_path / "c.yaml"
    assert main(["--name", "raw", "--bids", str(bids), "--derivatives", str(tmp_path / "fmriprep"), "--phenotypes",
                 str(table), "--participant-column", "id", "--out", str(out), "--no-cache"]) == 0
    entry = yaml.safe_load(out.read_text())["cohorts"]["raw"]
    assert entry["source"] == "bids" and entry["bids"] == str(bids.resolve())
    assert entry["phenotypes"]["columns"] == {"dx": "binary"}
    printed = capsys.readouterr().out
    assert "Repetition times (s): 1.5 (2 runs)" in printed
    assert "Subjects with scans but no phenotype row" not in printed


def test_onboard_refuses_a_missing_participant_column(derivatives, tmp_path):
    table = tmp_path / "p.tsv"
    table.write_text("subject\tage\n01\t3\n")
    with pytest.raises(SemantoksError, match=r"p.tsv: no column 'participant_id' \(columns: subject, age\)"):
        onboard("lab1", table, derivatives=derivatives, cache_dir=False)


ABIDE = "abide_pcp_cc200"
ABIDE_PATTERN = r"(?P<subject>\d{7})_rois_cc200\.1D"


def test_onboard_roi_on_the_real_abide_folder(shared_data, tmp_path):
    folder = shared_data / ABIDE
    out = tmp_path / "abide.yaml"
    entry, report = onboard("abide", folder / "Phenotypic_V1_0b_preprocessed1_subset.csv", roi=folder / "rois_cc200",
                            pattern=ABIDE_PATTERN, participant_column="SUB_ID", site_column="SITE_ID", out=out)
    assert "matches 91 files of 91 subjects" in report
    assert "shape 296 x 200, read as frames x parcels (its header names 200 columns" in report
    assert "Parcels: 200; frames per file: 116 to 296" in report
    assert "Matched: 91 of 91 imaging subjects have a phenotype row" in report
    text = out.read_text()
    assert "KKI: FILL_IN  # FILL_IN: this site's TR in seconds" in text
    assert "parcellation: FILL_IN  # FILL_IN" in text
    written = yaml.safe_load(text)["cohorts"]["abide"]
    assert written["roi"]["site_column"] == "SITE_ID"
    assert set(written["roi"]["tr_by_site"]) == {"NYU", "UM_1", "USM", "YALE", "KKI", "UCLA_1"}
    columns = written["phenotypes"]["columns"]
    assert columns["SITE_ID"] == "categorical" and columns["AGE_AT_SCAN"] == "continuous"
    assert "Unnamed: 0" not in columns and "X" not in columns
    # -9999 is missing here exactly as in the pipeline: BMI ranges over real values only
    assert re.search(r"BMI: continuous  # n=8, 83 missing, 13\.51 to 34\.45", text)


def test_onboard_roi_takes_tr_from_a_tr_column_and_writes_a_valid_entry(shared_data, tmp_path, capsys):
    from semantoks.config import validate_config

    folder = shared_data / ABIDE
    out = tmp_path / "abide.yaml"
    main(["--name", "abide", "--roi", str(folder / "rois_cc200"), "--pattern", ABIDE_PATTERN,
          "--phenotypes", str(folder / "participants.tsv"), "--participant-column", "SUB_ID",
          "--site-column", "SITE_ID", "--parcellation", "CC200", "--labels", str(folder / "cc200_yeo7_mapping.tsv"),
          "--out", str(out)])
    assert "Sites (SITE_ID): 6; TR known for 6" in capsys.readouterr().out
    config = yaml.safe_load(out.read_text())
    roi = config["cohorts"]["abide"]["roi"]
    assert roi["tr_by_site"] == {"KKI": 2.5, "NYU": 2.0, "UCLA_1": 3.0, "UM_1": 2.0, "USM": 2.0, "YALE": 2.0}
    assert roi["parcellation"] == "CC200" and "FILL_IN" not in out.read_text()
    validate_config(config)


def test_onboard_roi_opens_the_labels_table_it_is_given(shared_data, tmp_path, capsys):
    folder = shared_data / ABIDE
    short = tmp_path / "short.tsv"
    short.write_text("name\tnetwork\n" + "".join(f"CC{i:03d}\tVis\n" for i in range(1, 200)))
    main(["--name", "abide", "--roi", str(folder / "rois_cc200"), "--pattern", ABIDE_PATTERN,
          "--phenotypes", str(folder / "participants.tsv"), "--participant-column", "SUB_ID", "--parcellation",
          "CC200", "--labels", str(short), "--out", str(tmp_path / "abide.yaml")])
    assert (f"WARNING: the pipeline will refuse this labels table: {short}: 199 rows but the time-series files have "
            "200 parcels") in capsys.readouterr().out
