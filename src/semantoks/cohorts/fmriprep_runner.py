"""fMRIPrep on one subject through fmriprep-docker or Apptainer: command line, preflight, run, hand-off check."""

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from semantoks.bids_names import check_label
from semantoks.cohorts.bids_raw import expected_fmriprep_outputs, find_bids_runs
from semantoks.cohorts.fmriprep_versions import generated_by_version
from semantoks.errors import SemantoksError

RUNNERS = ("docker", "apptainer")
CONTAINER_LICENSE = "/opt/freesurfer/license.txt"
CONTAINER_TEMPLATEFLOW = "/templateflow"
# spaces that are not TemplateFlow templates (no tpl-* folder needed)
NONSTANDARD_SPACES = {"T1w", "T2w", "anat", "func", "run", "bold", "boldref", "sbref", "fsnative"}
# fMRIPrep always normalises to MNI152NLin2009cAsym, and OASIS30ANTs is its default --skull-strip-template
INTERNAL_TEMPLATES = ("MNI152NLin2009cAsym", "OASIS30ANTs")
_VERSION = re.compile(r"^\d+\.\d+\.\d+([a-z]+\d*)?$")
_OUTPUT_SPACE = re.compile(r"^[A-Za-z0-9]+(:[a-z]+-[A-Za-z0-9]+)*$")
log = logging.getLogger(__name__)


def fmriprep_command(runner, subject, bids_root, out_root, work_dir, fs_license, version,
                     output_spaces=("MNI152NLin2009cAsym:res-2",), nprocs=8, mem_mb=16000, fs_no_reconall=True,
                     skip_bids_validation=False, image=None, templateflow_home=None, extra_args=()):
    """The argv (never a shell string) that runs fMRIPrep `version` on one subject.

    docker: the fmriprep-docker wrapper with image `image` (default nipreps/fmriprep:<version>) and the
    image's own TemplateFlow. apptainer: `apptainer run` of the SIF file `image`, with `templateflow_home`
    bound as TEMPLATEFLOW_HOME when given. `work_dir` is this subject's work folder, kept for resume.
    """
    if runner not in RUNNERS:
        raise SemantoksError(f"fmriprep.runner '{runner}' is not one of {', '.join(RUNNERS)}; set fmriprep.runner.")
    subject = check_label(str(subject).removeprefix("sub-"), "subject", "fMRIPrep participant label")
    check_version(version)
    spaces = _check_output_spaces(output_spaces)
    if any(not isinstance(arg, str) for arg in extra_args):
        raise SemantoksError("fmriprep.extra_args: every item must be a string; quote numbers in config.yaml.")
    bids, out, work, license_file = (_host_path(p, what) for p, what in (
        (bids_root, "bids"), (out_root, "derivatives"), (work_dir, "fmriprep.work_dir"), (fs_license, "fmriprep.fs_license")))
    fmriprep_args = ["--participant-label", subject]
    # fMRIPrep reads --mem_mb as --mem-mb; fmriprep-docker skips its interactive low-memory prompt only for this spelling
    options = ["--output-spaces", *spaces, "--nprocs", str(int(nprocs)), "--mem_mb", str(int(mem_mb))]
    options += ["--fs-no-reconall"] * bool(fs_no_reconall) + ["--skip-bids-validation"] * bool(skip_bids_validation)
    if runner == "docker":
        return ["fmriprep-docker", bids, out, "participant", *fmriprep_args,
                "-i", image or f"nipreps/fmriprep:{version}", "--no-tty", "-w", work,
                "--fs-license-file", license_file, *options, *extra_args]
    if not image:
        raise SemantoksError("fmriprep.image: the apptainer runner needs the path of the fMRIPrep .sif file; set fmriprep.image.")
    binds = ["-B", f"{bids}:/data:ro", "-B", f"{out}:/out", "-B", f"{work}:/work",
             "-B", f"{license_file}:{CONTAINER_LICENSE}:ro"]
    if templateflow_home:
        binds += ["-B", f"{_host_path(templateflow_home, 'templateflow_home')}:{CONTAINER_TEMPLATEFLOW}",
                  "--env", f"TEMPLATEFLOW_HOME={CONTAINER_TEMPLATEFLOW}"]
    return ["apptainer", "run", "--cleanenv", *binds, _host_path(image, "fmriprep.image"),
            "/data", "/out", "participant", *fmriprep_args, "-w", "/work",
            "--fs-license-file", CONTAINER_LICENSE, *options, *extra_args]


def preflight(runner, fs_license, image=None, templateflow_home=None, output_spaces=(), bids_root=None, work_dir=None):
    """Check what fMRIPrep needs before a job starts; the first failure is raised as one clear line."""
    license_file = Path(fs_license) if fs_license else None
    if license_file is None or not license_file.is_file():
        raise SemantoksError(
            f"{fs_license or 'fmriprep.fs_license'}: FreeSurfer licence file not found; get one free at "
            "https://surfer.nmr.mgh.harvard.edu/registration.html and set fmriprep.fs_license to its path.")
    if runner == "docker":
        for tool in ("docker", "fmriprep-docker"):
            if _executable(tool) is None:
                raise SemantoksError(
                    f"{tool}: executable not found on PATH; install Docker and `pip install fmriprep-docker`, "
                    "or use fmriprep.runner: apptainer.")
    elif runner == "apptainer":
        if _executable("apptainer") is None:
            raise SemantoksError("apptainer: executable not found on PATH; load the apptainer module or install Apptainer.")
        if not image or not Path(image).is_file():
            raise SemantoksError(
                f"{image or 'fmriprep.image'}: fMRIPrep SIF image not found; build it with "
                "`apptainer build fmriprep-<version>.sif docker://nipreps/fmriprep:<version>` and set fmriprep.image.")
        if templateflow_home:
            check_templateflow(templateflow_home, output_spaces)
    else:
        raise SemantoksError(f"fmriprep.runner '{runner}' is not one of {', '.join(RUNNERS)}; set fmriprep.runner.")
    if bids_root and work_dir and Path(work_dir).resolve().is_relative_to(Path(bids_root).resolve()):
        raise SemantoksError(f"{work_dir}: the fMRIPrep work folder is inside the BIDS dataset; set fmriprep.work_dir outside it.")


def check_templateflow(templateflow_home, output_spaces):
    """The TemplateFlow folder has a non-empty tpl-<name> folder for every template fMRIPrep will need offline."""
    home = Path(templateflow_home)
    needed = list(INTERNAL_TEMPLATES) + [s.split(":")[0] for s in output_spaces]
    for template in dict.fromkeys(t for t in needed if t not in NONSTANDARD_SPACES):
        folder = home / f"tpl-{template}"
        if not folder.is_dir() or not any(folder.iterdir()):
            raise SemantoksError(
                f"{folder}: TemplateFlow template {template} is missing, and fMRIPrep cannot download it offline; "
                f"fetch it online with `python -c \"import templateflow.api as t; t.get('{template}')\"` "
                f"(TEMPLATEFLOW_HOME={home}) or leave templateflow_home unset to use the image's templates.")


def run_fmriprep(command, log_path, expected_outputs):
    """Run `command`, its output going to `log_path`; then every expected output must exist."""
    argv = [_executable(command[0]) or command[0], *command[1:]]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log_file:
        log_file.write(f"$ {shlex.join(command)}\n")
        log_file.flush()
        try:
            # stdin closed: fmriprep-docker's prompts then fail at once instead of waiting forever
            status = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT).returncode
        except OSError as error:
            raise SemantoksError(f"{command[0]}: could not start ({error.strerror}); check that it is installed.") from None
    if status != 0:
        raise SemantoksError(f"{log_path}: fMRIPrep exited with status {status}; read this log for the cause.")
    missing = [str(p) for p in expected_outputs if not Path(p).exists()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise SemantoksError(
            f"{log_path}: fMRIPrep finished but did not write {', '.join(missing[:3])}{more}; "
            "check --output-spaces and the log, then rerun the subject.")


def run_fmriprep_subject(subject, bids_root, out_root, work_dir, settings, space, log_path,
                         templateflow_home=None, task=None):
    """What the workflow's per-subject rule runs: preflight, command, run, hand-off check.

    `settings` is config.yaml's fmriprep section (runner, version, image, fs_license, fs_no_reconall,
    skip_bids_validation, threads, mem_mb, extra_args); `space` the output space, e.g. 'X:res-2'.
    """
    runner = settings["runner"]
    runs = [run for run in find_bids_runs(bids_root, task=task) if run.subject == str(subject).removeprefix("sub-")]
    if not runs:
        raise SemantoksError(f"{bids_root}: no BOLD runs for sub-{subject}; check the subject label and task filter.")
    expected = [p for run in runs for p in expected_fmriprep_outputs(run, out_root, space).paths().values()]
    if runner == "docker" and templateflow_home:
        log.info("docker runner: fMRIPrep uses the TemplateFlow templates inside the image; %s is not bound", templateflow_home)
        templateflow_home = None
    preflight(runner, settings.get("fs_license"), settings.get("image"), templateflow_home, [space], bids_root, work_dir)
    _warn_other_version(out_root, settings["version"])
    extra = list(settings.get("extra_args") or []) + (["--task-id", task] if task else [])
    command = fmriprep_command(
        runner, subject, bids_root, out_root, work_dir, settings.get("fs_license"), settings["version"],
        output_spaces=[space], nprocs=settings.get("threads", 8), mem_mb=settings.get("mem_mb", 16000),
        fs_no_reconall=settings.get("fs_no_reconall", True), skip_bids_validation=settings.get("skip_bids_validation", False),
        image=settings.get("image"), templateflow_home=templateflow_home, extra_args=extra)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    run_fmriprep(command, log_path, expected)
    return expected


def check_version(version):
    if not isinstance(version, str) or not _VERSION.match(version):
        raise SemantoksError(
            f"fmriprep.version '{version}': not a pinned release; set one version such as 24.1.1 for the whole cohort.")
    return version


def _warn_other_version(out_root, version):
    existing = generated_by_version(Path(out_root) / "dataset_description.json")
    if existing and existing != version:
        warnings.warn(f"{out_root}: written by fMRIPrep {existing} but this run uses {version}; the cohort will mix "
                      "versions (not fatal; pin fmriprep.version to the existing one to avoid it).", stacklevel=2)


def _check_output_spaces(output_spaces):
    spaces = [output_spaces] if isinstance(output_spaces, str) else list(output_spaces)
    for space in spaces:
        if not _OUTPUT_SPACE.match(str(space)):
            raise SemantoksError(
                f"output space '{space}': not fMRIPrep's <template>[:res-N] form; write e.g. MNI152NLin2009cAsym:res-2.")
    if not spaces:
        raise SemantoksError("fMRIPrep output spaces: none given; set the atlas space, e.g. MNI152NLin2009cAsym:res-2.")
    return spaces


def _host_path(path, what):
    if path is None:
        raise SemantoksError(f"{what}: not set; give the path in config.yaml.")
    text = str(Path(path).resolve())
    # ':' and ',' separate fields of a bind (-B src:dst:opts, -v src:dst)
    if ":" in text or "," in text:
        raise SemantoksError(f"{text}: a path with ':' or ',' cannot be bound into the container; rename or move it.")
    return text


def _executable(name):
    """The full path of `name` on PATH, or in this Python's bin folder (fmriprep-docker installed in the venv)."""
    found = shutil.which(name)
    if found is None:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return found
