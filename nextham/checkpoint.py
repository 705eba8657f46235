"""Checkpoints: plain dicts of tensors and primitives, saved atomically, loaded with ``weights_only``.

Layout (``format = "nextham-checkpoint"``, ``format_version = 1``)::

    config     dict   the TrainConfig (JSON types)
    basis      str    Basis JSON of every element the model was trained on
    spinful    bool
    versions   dict   nextham, torch, e3nn, python
    split      dict   {"train": [...], "val": [...], "test": [...]} (dataset indices)
    dataset    str    dataset path at training time
    model      state_dict (tensors)
    optimizer  state_dict (tensors and numbers)   (absent in exported model files)
    progress   dict   epoch, step, step_in_epoch, global_step, best_val, finished
    rng        dict   torch CPU state (uint8 tensor), CUDA states (list of tensors)
    metrics    dict   last epoch's metrics (floats)

Never a pickled object: ``torch.load(path, weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "nextham-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit."""


def versions() -> dict[str, str]:
    out = {"torch": str(torch.__version__), "python": platform.python_version()}
    try:
        from importlib.metadata import version

        out["nextham"] = str(version("nextham"))
    except Exception:  # pragma: no cover - not installed as a distribution
        out["nextham"] = "unknown"
    try:
        import e3nn

        out["e3nn"] = str(e3nn.__version__)
    except Exception:  # pragma: no cover
        pass
    return out


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write atomically: temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; errors name the file and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable nextham checkpoint ({_load_reason(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a nextham checkpoint")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {data['format_version']} is newer than this nextham "
                              f"({FORMAT_VERSION}); upgrade nextham")
    return data


def _load_reason(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to retry with
    ``weights_only=False`` (that would execute code from the file)."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return ("it holds pickled Python objects other than tensors and plain data; nextham refuses to "
                "unpickle them because that can run code from the file")
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first[:200]}"
