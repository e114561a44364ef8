"""Indexing a large fMRIPrep derivatives tree: semantoks' run index (cold and cached) vs a recursive glob.

    python benchmarks/onboard_index.py [--subjects 3000] [--runs 2] [--repeats 3]

Builds a synthetic derivatives tree of empty files in fMRIPrep's layout (anat/, figures/, log/ and func/
with two spaces per run) under benchmarks/_scratch, then times, in the same process and with a warm file
system cache for all three:
  reference  glob.glob(root + "/**/*_desc-preproc_bold.nii.gz", recursive=True)
  cold       find_preprocessed_runs with an empty cache folder (lists every subject, writes the cache)
  cached     find_preprocessed_runs again (stats the folders, reads the cache)
and prints the ratios.
"""

import argparse
import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from semantoks.cohorts.derivatives import find_preprocessed_runs  # noqa: E402

SPACES = ("MNI152NLin2009cAsym_res-2", "T1w")
ANAT = [f"sub-{{s}}_{name}" for name in (
    "desc-preproc_T1w.nii.gz", "desc-preproc_T1w.json", "desc-brain_mask.nii.gz", "dseg.nii.gz",
    "label-CSF_probseg.nii.gz", "label-GM_probseg.nii.gz", "label-WM_probseg.nii.gz",
    "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5", "from-MNI152NLin2009cAsym_to-T1w_mode-image_xfm.h5",
    "space-MNI152NLin2009cAsym_res-2_desc-preproc_T1w.nii.gz")]


def build_tree(root, n_subjects, n_runs):
    sidecar = json.dumps({"RepetitionTime": 2.0, "SkullStripped": False})
    for i in range(n_subjects):
        s = f"{i:05d}"
        subject = root / f"sub-{s}"
        for folder in ("anat", "func", "figures", "log/20240101-000000_abc"):
            (subject / folder).mkdir(parents=True, exist_ok=True)
        for name in ANAT:
            (subject / "anat" / name.format(s=s)).touch()
        for k in range(12):
            (subject / "figures" / f"sub-{s}_desc-figure{k}_bold.svg").touch()
        (subject / "log/20240101-000000_abc/fmriprep.toml").write_text('[environment]\nversion = "23.2.1"\n')
        for run in range(1, n_runs + 1):
            stem = subject / "func" / f"sub-{s}_task-rest_run-{run}"
            for suffix in ("desc-confounds_timeseries.tsv", "desc-confounds_timeseries.json", "desc-coreg_boldref.nii.gz",
                           "desc-hmc_boldref.nii.gz", "from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt"):
                Path(f"{stem}_{suffix}").touch()
            for space in SPACES:
                for suffix in ("desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz", "boldref.nii.gz"):
                    Path(f"{stem}_space-{space}_{suffix}").touch()
                Path(f"{stem}_space-{space}_desc-preproc_bold.json").write_text(sidecar)


def timed(function):
    """(wall seconds, CPU seconds of this process, result); CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default=str(Path(__file__).resolve().parent / "_scratch" / "onboard_index"))
    args = parser.parse_args()
    scratch = Path(args.scratch)
    root = scratch / f"fmriprep-{args.subjects}x{args.runs}"
    if not (root / f"sub-{args.subjects - 1:05d}").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        build_seconds, _, _ = timed(lambda: build_tree(root, args.subjects, args.runs))
        print(f"built {args.subjects} subjects x {args.runs} runs in {build_seconds:.1f} s")
    n_files = sum(len(files) for _, _, files in os.walk(root))
    space = "MNI152NLin2009cAsym:res-2"
    times = {"reference": [], "cold": [], "cached": []}
    for repeat in range(args.repeats):
        cache = scratch / f"cache-{repeat}"
        shutil.rmtree(cache, ignore_errors=True)
        *reference, found = timed(lambda: glob.glob(str(root) + "/**/*_desc-preproc_bold.nii.gz", recursive=True))
        *cold, runs = timed(lambda: find_preprocessed_runs(root, space, cache_dir=cache))
        *cached, again = timed(lambda: find_preprocessed_runs(root, space, cache_dir=cache))
        for name, seconds in (("reference", reference), ("cold", cold), ("cached", cached)):
            times[name].append(seconds)
        assert again == runs and len(runs) == args.subjects * args.runs and len(found) == len(runs) * len(SPACES)
        assert all(run.problem is None for run in runs)
    print(f"tree: {args.subjects} subjects x {args.runs} runs, {n_files} files; best of {args.repeats} (wall / CPU seconds)")
    best = {name: [min(v[k] for v in values) for k in (0, 1)] for name, values in times.items()}
    labels = {"reference": 'reference glob.glob("**/*_desc-preproc_bold.nii.gz", recursive=True)',
              "cold": "semantoks index, cold (list + parse + write cache)", "cached": "semantoks index, cached"}
    for name, (wall, cpu) in best.items():
        ratio = "" if name == "reference" else (
            f"  glob/this: {best['reference'][0] / wall:.1f}x wall, {best['reference'][1] / cpu:.1f}x CPU")
        print(f"{labels[name]:<72} {wall:6.3f} / {cpu:6.3f}{ratio}")
    print(f"cold/cached: {best['cold'][0] / best['cached'][0]:.1f}x wall, {best['cold'][1] / best['cached'][1]:.1f}x CPU")


if __name__ == "__main__":
    main()
