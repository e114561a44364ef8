"""The default demo end to end: wall time, CPU time and job counts, then how many jobs each edit reruns.

Copies the workflow (src/, workflow/, envs/, Snakefile, config) into a fresh folder, runs
`snakemake --cores 2` there, and, when the run was complete, dry-runs a set of one-line edits
(a module of each stage, a key of each config section) and prints the job count each would rerun.
`--until RULE` stops after a rule (e.g. `--until simulate_subject` times the simulation alone);
`--repo` points at another checkout to compare against.

    python benchmarks/demo.py                          # the default demo (minutes: run it on a quiet machine)
    python benchmarks/demo.py --until simulate_subject
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from semantoks.snakemake_threads import job_timeline, most_threads_at_once

COPIED = ("src", "workflow", "envs", "Snakefile", "config.yaml", "config", ".test")
MODULE_EDITS = ["report/figures.py", "probes/estimators.py", "model/backbone.py", "parcellate.py", "dataset/build.py",
                "simulate/bold.py", "atlas/load.py"]
CONFIG_EDITS = {"probe.n_permutations": 50, "pretrain.steps": 400, "embed.n_crops": 4, "denoise.strategy": "simple",
                "atlas.n_parcels": 200, "cohorts.demo.simulate.seed": 1}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to run")
    parser.add_argument("--configfile", help="config, relative to the repo (default: the Snakefile's own)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--until", help="stop after this rule")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="semantoks-demo-"))
    for name in COPIED:
        source = args.repo / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        elif source.exists():
            shutil.copy2(source, workdir / name)
    options = ["--configfile", args.configfile] if args.configfile else []
    until = ["--until", args.until] if args.until else []

    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = snakemake(workdir, "--cores", args.cores, *until, *options)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    jobs = job_stats(result.stdout + result.stderr)
    print(f"checkout: {args.repo}  until: {args.until or 'the end'}  cores: {args.cores}  "
          f"load average before: {load:.1f}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (Snakemake and its jobs), {sum(jobs.values())} jobs")
    for rule, count in sorted(jobs.items()):
        print(f"  {rule:24s} {count}")
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if logs:
        print_timeline(logs[-1].read_text(), int(args.cores))

    if not args.until:
        print("\njobs rerun per edit (dry run on the finished demo):")
        config_path = workdir / (args.configfile or ("config/config.yaml" if (workdir / "config").is_dir() else "config.yaml"))
        for module in MODULE_EDITS:
            path = workdir / "src" / "semantoks" / module
            with edited(path, path.read_text() + "\n# an edit\n"):
                print(f"  {module:28s} {rerun_count(workdir, options)}")
        for key, value in CONFIG_EDITS.items():
            config = yaml.safe_load(config_path.read_text())
            section = config
            for part in key.split(".")[:-1]:
                section = section.setdefault(part, {})
            section[key.split(".")[-1]] = value
            with edited(config_path, yaml.safe_dump(config, sort_keys=False)):
                print(f"  {key:28s} {rerun_count(workdir, options)}")
    if args.keep:
        print(f"run folder: {workdir}")
    else:
        shutil.rmtree(workdir)


def snakemake(workdir, *args):
    env = {**os.environ, "PYTHONPATH": str(workdir / "src"), "SEMANTOKS_CACHE_DIR": str(workdir / ".cache")}
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def job_stats(text):
    """{rule: count} from the first "Job stats" table Snakemake prints, the `all` rule left out."""
    table = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("\n\n", 1)[0], re.M)
    return {rule: int(count) for rule, count in rows if rule not in ("all", "total")}


def print_timeline(text, cores):
    """Per-rule span and busiest moment; more threads than cores means Snakemake oversubscribed the machine."""
    jobs = job_timeline(text)
    if not jobs:
        return
    first = min(start for _, _, start, _ in jobs)
    print(f"timeline (s from the first job; {len(jobs)} jobs):")
    for rule in sorted({job[0] for job in jobs}, key=lambda r: min(j[2] for j in jobs if j[0] == r)):
        mine = [job for job in jobs if job[0] == rule]
        print(f"  {rule:24s} {min(j[2] for j in mine) - first:6.0f} -> {max(j[3] for j in mine) - first:6.0f}")
    print(f"most threads running at once: {most_threads_at_once(jobs)} (cores: {cores})")


def rerun_count(workdir, options):
    return sum(job_stats(snakemake(workdir, "-n", "--cores", "2", *options).stdout).values())


class edited:
    """Replace a file's text for the duration of a with-block."""

    def __init__(self, path, text):
        self.path, self.text = path, text

    def __enter__(self):
        self.original = self.path.read_text()
        self.path.write_text(self.text)

    def __exit__(self, *exc):
        self.path.write_text(self.original)


if __name__ == "__main__":
    main()
