"""Convert one structure or a folder of many (in parallel), collecting failures instead of stopping."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import FormatError
from .deeptb import read_deeptb_all
from .registry import FORMATS, detect_format, read, write


@dataclass
class Outcome:
    source: str
    target: str
    ok: bool
    message: str
    seconds: float


def _detects(path: Path, fmt: str) -> bool:
    if fmt == "auto":
        return any(f.detect(path) for f in FORMATS.values())
    return FORMATS[fmt].detect(path)


def find_structures(root: str | os.PathLike, fmt: str = "auto", max_depth: int = 4) -> tuple[list[Path], list[Path]]:
    """(structure paths under ``root``, leaf folders that hold files but no known format).

    A folder recognised as a structure is not searched further.
    """
    root = Path(root)
    found, unknown = [], []

    def walk(d: Path, depth: int) -> None:
        entries = sorted(d.iterdir())
        subdirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        for p in entries:
            if p.is_file() and p.suffix == ".h5" and fmt in ("auto", "nextham") and FORMATS["nextham"].detect(p):
                found.append(p)
        for p in subdirs:
            if p.name.startswith("OUT."):
                continue
            if _detects(p, fmt):
                found.append(p)
            elif depth < max_depth:
                n_before = len(found)
                walk(p, depth + 1)
                if len(found) == n_before and any(q.is_file() for q in p.iterdir()):
                    unknown.append(p)
            else:
                unknown.append(p)

    walk(root, 1)
    return found, unknown


def convert_one(src: str, dst: str, src_fmt: str, dst_fmt: str, h0: str | None, options: dict,
                write_options: dict | None = None) -> Outcome:
    """Read ``src`` and write ``dst``; never raises for bad input (the reason goes into the outcome).

    ``options`` go to the reader, ``write_options`` to the writer (e.g. ABACUS ``csr_format``)."""
    t0 = time.perf_counter()
    try:
        fmt = detect_format(src) if src_fmt == "auto" else src_fmt
        if fmt == "deeptb" and h0 is None:
            frames = read_deeptb_all(src, basis=options.get("basis"))
            if len(frames) > 1:  # every frame of every trajectory: DST/<trajectory>_<frame>
                for name, record in frames:
                    target = Path(dst) / name.replace("/", "_")
                    suffix = {"nextham": ".h5", "tshs": ".TSHS"}.get(dst_fmt, "")
                    write(record, f"{target}{suffix}", dst_fmt, **(write_options or {}))
                return Outcome(src, dst, True, f"{len(frames)} frames, {frames[0][1].n_atoms} atoms each",
                               time.perf_counter() - t0)
        record = read(src, fmt=src_fmt, h0=h0, **options)
        write(record, dst, dst_fmt, **(write_options or {}))
        n = record.n_edges
        mats = "+".join(record.blocks)
        return Outcome(src, dst, True, f"{record.n_atoms} atoms, {n} blocks, {mats}", time.perf_counter() - t0)
    except FormatError as exc:
        return Outcome(src, dst, False, str(exc), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a bug must not stop a batch; report it with its type
        return Outcome(src, dst, False, f"internal error {type(exc).__name__}: {exc} (please report)",
                       time.perf_counter() - t0)


def target_for(src: Path, root: Path, dst_root: Path, dst_fmt: str) -> Path:
    rel = src.relative_to(root) if src != root else Path(src.name)
    rel = rel.with_suffix("") if rel.suffix == ".h5" else rel
    suffix = {"nextham": ".h5", "tshs": ".TSHS"}.get(dst_fmt)
    return dst_root / (str(rel) + suffix) if suffix else dst_root / rel


def convert_many(items: list[tuple[str, str, str | None]], src_fmt: str, dst_fmt: str, options: dict, jobs: int = 0,
                 progress: Callable[[Outcome], None] | None = None, write_options: dict | None = None
                 ) -> Iterator[Outcome]:
    """Convert ``(src, dst, h0)`` items with ``jobs`` processes (0: one per CPU); yields outcomes as they finish."""
    jobs = jobs or min(len(items), os.cpu_count() or 1)
    if jobs <= 1 or len(items) <= 1:
        for src, dst, h0 in items:
            yield convert_one(src, dst, src_fmt, dst_fmt, h0, options, write_options)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(convert_one, src, dst, src_fmt, dst_fmt, h0, options, write_options)
                   for src, dst, h0 in items]
        for fut in as_completed(futures):
            yield fut.result()
