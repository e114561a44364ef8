"""Write simulated runs as fMRIPrep-style derivatives plus raw BIDS sidecars."""

import gzip

import nibabel as nib
import numpy as np
from threadpoolctl import threadpool_limits

from semantoks.atomic import atomic_path, write_json, write_table_tsv
from semantoks.simulate.bold import simulate_run_data, subject_anatomy
from semantoks.simulate.cohort_files import write_cohort_files
from semantoks.simulate.fmriprep_confounds import confounds_table, format_table
from semantoks.simulate.grid import build_grid
from semantoks.simulate.paths import derivative_paths
from semantoks.simulate.plan import RunPlan, plan_cohort

GZIP_LEVEL = 4
MNI_XFORM_CODE = 4


def simulate_run(plan, run, atlas_img, labels, out_root, grid=None):
    """Write one run's files (BOLD, mask, confounds, sidecars); `run` is a RunPlan or its scan id."""
    run = run if isinstance(run, RunPlan) else plan.run(run)
    grid = grid if grid is not None else build_grid(atlas_img, labels, plan.resolution_mm, plan.params)
    subject = plan.subject(run.subject)
    return _write_run(plan, subject, run, grid, subject_anatomy(plan, subject, grid), out_root)


def simulate_subject(plan, subject, atlas_img, labels, out_root, grid=None):
    """Write every run of one subject (label `01` or `sub-01`); returns one summary per run."""
    subject = plan.subject(subject)
    grid = grid if grid is not None else build_grid(atlas_img, labels, plan.resolution_mm, plan.params)
    anatomy = subject_anatomy(plan, subject, grid)
    return [_write_run(plan, subject, run, grid, anatomy, out_root) for run in plan.runs_of(subject.label)]


def simulate_cohort(out_root, atlas_img, labels, n_subjects=48, seed=0, resolution_mm=6.0, n_volumes=None):
    """Plan, simulate every subject and write the cohort files; returns the plan."""
    plan = plan_cohort(n_subjects=n_subjects, seed=seed, resolution_mm=resolution_mm, n_volumes=n_volumes)
    grid = build_grid(atlas_img, labels, plan.resolution_mm, plan.params)
    for subject in plan.subjects:
        simulate_subject(plan, subject.label, atlas_img, labels, out_root, grid=grid)
    write_cohort_files(plan, out_root)
    return plan


def _write_run(plan, subject, run, grid, anatomy, out_root):
    paths = derivative_paths(out_root, run)
    # one BLAS thread: jobs run side by side on few cores, and threaded BLAS on small matrices only contends
    with threadpool_limits(limits=1):
        run_data = simulate_run_data(plan, subject, run, grid, anatomy)
        table, compcor = confounds_table(run_data, grid, run)
    bold = nib.Nifti1Image(grid.volume(run_data.data), grid.affine)
    bold.header.set_zooms(bold.header.get_zooms()[:3] + (run.tr,))
    _write_nifti(bold, paths["bold"])
    _write_nifti(nib.Nifti1Image(grid.mask.astype(np.uint8), grid.affine), paths["mask"])
    write_table_tsv(paths["confounds"], format_table(table))
    write_json(paths["confounds_sidecar"], compcor)
    write_json(paths["sidecar"], {
        "RepetitionTime": run.tr,
        "TaskName": run.task,
        "SkullStripped": True,
        "SliceTimingCorrected": False,
        "Description": "Simulated by semantoks-simulate in place of fMRIPrep's preprocessed BOLD.",
    })
    write_json(paths["raw_sidecar"], {
        "TaskName": run.task,
        "RepetitionTime": run.tr,
        "EchoTime": 0.03,
        "FlipAngle": 75 if run.tr >= 2.0 else 60,
        "MagneticFieldStrength": 3,
        "Manufacturer": "semantoks-simulate",
        "InstitutionName": f"Simulated site {subject.site}",
    })
    fd = run_data.framewise_displacement
    return {"scan_id": run.scan_id, "n_volumes": run.n_volumes, "mean_fd": float(np.nanmean(fd)),
            "heavy_motion": run.heavy_motion, "bold": paths["bold"]}


def _write_nifti(image, target):
    """Gzip with a fixed timestamp so the same seed gives byte-identical files."""
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(image.affine, code=MNI_XFORM_CODE)
    image.set_qform(image.affine, code=MNI_XFORM_CODE)
    with atomic_path(target) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0))
