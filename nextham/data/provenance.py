"""Which engine and settings produced a record, a dataset or a model's training data; and whether
two of them match (comparing bands of different bases or grid spacings is a silent error).

Settings are plain dicts (``{"engine": name, "settings": {...}, "soc": bool}``) read from
record metadata, the dataset manifest (``run_settings``) or the checkpoint (``engine``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..blocks.record import StructureRecord
from ..errors import InputFileError

#: settings that do not change the matrices (only cost or logging)
IGNORED_SETTINGS = frozenset({"sleep", "log_file", "check_kpoints"})


def record_settings(record: StructureRecord) -> dict[str, Any]:
    """Engine name and settings stored in a record's metadata (empty dict when not recorded)."""
    md = record.metadata or {}
    name = md.get("engine")
    settings = md.get("settings")
    if isinstance(name, dict):  # {"name": ..., "settings": ...}
        name, settings = name.get("name"), name.get("settings")
    if not name and not settings:
        return {}
    return {"engine": str(name or ""), "settings": dict(settings or {})}


def checkpoint_settings(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Engine of a checkpoint's training data (``{"engine": name, "settings": {...}, "soc": bool}``)."""
    eng = ckpt.get("engine") or {}
    try:
        settings = json.loads(eng.get("settings_json", "{}") or "{}")
    except ValueError:
        settings = {}
    return {"engine": str(eng.get("name", "") or ""), "settings": settings, "soc": bool(ckpt.get("spinful"))}


def dataset_settings(path: str | os.PathLike) -> dict[str, Any]:
    """Engine settings a dataset store was generated with (its manifest's ``run_settings``)."""
    from .store import DatasetStore

    with DatasetStore(path) as store:
        run = store.manifest.get("run_settings")
        if not run and len(store):
            return {**record_settings(store[0]), "soc": store[0].spinful}
    if not run:
        raise InputFileError(f"{path}: the dataset does not record its engine settings")
    return {"engine": run["engine"], "settings": dict(run.get("engine_settings", {})), "soc": bool(run.get("soc"))}


def settings_like(path: str | os.PathLike) -> dict[str, Any]:
    """Engine name, settings and SOC of a model (checkpoint) or a dataset, for ``generate --like``."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such model or dataset")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory; --like takes a model (.pt) or a dataset file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":  # torch's zip checkpoint
        from ..checkpoint import load_checkpoint

        found = checkpoint_settings(load_checkpoint(path))
        if not found["engine"]:
            raise InputFileError(f"{path}: the model does not record the engine settings of its training data")
        return found
    return dataset_settings(path)


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two settings dicts (``engine`` and ``settings``)."""
    out = []
    if a.get("engine") and b.get("engine") and a["engine"] != b["engine"]:
        out.append(f"engine {a['engine']} vs {b['engine']}")
    sa, sb = a.get("settings") or {}, b.get("settings") or {}
    for k in sorted((set(sa) | set(sb)) - IGNORED_SETTINGS):
        if k in sa and k in sb and sa[k] != sb[k]:
            out.append(f"{k} {sa[k]!r} vs {sb[k]!r}")
    return out


def basis_differences(a: StructureRecord, b: StructureRecord) -> list[str]:
    """Elements whose orbital basis differs between two records."""
    out = []
    bb = {e.symbol: e for e in b.basis.elements}
    for e in a.basis.elements:
        other = bb.get(e.symbol)
        if other is not None and other.ls != e.ls:
            out.append(f"{e.symbol}: {e.spec()} vs {other.spec()}")
    return out
