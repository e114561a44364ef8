"""fMRIPrep runner: exact command lines, preflight, and the hand-off to the predicted derivative paths.

The real containers cannot run here: stand-in `apptainer` and `docker` executables, written into a tmp
folder put first on PATH, record their argv and write the files fMRIPrep would write.
"""

import json
import os
import stat
import sys
import textwrap

import pytest

from semantoks.cohorts.bids_raw import expected_fmriprep_outputs, find_bids_runs
from semantoks.cohorts.fmriprep_runner import fmriprep_command, preflight, run_fmriprep, run_fmriprep_subject
from semantoks.errors import SemantoksError

VERSION = "24.1.1"
SPACE = "MNI152NLin2009cAsym:res-2"
# fMRIPrep's own output names for sub-01's two runs with --output-spaces MNI152NLin2009cAsym:res-2
FMRIPREP_WRITES = [
    f"sub-01/func/sub-01_task-rest_run-{run}_{suffix}"
    for run in (1, 2)
    for suffix in (
        "space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz",
        "space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.json",
        "space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz",
        "desc-confounds_timeseries.tsv",
    )
]

STANDIN = textwrap.dedent('''\
    #!{python}
    # stand-in for {name}: records argv, answers the wrapper's probes, writes fMRIPrep's outputs into /out
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["STANDIN_CALLS"], "a") as calls:
        calls.write(json.dumps(["{name}", *args]) + "\\n")
    if args[:1] == ["version"]:
        print("24.0.7" if "--format" in args else "Client: 24.0.7")
        sys.exit(0)
    if args[:2] == ["images", "-q"]:
        print("0123456789ab")
        sys.exit(0)
    if "--entrypoint=free" in args:
        print("              total        used\\nMem:          32000        1000")
        sys.exit(0)
    flag = "-B" if "{name}" == "apptainer" else "-v"
    binds = dict(args[i + 1].split(":")[1::-1] for i, a in enumerate(args) if a == flag)
    for relative in json.loads(os.environ["STANDIN_WRITES"]):
        target = os.path.join(binds["/out"], relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
    sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
''')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    bids = tmp_path / "bids"
    for run in (1, 2):
        _touch(bids / "sub-01" / "func" / f"sub-01_task-rest_run-{run}_bold.nii.gz")
    _touch(bids / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-rest_bold.nii.gz")
    _touch(bids / "dataset_description.json", "{}")
    licence = _touch(tmp_path / "licence.txt", "FreeSurfer licence")
    sif = _touch(tmp_path / "fmriprep-24.1.1.sif", "SIF")
    templateflow = tmp_path / "templateflow"
    for template in ("MNI152NLin2009cAsym", "OASIS30ANTs"):
        _touch(templateflow / f"tpl-{template}" / "template_description.json", "{}")
    bin_dir = tmp_path / "bin"
    for name in ("apptainer", "docker"):
        script = _touch(bin_dir / name, STANDIN.format(python=sys.executable, name=name))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("STANDIN_WRITES", json.dumps(FMRIPREP_WRITES))
    settings = {"runner": "apptainer", "version": VERSION, "image": str(sif), "fs_license": str(licence),
                "fs_no_reconall": True, "skip_bids_validation": False, "threads": 4, "mem_mb": 12000, "extra_args": []}
    return {"tmp": tmp_path, "bids": bids, "licence": licence, "sif": sif, "templateflow": templateflow,
            "out": tmp_path / "derivatives", "work": tmp_path / "work" / "sub-01", "settings": settings}


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _calls(setup):
    return [json.loads(line) for line in (setup["tmp"] / "calls.jsonl").read_text().splitlines()]


def test_docker_command_line(setup):
    s = setup
    command = fmriprep_command("docker", "sub-01", s["bids"], s["out"], s["work"], s["licence"], VERSION,
                               output_spaces=[SPACE], nprocs=8, mem_mb=16000, skip_bids_validation=True,
                               extra_args=["--notrack"])
    assert command == [
        "fmriprep-docker", str(s["bids"]), str(s["out"]), "participant", "--participant-label", "01",
        "-i", "nipreps/fmriprep:24.1.1", "--no-tty", "-w", str(s["work"]), "--fs-license-file", str(s["licence"]),
        "--output-spaces", SPACE, "--nprocs", "8", "--mem_mb", "16000", "--fs-no-reconall", "--skip-bids-validation",
        "--notrack",
    ]


def test_apptainer_command_line(setup):
    s = setup
    command = fmriprep_command("apptainer", "01", s["bids"], s["out"], s["work"], s["licence"], VERSION,
                               output_spaces=[SPACE], nprocs=4, mem_mb=12000, fs_no_reconall=False,
                               image=s["sif"], templateflow_home=s["templateflow"])
    assert command == [
        "apptainer", "run", "--cleanenv",
        "-B", f"{s['bids']}:/data:ro", "-B", f"{s['out']}:/out", "-B", f"{s['work']}:/work",
        "-B", f"{s['licence']}:/opt/freesurfer/license.txt:ro",
        "-B", f"{s['templateflow']}:/templateflow", "--env", "TEMPLATEFLOW_HOME=/templateflow",
        str(s["sif"]), "/data", "/out", "participant", "--participant-label", "01", "-w", "/work",
        "--fs-license-file", "/opt/freesurfer/license.txt",
        "--output-spaces", SPACE, "--nprocs", "4", "--mem_mb", "12000",
    ]


def test_apptainer_run_hands_off_the_predicted_outputs(setup):
    s = setup
    log = s["tmp"] / "logs" / "sub-01.log"
    written = run_fmriprep_subject("01", s["bids"], s["out"], s["work"], s["settings"], SPACE, log,
                                   templateflow_home=s["templateflow"])
    (call,) = _calls(s)
    assert call == fmriprep_command("apptainer", "01", s["bids"], s["out"], s["work"], s["licence"], VERSION,
                                    output_spaces=[SPACE], nprocs=4, mem_mb=12000, image=s["sif"],
                                    templateflow_home=s["templateflow"])
    assert sorted(os.path.relpath(p, s["out"]) for p in written) == sorted(FMRIPREP_WRITES)
    planned = [expected_fmriprep_outputs(run, s["out"], SPACE) for run in find_bids_runs(s["bids"], cache_dir=False)]
    assert all(os.path.exists(path) for record in planned if record.subject == "01" for path in record.paths().values())
    assert s["work"].is_dir()
    assert log.read_text().startswith("$ apptainer run --cleanenv")


def test_docker_run_through_the_real_fmriprep_docker_wrapper(setup):
    pytest.importorskip("fmriprep_docker")
    s = setup
    settings = {**s["settings"], "runner": "docker", "image": None}
    run_fmriprep_subject("01", s["bids"], s["out"], s["work"], settings, SPACE, s["tmp"] / "sub-01.log",
                         templateflow_home=s["templateflow"])
    run = [call for call in _calls(s) if call[1] == "run" and "--entrypoint=free" not in call][-1]
    image = run.index("nipreps/fmriprep:24.1.1")
    assert run[image + 1:] == [
        "/data", "/out", "participant", "--participant-label", "01", "--nprocs", "4", "--mem_mb", "12000",
        "--fs-no-reconall", "-w", "/scratch", "--output-spaces", SPACE,
    ]
    mounts = {run[i + 1] for i, arg in enumerate(run[:image]) if arg == "-v"}
    assert mounts == {f"{s['licence']}:/opt/freesurfer/license.txt:ro", f"{s['bids']}:/data:ro",
                      f"{s['out']}:/out", f"{s['work']}:/scratch"}
    assert "-it" not in run
    assert all((s["out"] / relative).exists() for relative in FMRIPREP_WRITES)


def test_missing_outputs_after_the_run_are_named(setup, monkeypatch):
    s = setup
    monkeypatch.setenv("STANDIN_WRITES", json.dumps([p for p in FMRIPREP_WRITES if "brain_mask" not in p]))
    missing = r"did not write .*sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-brain_mask"
    with pytest.raises(SemantoksError, match=missing):
        run_fmriprep_subject("01", s["bids"], s["out"], s["work"], s["settings"], SPACE, s["tmp"] / "x.log")


def test_failed_run_points_at_its_log(setup, monkeypatch):
    s = setup
    monkeypatch.setenv("STANDIN_EXIT", "3")
    command = fmriprep_command("apptainer", "01", s["bids"], s["out"], s["work"], s["licence"], VERSION, image=s["sif"])
    with pytest.raises(SemantoksError, match=r"fail.log: fMRIPrep exited with status 3"):
        run_fmriprep(command, s["tmp"] / "fail.log", [])


def test_preflight_refuses_missing_licence_sif_and_templates(setup):
    s = setup
    with pytest.raises(SemantoksError, match=r"nolicence.txt: FreeSurfer licence file not found"):
        preflight("apptainer", s["tmp"] / "nolicence.txt", s["sif"])
    with pytest.raises(SemantoksError, match=r"missing.sif: fMRIPrep SIF image not found"):
        preflight("apptainer", s["licence"], s["tmp"] / "missing.sif")
    with pytest.raises(SemantoksError, match=r"tpl-MNI152NLin6Asym: TemplateFlow template MNI152NLin6Asym is missing"):
        preflight("apptainer", s["licence"], s["sif"], s["templateflow"], ["MNI152NLin6Asym:res-2"])
    with pytest.raises(SemantoksError, match=r"work folder is inside the BIDS dataset"):
        preflight("apptainer", s["licence"], s["sif"], bids_root=s["bids"], work_dir=s["bids"] / "work")
    preflight("apptainer", s["licence"], s["sif"], s["templateflow"], [SPACE, "T1w"])


def test_preflight_needs_the_container_tools(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty" / "python"))
    with pytest.raises(SemantoksError, match=r"docker: executable not found on PATH"):
        preflight("docker", setup["licence"])
    with pytest.raises(SemantoksError, match=r"apptainer: executable not found on PATH"):
        preflight("apptainer", setup["licence"], setup["sif"])


@pytest.mark.parametrize(("change", "message"), [
    ({"subject": "01;rm -rf ~"}, r"subject label '01;rm -rf ~' is not alphanumeric"),
    ({"version": "latest"}, r"fmriprep.version 'latest': not a pinned release"),
    ({"output_spaces": ["MNI152NLin2009cAsym res-2"]}, r"not fMRIPrep's <template>\[:res-N\] form"),
    ({"runner": "podman"}, r"fmriprep.runner 'podman' is not one of docker, apptainer"),
    ({"image": None}, r"the apptainer runner needs the path of the fMRIPrep .sif file"),
    ({"extra_args": ["--nprocs", 4]}, r"fmriprep.extra_args: every item must be a string"),
])
def test_bad_settings_are_refused(setup, change, message):
    s = setup
    arguments = {"runner": "apptainer", "subject": "01", "bids_root": s["bids"], "out_root": s["out"],
                 "work_dir": s["work"], "fs_license": s["licence"], "version": VERSION, "image": s["sif"], **change}
    with pytest.raises(SemantoksError, match=message):
        fmriprep_command(**arguments)


def test_paths_that_break_bind_syntax_are_refused(setup):
    s = setup
    with pytest.raises(SemantoksError, match=r"a path with ':' or ',' cannot be bound"):
        fmriprep_command("apptainer", "01", s["tmp"] / "a:b", s["out"], s["work"], s["licence"], VERSION, image=s["sif"])


def test_expected_outputs_for_sessions_and_native_resolution(tmp_path):
    bids = tmp_path / "bids"
    _touch(bids / "dataset_description.json", "{}")
    _touch(bids / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-rest_acq-mb_run-3_bold.nii.gz")
    (run,) = find_bids_runs(bids, cache_dir=False)
    record = expected_fmriprep_outputs(run, tmp_path / "out", "MNI152NLin2009cAsym")
    func = tmp_path / "out" / "sub-02" / "ses-1" / "func"
    assert record.paths() == {
        "bold": f"{func}/sub-02_ses-1_task-rest_acq-mb_run-3_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "mask": f"{func}/sub-02_ses-1_task-rest_acq-mb_run-3_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        "confounds": f"{func}/sub-02_ses-1_task-rest_acq-mb_run-3_desc-confounds_timeseries.tsv",
        "sidecar": f"{func}/sub-02_ses-1_task-rest_acq-mb_run-3_space-MNI152NLin2009cAsym_desc-preproc_bold.json",
    }
    assert record.scan_id == "sub-02_ses-1_task-rest_acq-mb_run-3" and record.problem is None


def test_a_differently_versioned_output_folder_warns(setup):
    s = setup
    _touch(s["out"] / "dataset_description.json", json.dumps({"GeneratedBy": [{"Name": "fMRIPrep", "Version": "20.2.7"}]}))
    with pytest.warns(UserWarning, match=r"written by fMRIPrep 20.2.7 but this run uses 24.1.1"):
        run_fmriprep_subject("01", s["bids"], s["out"], s["work"], s["settings"], SPACE, s["tmp"] / "x.log")
