"""What a training run writes beside its checkpoints (rank 0 only), and how it stops on a signal.

``config.yaml`` (the resolved config), ``metrics.csv`` (one row per epoch, rewritten atomically; rows
of epochs after the resume point are dropped), TensorBoard scalars under ``tensorboard/`` and a
one-line summary per epoch through ``log``.
"""

from __future__ import annotations

import contextlib
import csv
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

from ..data.access import atomic_write_text

SUMMARY_KEYS = ("epoch", "train_loss", "val_loss", "val_gauge_mae_meV", "val_h0_gauge_mae_meV", "epoch_time_s")


class RunLog:
    """The run's logs in ``out`` (nothing is written when ``enabled`` is false, i.e. on ranks > 0)."""

    _tensorboard_warned = False

    def __init__(self, out: Path, config_yaml: str, enabled: bool, tensorboard: bool, log: Callable[[str], None]):
        self.out, self.enabled, self.log = Path(out), enabled, log
        self.writer = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", config_yaml)
        if tensorboard:
            self.writer = self._tensorboard()

    def _tensorboard(self):
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if not RunLog._tensorboard_warned:
                self.log("tensorboard is not installed: metrics go to metrics.csv only "
                         "(pip install tensorboard to get TensorBoard logs)")
                RunLog._tensorboard_warned = True
            return None
        return SummaryWriter(log_dir=str(self.out / "tensorboard"))

    def write(self, metrics: dict) -> None:
        """Append one epoch's metrics (``metrics["epoch"]`` counts from 1)."""
        if not self.enabled:
            return
        path = self.out / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < metrics["epoch"]]
        rows.append({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in metrics.items()})
        keys = list(dict.fromkeys(k for r in rows for k in r))
        text_rows = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
        atomic_write_text(path, "\n".join(text_rows) + "\n")
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.writer.add_scalar(k, v, metrics["epoch"])
            self.writer.flush()
        self.log(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in metrics.items() if k in SUMMARY_KEYS))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call ``handler(signum)`` on SIGINT/SIGTERM inside the block (main thread only; elsewhere Python
    cannot install handlers and the block runs without them); the old handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, lambda signum, frame: handler(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
