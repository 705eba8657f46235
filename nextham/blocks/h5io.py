"""On-disk format of one record: an HDF5 group (or file) — ``nextham-record`` version 1.

Layout of a group::

    attrs: format = "nextham-record", format_version = 1, spinful (bool), fermi_energy_eV (float or NaN),
           basis (JSON: {symbol: [[l, label], ...]}), metadata (JSON)
    cell        (3, 3) float64   Å, lattice vectors as rows
    positions   (N, 3) float64   Å, Cartesian
    numbers     (N,)   int64
    pbc         (3,)   bool
    edge_index  (E, 2) int64     atom pairs (i, j), 0-based
    edge_R      (E, 3) int64     lattice translation of atom j
    blocks/S    (nnz_S,)  float64 (or float32 when written with ``dtype="float32"``)
    blocks/H0, blocks/H   float or complex, packed row-major blocks in edge order (eV)

Blocks are gzip-compressed with shuffle. Energies eV, lengths Å.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ..basis.orbitals import Basis
from .record import RecordError, StructureRecord

FORMAT = "nextham-record"
FORMAT_VERSION = 1


def write_record_group(group: h5py.Group, record: StructureRecord, dtype: str = "float64",
                       compression: str | None = "gzip") -> None:
    """Write ``record`` into an (empty) HDF5 group. ``dtype`` "float32" stores blocks in single precision."""
    group.attrs["format"] = FORMAT
    group.attrs["format_version"] = FORMAT_VERSION
    group.attrs["spinful"] = record.spinful
    group.attrs["fermi_energy_eV"] = np.nan if record.fermi_energy_eV is None else float(record.fermi_energy_eV)
    group.attrs["basis"] = record.basis.to_json()
    group.attrs["metadata"] = json.dumps(record.metadata, default=_json_default)
    for key in ("cell", "positions", "numbers", "pbc", "edge_index", "edge_R"):
        group.create_dataset(key, data=getattr(record, key))
    blocks = group.create_group("blocks")
    for name, data in record.blocks.items():
        if dtype == "float32":
            data = data.astype(np.complex64 if np.iscomplexobj(data) else np.float32)
        kw = dict(compression=compression, shuffle=True) if compression and data.size > 256 else {}
        blocks.create_dataset(name, data=data, **kw)


def read_record_group(group: h5py.Group, source: str = "") -> StructureRecord:
    """Read a record written by :func:`write_record_group` (blocks returned in float64/complex128)."""
    where = source or group.name
    if group.attrs.get("format") != FORMAT:
        raise RecordError(f"{where}: not a nextham record (format attribute {group.attrs.get('format')!r})")
    version = int(group.attrs["format_version"])
    if version > FORMAT_VERSION:
        raise RecordError(f"{where}: record format version {version} is newer than this nextham ({FORMAT_VERSION})")
    try:
        blocks = {}
        for name, ds in group["blocks"].items():
            data = ds[()]
            blocks[name] = data.astype(np.complex128 if np.iscomplexobj(data) else np.float64, copy=False)
        ef = float(group.attrs["fermi_energy_eV"])
        return StructureRecord(
            cell=group["cell"][()], positions=group["positions"][()], numbers=group["numbers"][()],
            pbc=group["pbc"][()], basis=Basis.from_json(group.attrs["basis"]),
            edge_index=group["edge_index"][()], edge_R=group["edge_R"][()], blocks=blocks,
            spinful=bool(group.attrs["spinful"]), fermi_energy_eV=None if np.isnan(ef) else ef,
            metadata=json.loads(group.attrs["metadata"]))
    except KeyError as exc:
        raise RecordError(f"{where}: record is missing {exc}") from None


def write_record(path: str | os.PathLike, record: StructureRecord, dtype: str = "float64") -> Path:
    """Write one record to an HDF5 file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            write_record_group(f, record, dtype=dtype)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_record(path: str | os.PathLike) -> StructureRecord:
    """Read one record file; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RecordError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        return read_record_group(f, source=str(path))


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")
