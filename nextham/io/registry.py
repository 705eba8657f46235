"""Registry of the formats nextham reads and writes, with auto-detection.

=============  ===============================  ======  ======
name           what                             read    write
=============  ===============================  ======  ======
nextham        one record, HDF5 file (.h5)      yes     yes
abacus         ABACUS LCAO calculation folder   yes     yes (legacy or *_nao.csr CSR + STRU)
deeph          new DeepH folder (POSCAR, ...)   yes     yes
deeph-legacy   legacy DeepH folder (lat.dat...) yes     yes
deeptb         DeePTB trajectory folder(s)      yes     yes (one trajectory folder per record)
tshs           SIESTA/TBtrans .TSHS (via sisl)  no      yes (optional extra nextham[sisl])
=============  ===============================  ======  ======
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py

from ..blocks.h5io import read_record, write_record
from ..blocks.record import RecordError, StructureRecord
from .abacus import looks_like_abacus, read_abacus, write_abacus
from .assemble import attach_h0
from .deeph_legacy import looks_like_deeph_legacy, read_deeph_legacy, write_deeph_legacy
from .deeph_new import looks_like_deeph, read_deeph, write_deeph
from .deeptb import looks_like_deeptb, read_deeptb, write_deeptb
from .errors import FormatError, wrap_errors


def _looks_like_nextham(path: str | os.PathLike) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == "nextham-record"
    except OSError:
        return False


def _read_nextham(path, **_):
    return read_record(path)


def _write_nextham(record, path, **_):
    return write_record(path, record)


def _write_only(name: str, path) -> StructureRecord:
    raise FormatError(path, f"{name} is written, not read, by nextham")


def _write_tshs(record, path):
    try:
        import sisl  # noqa: F401  (the optional extra nextham[sisl])
    except ImportError:
        raise FormatError(path, "writing .TSHS needs sisl: pip install 'nextham[sisl]'") from None
    from .sisl_bridge import write_tshs

    return write_tshs(record, path)


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    detect: Callable[[str | os.PathLike], bool]
    read: Callable[..., StructureRecord]
    write: Callable[[StructureRecord, str | os.PathLike], Path]
    target: str  # "file" or "folder"


FORMATS: dict[str, Format] = {
    "nextham": Format("nextham", "nextham record (HDF5 file)", _looks_like_nextham, _read_nextham, _write_nextham, "file"),
    "abacus": Format("abacus", "ABACUS LCAO folder (INPUT, STRU, H(R)/S(R) CSR)", looks_like_abacus,
                     read_abacus, write_abacus, "folder"),
    "deeph": Format("deeph", "DeepH folder, new format (POSCAR, info.json, *.h5 with atom_pairs)", looks_like_deeph,
                    lambda p, **kw: read_deeph(p), write_deeph, "folder"),
    "deeph-legacy": Format("deeph-legacy", "DeepH folder, legacy format (lat.dat, element.dat, hamiltonians.h5)",
                           looks_like_deeph_legacy, lambda p, **kw: read_deeph_legacy(p), write_deeph_legacy, "folder"),
    "tshs": Format("tshs", "SIESTA/TBtrans .TSHS file through sisl (write only)", lambda p: False,
                   lambda p, **kw: _write_only("tshs", p), lambda rec, p, **kw: _write_tshs(rec, p), "file"),
    "deeptb": Format("deeptb", "DeePTB data folder (info.json, cell.dat, positions.dat, hamiltonians.h5, ...)",
                     looks_like_deeptb, lambda p, frame=None, basis=None, **kw: read_deeptb(p, frame=frame, basis=basis),
                     write_deeptb, "folder"),
}


def detect_format(path: str | os.PathLike) -> str:
    """Name of the one format whose files ``path`` holds; :class:`FormatError` when none or several match."""
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "no such file or folder")
    hits = [f.name for f in FORMATS.values() if f.detect(path)]
    if not hits:
        raise FormatError(path, "not a known format (expected a nextham .h5 record, an ABACUS folder with "
                                "H(R)/S(R) CSR files, a DeepH or a DeePTB folder)")
    if len(hits) > 1:
        raise FormatError(path, f"matches several formats {hits}; name one with --from")
    return hits[0]


def read(path: str | os.PathLike, fmt: str = "auto", h0: str | os.PathLike | None = None, **options) -> StructureRecord:
    """Read one structure. ``h0``: a zeroth-step calculation (same format) whose H becomes ``H0``.

    ``options`` go to the format's reader (ABACUS: ``basis``, ``orbital_dirs``, ``step``).
    Every problem with the input surfaces as :class:`FormatError` naming the file (and line).
    """
    name = detect_format(path) if fmt == "auto" else fmt
    if name not in FORMATS:
        raise FormatError(path, f"unknown format {name!r} (known: {', '.join(FORMATS)})")
    spec = FORMATS[name]
    if name == "abacus":
        return wrap_errors(path, spec.read, path, h0=h0, **options)
    record = wrap_errors(path, spec.read, path, **options)
    if h0 is not None:
        h0_name = detect_format(h0) if fmt == "auto" else fmt
        h0_record = wrap_errors(h0, FORMATS[h0_name].read, h0, **options)
        record = wrap_errors(h0, attach_h0, record, h0_record, where=h0)
    return record


def write(record: StructureRecord, path: str | os.PathLike, fmt: str, **options) -> Path:
    """Write one record in format ``fmt`` (a file for ``nextham``, a folder otherwise).

    ``options`` go to the format's writer (ABACUS: ``csr_format="legacy"|"nao"``)."""
    if fmt not in FORMATS:
        raise FormatError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    try:  # never write what nextham could not read back (NaN blocks, wrongly sized matrices)
        record.validate(hermitian_tol=None)
    except (RecordError, ValueError, IndexError) as exc:  # inconsistent array lengths fail inside the check
        raise FormatError(path, f"not written: invalid record ({exc})") from None
    return wrap_errors(path, FORMATS[fmt].write, record, path, **options)
