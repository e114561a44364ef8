import os
import subprocess
import sys

import snakemake

from semantoks.snakemake_threads import affected, job_timeline, most_threads_at_once, reserve_lone_jobs

# three jobs one after another (each the only one ready), then six side by side
LONE_THEN_WIDE = """
import os, sys
sys.path.insert(0, {src!r})
from snakemake import __version__
from snakemake.scheduling.job_scheduler import JobScheduler
from semantoks.snakemake_threads import reserve_lone_jobs

if config.get("reserve"):
    reserve_lone_jobs(JobScheduler, __version__)

rule all:
    input: expand("wide_{{i}}.txt", i=range(6))

rule lone:
    output: "lone_{{k}}.txt"
    input: lambda w: [] if w.k == "0" else [f"lone_{{int(w.k) - 1}}.txt"]
    threads: 1
    shell: "sleep 1; touch {{output}}"

rule wide:
    output: "wide_{{i}}.txt"
    input: "lone_2.txt"
    threads: 1
    shell: "sleep 3; touch {{output}}"
"""


def _busiest(folder, reserve):
    (folder / "Snakefile").write_text(LONE_THEN_WIDE.format(src=str(os.path.join(os.path.dirname(__file__), "..", "src"))))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(folder), "--snakefile",
               str(folder / "Snakefile"), "--config", f"reserve={reserve}"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (log,) = (folder / ".snakemake" / "log").glob("*.snakemake.log")
    return most_threads_at_once(job_timeline(log.read_text()))


def test_affected_versions_are_9_10_to_9_16():
    assert affected("9.10.0") and affected("9.15.0") and affected("9.16.3")
    assert not affected("9.9.1") and not affected("9.17.0") and not affected("10.0.0")


def test_reserving_lone_jobs_keeps_a_real_run_within_its_cores(tmp_path):
    (tmp_path / "patched").mkdir()
    assert _busiest(tmp_path / "patched", reserve=True) <= 2
    if affected(snakemake.__version__):
        # the scheduler bug itself: three lone jobs leave five free "cores" for the six wide ones
        (tmp_path / "plain").mkdir()
        assert _busiest(tmp_path / "plain", reserve=False) > 2


def test_patch_is_applied_once_and_not_on_fixed_versions():
    class Scheduler:
        def job_selector(self, jobs):
            return list(jobs)

    assert not reserve_lone_jobs(Scheduler, "9.17.0")
    original = Scheduler.job_selector
    assert reserve_lone_jobs(Scheduler, "9.15.0")
    patched = Scheduler.job_selector
    assert patched is not original and reserve_lone_jobs(Scheduler, "9.15.0") and Scheduler.job_selector is patched


def test_timeline_reads_threads_and_overlap_from_a_log():
    log = "\n".join([
        "[Mon Dec  7 10:00:00 2026]", "rule a:", "    jobid: 1", "    threads: 2",
        "[Mon Dec  7 10:00:01 2026]", "localrule b:", "    jobid: 2",
        "[Mon Dec  7 10:00:05 2026]", "Finished jobid: 1 (Rule: a)",
        "[Mon Dec  7 10:00:06 2026]", "Finished jobid: 2 (Rule: b)",
    ])
    jobs = job_timeline(log)
    assert sorted((rule, threads, end - start) for rule, threads, start, end in jobs) == [("a", 2, 5.0), ("b", 1, 5.0)]
    assert most_threads_at_once(jobs) == 3
