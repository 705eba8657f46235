"""Dataset access: random access to records, their basis and spin, and the train/val/test split.

A dataset is either a nextham dataset store (one LMDB file, :mod:`nextham.data.store`) or a folder of
record files (``*.h5`` written by :func:`nextham.blocks.h5io.write_record`), or records in memory.
The split lives beside the data: ``<dataset>.splits.json`` for a file, ``<folder>/splits.json`` for a
folder. It is created once (seeded) and then reused, so every run, evaluation and resumed job sees the
same split; checkpoints carry a copy.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import h5py
import numpy as np

from ..basis.orbitals import Basis
from ..blocks.h5io import read_record
from ..blocks.record import StructureRecord
from .store import DatasetStore

SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset cannot be opened or its split does not match it."""


class RecordSource(Protocol):
    path: Path | None

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> StructureRecord: ...

    def content(self) -> tuple[Basis, bool]:
        """(union of the records' bases, spin flag), without reading the blocks where the source allows."""
        ...


def dataset_content(where: str, pairs: Iterable[tuple[Basis, bool]]) -> tuple[Basis, bool]:
    """Union of the bases and the one spin flag of ``(basis, spinful)`` pairs (one per record)."""
    basis, spins = None, set()
    for b, spinful in pairs:
        basis = b if basis is None else basis.merged(b)
        spins.add(bool(spinful))
    return _one_spin(where, basis, spins)


def _one_spin(where: str, basis: Basis | None, spins: set[bool] | Sequence[bool]) -> tuple[Basis, bool]:
    if basis is None:
        raise DatasetError(f"{where}: the dataset holds no records")
    if len(set(spins)) != 1:
        raise DatasetError(f"{where}: the dataset mixes spinful and spinless records; train them separately")
    return basis, bool(next(iter(spins)))


class ListSource:
    """Records held in memory."""

    def __init__(self, records: Sequence[StructureRecord], path: str | os.PathLike | None = None):
        self.records = list(records)
        self.path = Path(path) if path is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> StructureRecord:
        return self.records[index]

    def content(self) -> tuple[Basis, bool]:
        return dataset_content(str(self.path or "records"), ((r.basis, r.spinful) for r in self.records))


class FolderSource:
    """A folder of record files, sorted by name."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.files = sorted(p for p in self.path.glob("*.h5"))
        if not self.files:
            raise DatasetError(f"{self.path}: no record files (*.h5) in this folder")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> StructureRecord:
        return read_record(self.files[index])

    def content(self) -> tuple[Basis, bool]:
        """From the record files' attributes (the blocks are not read)."""
        def attrs(path: Path) -> tuple[Basis, bool]:
            try:
                with h5py.File(path, "r") as f:
                    return Basis.from_json(f.attrs["basis"]), bool(f.attrs["spinful"])
            except (OSError, KeyError) as exc:
                raise DatasetError(f"{path}: not a readable nextham record ({exc})") from None

        return dataset_content(str(self.path), (attrs(p) for p in self.files))


class StoreSource:
    """A nextham dataset store file, opened lazily per process (safe with DataLoader workers)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._store: DatasetStore | None = None
        self._n = len(self._open())

    def _open(self) -> DatasetStore:
        if self._store is None:
            self._store = DatasetStore(self.path, mode="r")
        return self._store

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> StructureRecord:
        return self._open()[index]

    def content(self) -> tuple[Basis, bool]:
        """From the store's manifest."""
        basis, spins = self._open().content()
        return _one_spin(str(self.path), basis, spins)

    def identities(self) -> list[str]:
        """The structure key of every record (stable: computed from the input structure and settings)."""
        store = self._open()
        return [store.key(i) for i in range(self._n)]

    def __getstate__(self):
        return {"path": self.path, "_store": None, "_n": self._n}


def open_dataset(path: str | os.PathLike) -> RecordSource:
    """Open a dataset store file or a folder of record files."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset (generate one with `nextham generate`)")
    if path.is_dir():
        return FolderSource(path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == "nextham-record":
                return ListSource([read_record(path)], path)
        raise DatasetError(f"{path}: an HDF5 file that is not a nextham record; datasets are LMDB stores made by "
                           f"`nextham generate` or folders of record files")
    return StoreSource(path)


def splits_path(source: RecordSource) -> Path | None:
    """Where the split of ``source`` is stored (None for records in memory)."""
    if source.path is None:
        return None
    p = Path(source.path)
    return p / "splits.json" if p.is_dir() else p.with_name(p.name + ".splits.json")


def make_splits(n: int, train: float, val: float, test: float, seed: int,
                identities: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Seeded random split of ``range(n)``; every non-empty fraction gets at least one structure when n allows.

    With ``identities`` (one stable name per record, e.g. the store's structure keys) the permutation
    runs over the records sorted by identity, so each structure lands in the same part whatever order
    the records were stored in (parallel generation stores them in the order they finish).
    """
    perm = np.random.default_rng(seed).permutation(n)
    if identities is not None:
        if len(identities) != n or len(set(identities)) != n:
            raise DatasetError(f"split: {n} records need {n} distinct identities, got {len(set(identities))}")
        perm = np.argsort(np.asarray(identities, dtype=object), kind="stable")[perm]
    perm = perm.tolist()
    n_val = int(round(val * n))
    n_test = int(round(test * n))
    if val > 0 and n_val == 0 and n >= 3:
        n_val = 1
    if test > 0 and n_test == 0 and n >= 3:
        n_test = 1
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DatasetError(f"dataset of {n} structures is too small for the split {train}/{val}/{test}")
    return {"train": sorted(perm[:n_train]), "val": sorted(perm[n_train:n_train + n_val]),
            "test": sorted(perm[n_train + n_val:])}


def load_or_create_splits(source: RecordSource, train: float = 0.8, val: float = 0.1, test: float = 0.1,
                          seed: int = 0, write: bool = True) -> dict[str, list[int]]:
    """The split stored beside ``source``; created (and written when ``write``) if absent.

    A stored split that refers to structures beyond the dataset is an error; structures appended after
    the split was made are left out (with the count reported in the split's ``unassigned`` list).
    """
    n = len(source)
    path = splits_path(source)
    if path is not None and path.exists():
        data = json.loads(path.read_text())
        splits = {k: [int(i) for i in data[k]] for k in SPLIT_NAMES}
        top = max((max(v) for v in splits.values() if v), default=-1)
        if top >= n:
            raise DatasetError(f"{path}: split refers to structure {top} but the dataset holds {n}; "
                               f"delete the split file to make a new one")
        n_old = int(data.get("n", top + 1))
        if n > n_old:  # structures appended since: assign them with the stored fractions, keep the rest
            fr = data.get("fractions", {"train": train, "val": val, "test": test})
            rng = np.random.default_rng([int(data.get("seed", seed)), n_old])
            for i in range(n_old, n):
                k = rng.choice(3, p=np.array([fr["train"], fr["val"], fr["test"]]) / sum(fr.values()))
                splits[SPLIT_NAMES[int(k)]].append(i)
            if write:
                atomic_write_text(path, json.dumps({**data, "n": n, **splits}, indent=1))
        return splits
    identities = source.identities() if hasattr(source, "identities") else None
    splits = make_splits(n, train, val, test, seed, identities)
    if write and path is not None:
        payload = {"format": "nextham-splits", "format_version": 1, "n": n, "seed": seed,
                   "fractions": {"train": train, "val": val, "test": test},
                   "assigned_by": "structure key" if identities is not None else "index", **splits}
        atomic_write_text(path, json.dumps(payload, indent=1))
    return splits


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def nbytes(obj, _seen: set | None = None) -> int:
    """Bytes held by the arrays/tensors of ``obj``: dataclasses, dicts, lists, tuples and the attributes
    of plain objects (records with their cached layouts) are walked, each object once. Counting only
    the dataclass fields missed the records' cached arrays: 85 items of the universal recipe counted
    within a 4 GB budget held 6 GB, and 830 of them were killed for memory."""
    import dataclasses

    import torch

    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.base is None or id(obj.base) not in seen else 0
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None))):
        return 0
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(nbytes(v, seen) for v in obj)
    total = 0
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        total += sum(nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        total += sum(nbytes(v, seen) for v in vars(obj).values())
    return total


class BuiltItems:
    """``build(source[index])``, computed once per run and kept in memory up to ``budget_mb``.

    A training step otherwise reads and decodes a record (a zlib-compressed store entry of several MB)
    and rebuilds its graph every epoch. Items are kept in the order first asked for until the budget is
    full; later items are rebuilt on every access (never evicted: with a shuffled order an LRU would miss
    as often). ``budget_mb=0`` disables the cache. The cached item is returned as is: consumers must not
    modify it in place (``collate`` and the models do not).
    """

    def __init__(self, source: RecordSource, build, budget_mb: float = 4096.0):
        self.source, self.build = source, build
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self.items: dict[int, object] = {}
        self.hits = self.misses = 0

    def __getitem__(self, index: int):
        item = self.items.get(index)
        if item is not None:
            self.hits += 1
            return item
        self.misses += 1
        item = self.build(self.source[index])
        size = nbytes(item)
        if self.used + size <= self.budget:
            self.items[index] = item
            self.used += size
        return item
