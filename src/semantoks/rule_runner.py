"""Glue for Snakemake rule scripts: log to the rule's log file, turn user errors into one line."""

import contextlib
import logging
import sys

from semantoks.errors import SemantoksError, os_error_line


@contextlib.contextmanager
def rule_script(snakemake):
    """Run a rule script body; a SemantoksError becomes one line in the log and on stderr, exit 1."""
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
