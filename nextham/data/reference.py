"""Record references: the one place that turns a command-line argument into records.

Every command that takes a record takes any of (ASE's ``file@index`` convention)::

    record.h5              a nextham record file
    abacus_run/            an ABACUS or DeepH folder (anything ``nextham convert`` reads)
    data.lmdb@N            record N of a dataset store (N < 0 counts from the end)
    export.h5@N            record N of an HDF5 export (``DatasetStore.export_hdf5``)
    records/@N             record N of a folder of record files (sorted by name)
    data.lmdb@A:B[:STEP]   a slice (``convert``, ``export``): Python slice rules

A dataset of exactly one record may be named without ``@``. A path that exists as given is never
split at ``@`` (a file may have ``@`` in its name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..basis.orbitals import BasisError
from ..blocks.record import RecordError, StructureRecord
from ..errors import InputFileError, UserError, UsageError

#: what decoding a damaged HDF5 file can raise (h5py, numpy, JSON, the record's own checks)
_DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RuntimeError)


def guarded(where: str | os.PathLike, fn, *args, **kwargs):
    """Call ``fn`` reading file content; an exception caused by damaged or invalid content becomes an
    :class:`InputFileError` naming ``where`` (the file, or ``FILE@N``)."""
    try:
        return fn(*args, **kwargs)
    except (UserError, RecordError, BasisError):
        raise
    except _DECODE_ERRORS as exc:
        text = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputFileError(f"{where}: damaged or invalid record data ({type(exc).__name__}: {text})") from None


@dataclass(frozen=True)
class RecordRef:
    """One resolved record: where it came from (for messages and labels) and how to describe it."""

    path: Path
    index: int | None  # position in a dataset; None for a single-record file or folder
    key: str = ""
    source: str = ""  # the structure file the record was computed from, where known
    name: str = ""

    @property
    def label(self) -> str:
        return self.path.name if self.index is None else f"{self.path.name}@{self.index}"


def split_reference(text: str | os.PathLike) -> tuple[Path, str | None]:
    """``"data.lmdb@-1"`` -> ``(Path("data.lmdb"), "-1")``; an existing path is returned whole."""
    text = os.fspath(text)
    if Path(text).exists() or "@" not in text:
        return Path(text), None
    base, selector = text.rsplit("@", 1)
    return Path(base), selector.strip()


def parse_selector(selector: str, n: int, where: str, allow_slice: bool = True) -> list[int]:
    """Indices selected by ``"N"`` or ``"A:B[:STEP]"`` from ``n`` records (negative from the end)."""
    try:
        if ":" in selector:
            if not allow_slice:
                raise UsageError(f"{where}@{selector}: this command takes one record (DATASET@N), not a slice")
            parts = [int(p) if p.strip() else None for p in selector.split(":")]
            if len(parts) > 3 or parts[2:3] == [0]:
                raise ValueError
            picked = list(range(n))[slice(*parts)]
            if not picked:
                raise UsageError(f"{where}@{selector}: the slice selects no records (the dataset holds {n})")
            return picked
        i = int(selector)
    except UsageError:
        raise
    except ValueError:
        raise UsageError(f"{where}@{selector}: expected a record index N or a slice A:B after '@'") from None
    if not -n <= i < n:
        raise UsageError(f"{where}@{selector}: record {i} out of range (the dataset holds {n}: 0..{n - 1}, "
                         f"or -{n}..-1 from the end)" if n else f"{where}@{selector}: the dataset holds no records")
    return [i % n]


class Collection:
    """Records addressable by index: a dataset store, an HDF5 export or a folder of record files."""

    kind = ""

    def __init__(self, path: Path):
        self.path = path

    def __len__(self) -> int:
        raise NotImplementedError

    def record(self, index: int) -> StructureRecord:
        raise NotImplementedError

    def ref(self, index: int) -> RecordRef:
        return RecordRef(self.path, index)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StoreCollection(Collection):
    kind = "nextham-dataset"

    def __init__(self, path: Path):
        from .store import DatasetStore

        super().__init__(path)
        self.store = DatasetStore(path)
        self._status: dict[str, dict] | None = None

    def __len__(self) -> int:
        return len(self.store)

    def record(self, index: int) -> StructureRecord:
        return self.store[index]

    def ref(self, index: int) -> RecordRef:
        key = self.store.key(index)
        if self._status is None:
            self._status = self.store.status()
        st = self._status.get(key, {})
        return RecordRef(self.path, index, key, str(st.get("source", "")), str(st.get("name", "")))

    def close(self) -> None:
        self.store.close()


class ExportCollection(Collection):
    kind = "nextham-dataset-hdf5"

    def __init__(self, path: Path):
        import h5py

        super().__init__(path)
        self.file = guarded(path, h5py.File, path, "r")
        self.names = guarded(path, lambda: sorted(self.file["records"]) if "records" in self.file else [])

    def __len__(self) -> int:
        return len(self.names)

    def record(self, index: int) -> StructureRecord:
        from ..blocks.h5io import read_record_group

        where = f"{self.path}@{index}"
        return guarded(where, lambda: read_record_group(self.file["records"][self.names[index]], source=where))

    def ref(self, index: int) -> RecordRef:
        key = guarded(f"{self.path}@{index}", lambda: self.file["records"][self.names[index]].attrs.get("key", ""))
        return RecordRef(self.path, index, str(key))

    def close(self) -> None:
        self.file.close()


class FolderCollection(Collection):
    kind = "folder of nextham records"

    def __init__(self, path: Path):
        super().__init__(path)
        self.files = sorted(path.glob("*.h5"))

    def __len__(self) -> int:
        return len(self.files)

    def record(self, index: int) -> StructureRecord:
        from ..blocks.h5io import read_record

        return guarded(self.files[index], read_record, self.files[index])

    def ref(self, index: int) -> RecordRef:
        return RecordRef(self.path, index, self.files[index].stem, str(self.files[index]), self.files[index].name)


def _hdf5_format(path: Path) -> str | None:
    import h5py

    if not h5py.is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            if fmt is None and "records" in f and "manifest" in f.attrs:
                return "nextham-dataset-hdf5"  # exports written before the format attribute
            return fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    except _DECODE_ERRORS as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})") from None


def _is_lmdb(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(20)
    return len(head) == 20 and head[16:20] == (0xBEEFC0DE).to_bytes(4, "little")


def _existing(path: Path) -> None:
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")


def open_collection(path: Path) -> Collection | None:
    """The indexable dataset at ``path``, or None when ``path`` holds a single record (file or DFT folder)."""
    _existing(path)
    if path.is_dir():
        from ..io.registry import FORMATS

        if any(f.detect(path) for f in FORMATS.values()):
            return None
        if any(path.glob("*.h5")):
            return FolderCollection(path)
        raise InputFileError(f"{path}: a folder that holds neither an ABACUS/DeepH calculation nor nextham "
                             f"record files (*.h5)")
    fmt = _hdf5_format(path)
    if fmt == "nextham-record":
        return None
    if fmt == "nextham-dataset-hdf5":
        return ExportCollection(path)
    if fmt is not None:
        raise InputFileError(f"{path}: HDF5 file but not a nextham record or dataset (format attribute {fmt!r})")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file")
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise InputFileError(f"{path}: not a readable HDF5 file (no HDF5 signature: damaged or not HDF5)")
    if _is_lmdb(path):
        return StoreCollection(path)
    raise InputFileError(f"{path}: not a nextham record (.h5), dataset (made by `nextham generate`) or "
                         f"ABACUS/DeepH folder")


def _read_single(path: Path) -> StructureRecord:
    if path.is_dir():
        from ..io import read

        return read(path)
    from ..blocks.h5io import read_record

    return guarded(path, read_record, path)


def resolve(text: str | os.PathLike, allow_slice: bool = False) -> Iterator[tuple[RecordRef, StructureRecord]]:
    """Every (reference, record) that ``text`` names; records are read lazily, in order."""
    path, selector = split_reference(text)
    coll = open_collection(path)
    if coll is None:
        if selector not in (None, "0", "-1", ":", "0:1"):
            raise UsageError(f"{path}@{selector}: {path} holds a single record (use {path} or {path}@0)")
        yield RecordRef(path, None), _read_single(path)
        return
    with coll:
        n = len(coll)
        if selector is None:
            if n != 1 and not allow_slice:
                raise UsageError(f"{path}: a dataset of {n} records; name one as {path}@N "
                                 f"(e.g. {path}@0, or {path}@-1 for the last)")
            indices = list(range(n))
        else:
            indices = parse_selector(selector, n, str(path), allow_slice=allow_slice)
        for i in indices:
            yield coll.ref(i), coll.record(i)


def open_record(text: str | os.PathLike, validate: bool = True) -> tuple[RecordRef, StructureRecord]:
    """The one record that ``text`` names (``FILE``, ``FOLDER``, ``DATASET@N``), checked for shapes
    and finiteness (``validate``)."""
    ((ref, rec),) = list(resolve(text, allow_slice=False))
    return ref, (validated(ref, rec) if validate else rec)


def validated(ref: RecordRef, rec: StructureRecord) -> StructureRecord:
    """``rec`` after its shape/finiteness check (no Hermiticity tolerance); any failure of the check on
    inconsistent arrays is an :class:`InputFileError` naming the record."""
    where = ref.path if ref.index is None else f"{ref.path}@{ref.index}"
    try:
        return rec.validate(hermitian_tol=None)
    except (RecordError, *_DECODE_ERRORS) as exc:
        raise InputFileError(f"{where}: invalid record ({exc})") from None


def count_selected(text: str | os.PathLike) -> int:
    """How many records ``text`` names (1 for a single record)."""
    path, selector = split_reference(text)
    coll = open_collection(path)
    if coll is None:
        return 1
    with coll:
        n = len(coll)
        return n if selector is None else len(parse_selector(selector, n, str(path)))


def is_reference(text: str | os.PathLike) -> bool:
    """True when ``text`` names records of a dataset (``@`` selector, or a dataset store/export)."""
    path, selector = split_reference(text)
    if selector is not None:
        return True
    if not path.exists():
        return False
    from .store import StoreError

    try:
        coll = open_collection(path)
    except (UserError, StoreError):  # not a readable dataset: the caller's reader reports the problem
        return False
    if coll is None:
        return False
    coll.close()
    return not isinstance(coll, FolderCollection)
