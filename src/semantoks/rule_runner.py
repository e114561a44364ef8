"""Glue for Snakemake rule scripts: log to the rule's log file, hold to its threads, turn user errors into one line."""

import contextlib
import logging
import os
import sys

from semantoks.errors import SemantoksError, os_error_line

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(threads):
    """Hold this process (BLAS pools, torch) and the processes it starts to `threads` threads.

    Snakemake exports these variables to a script job before Python starts, so BLAS and torch load with
    them; this applies the rule's own `threads` again for pools already loaded, torch (whatever imported
    it first) and child processes such as torchrun.
    """
    threads = max(1, int(threads))
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)


@contextlib.contextmanager
def rule_script(snakemake):
    """Run a rule script body; a SemantoksError becomes one line in the log and on stderr, exit 1."""
    limit_threads(getattr(snakemake, "threads", 1) or 1)
    log_path = snakemake.log[0] if snakemake.log else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
    try:
        yield logging.getLogger(f"semantoks.{snakemake.rule}")
    except SemantoksError as error:
        logging.getLogger("semantoks").error("%s", error)
        print(f"semantoks: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        line = os_error_line(error)
        if line is None:
            raise
        logging.getLogger("semantoks").error("%s", line)
        print(f"semantoks: {line}", file=sys.stderr)
        sys.exit(1)
