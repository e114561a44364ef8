"""Training logs on rank 0: log.csv (rewritten atomically), optional TensorBoard, a tqdm bar on a terminal."""

import csv
import io
import sys
import time
from pathlib import Path

from tqdm import tqdm

from semantoks.atomic import write_text

FIXED_FIELDS = ["step", "epoch", "lr", "weight_decay", "momentum", "ttr_weight", "mtm_weight",
                "grad_norm", "scans_per_s", "tokens_per_s"]


class TrainingLog:
    """Rows keyed by completed steps; a resumed run keeps the rows up to its checkpoint, then appends."""

    def __init__(self, out_dir, start_step, total_steps, enabled=True, flush_seconds=30.0):
        self.path = Path(out_dir) / "log.csv"
        self.enabled = enabled
        self.flush_seconds = flush_seconds
        self.rows = self._previous_rows(start_step) if enabled else []
        self.last_flush = time.monotonic()
        self.writer = _tensorboard(Path(out_dir) / "tensorboard") if enabled else None
        # progress lines go to the log (progress_line); the bar is only for a person watching a terminal
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (enabled and sys.stderr.isatty()),
                        dynamic_ncols=True, desc="pretrain", unit="step")

    def _previous_rows(self, start_step):
        if not self.path.is_file() or start_step == 0:
            return []
        with open(self.path, newline="") as handle:
            return [row for row in csv.DictReader(handle) if int(row["step"]) <= start_step]

    def record(self, values):
        """Add one row (a dict with at least `step`); losses appear as their own columns."""
        if not self.enabled:
            return
        self.rows.append(dict(values))
        if self.writer is not None:
            for key, value in values.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, values["step"])
        shown = {k: f"{v:.4g}" for k, v in values.items() if k in ("loss_total", "lr", "scans_per_s")}
        self.bar.set_postfix(shown, refresh=False)
        if time.monotonic() - self.last_flush > self.flush_seconds:
            self.flush()

    def advance(self, n=1):
        self.bar.update(n)

    def flush(self):
        if not self.enabled or not self.rows:
            return
        names = list(FIXED_FIELDS)
        for row in self.rows:
            names += [key for key in row if key not in names]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())
        if self.writer is not None:
            self.writer.flush()
        self.last_flush = time.monotonic()

    def close(self):
        self.flush()
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def progress_line(row, total_steps, eta_seconds):
    """One log line: step, every loss term, lr, scans/s and the time left, e.g. for a scheduler's log file."""
    losses = " ".join(f"{key.removeprefix('loss_')} {value:.4g}" for key, value in row.items()
                      if key.startswith("loss_"))
    minutes, seconds = divmod(int(round(eta_seconds)), 60)
    # health and online-evaluation columns, when this row has them
    extra = " ".join(f"{key} {value:.4g}" for key, value in row.items()
                     if key not in FIXED_FIELDS and not key.startswith("loss_"))
    line = (f"step {row['step']}/{total_steps} | loss {losses} | lr {row['lr']:.3g} | "
            f"{row['scans_per_s']:.1f} scans/s | ETA {minutes // 60:d}h{minutes % 60:02d}m{seconds:02d}s")
    return f"{line} | {extra}" if extra else line


def _tensorboard(log_dir):
    """A SummaryWriter if tensorboard is installed; it is optional."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))
