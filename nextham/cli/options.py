"""Option checks shared by the commands, run before any work starts (each raises ``UsageError``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..errors import UsageError


def parse_window(text: str) -> tuple[float, float]:
    """``"lo,hi"`` (eV) with finite lo < hi."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--window must be 'lo,hi' in eV, e.g. -6,6 (got {text!r})") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise UsageError(f"--window {text}: needs finite lo < hi (eV, relative to E_F)")
    return lo, hi


def check_output_path(path: Path, suffixes: Sequence[str] | None, option: str, force: bool = True) -> None:
    """An output file in an existing folder (nothing is created but the file), with a known suffix,
    not a folder, and (unless ``force``) not an existing file."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: unknown file type {path.suffix or '(none)'!r}; use "
                         f"{', '.join(suffixes)}")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{option} {path}: folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is not a folder")
    if not force and path.exists():
        raise UsageError(f"{option} {path}: already exists; pass --force to overwrite it")


def check_device(device: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and CUDA must be available when asked for."""
    import torch

    if device == "auto" or device == "cpu":
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r}: unknown device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: unsupported device type (use auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def positive_int(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{option} must be a positive integer (got {value})")


def parse_mesh(text: str, option: str = "--k-mesh") -> tuple[int, int, int]:
    try:
        mesh = tuple(int(x) for x in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"{option} needs three positive integers like 4,4,4 (got {text!r})") from None
    if len(mesh) != 3 or min(mesh) < 1:
        raise UsageError(f"{option} needs three positive integers like 4,4,4 (got {text!r})")
    return mesh  # type: ignore[return-value]
