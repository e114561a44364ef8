"""Keep a workflow's running threads within --cores on the Snakemake versions whose scheduler does not.

Snakemake 9.10-9.16 start a job that is the only one ready without reserving its threads, yet give them
back when it ends (snakemake#3913, fixed in 9.17, which this project cannot require: 9.17 caps
packaging < 26 and nilearn 0.14.1 needs packaging >= 26). The free-core count then drifts upward and
the demo ran 7 threads on 2 cores. `reserve_lone_jobs` makes that path reserve them too.
"""

import datetime
import re

AFFECTED = ((9, 10), (9, 17))


def affected(version):
    """Whether Snakemake `version` ("9.15.0") has the lone-job reservation bug."""
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return AFFECTED[0] <= major_minor < AFFECTED[1]


def reserve_lone_jobs(scheduler_class, version):
    """Patch `scheduler_class.job_selector` (Snakemake's JobScheduler) on affected versions; True if patched."""
    if not affected(version):
        return False
    original = scheduler_class.job_selector
    if getattr(original, "reserves_lone_jobs", False):
        return True

    def job_selector(self, jobs):
        selected = original(self, jobs)
        # the multi-job path has reserved its selection already; the lone-job path has not
        if len(jobs) == 1 and selected:
            with self._lock:
                self.update_available_resources(selected)
        return selected

    job_selector.reserves_lone_jobs = True
    scheduler_class.job_selector = job_selector
    return True


def job_timeline(text):
    """[(rule, threads, start, end)] of every finished job in a Snakemake log, times in seconds (1 s resolution)."""
    jobs, started, now, rule = {}, {}, None, None
    for line in text.splitlines():
        if re.fullmatch(r"\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]", line):
            now = datetime.datetime.strptime(" ".join(line[1:-1].split()), "%a %b %d %H:%M:%S %Y").timestamp()
        elif match := re.match(r"(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif (match := re.match(r"\s+jobid: (\d+)$", line)) and rule:
            started[match.group(1)] = [rule, 1, now]
            rule = None
        elif (match := re.match(r"\s+threads: (\d+)$", line)) and started:
            started[next(reversed(started))][1] = int(match.group(1))
        elif (match := re.match(r"Finished jobid: (\d+)", line)) and match.group(1) in started:
            jobs[match.group(1)] = (*started.pop(match.group(1)), now)
    return list(jobs.values())


def most_threads_at_once(jobs):
    """The largest sum of threads of the jobs running at any job's start (0 for no jobs)."""
    return max((sum(t for _, t, start, end in jobs if start <= moment < end) for _, _, moment, _ in jobs), default=0)
