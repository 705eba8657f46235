"""Dataset store: one LMDB file per dataset holding nextham records, a manifest and a status table.

Why LMDB and not one HDF5 file (docs/dataset.md has the long form): a generation may be killed at
any moment (kill -9, node pre-emption, out of memory) and must never leave a half-written record
or a corrupt dataset. LMDB commits are ACID copy-on-write transactions: a killed writer loses only
its open transaction and the file stays valid, with no recovery step. HDF5 updates its B-trees and
heaps in place; a writer killed during a flush can leave the whole file unreadable, which no
library-level trick prevents. Each record's value holds the arrays of the ``nextham-record``
layout (:mod:`nextham.blocks.h5io`) byte-shuffled and zlib-compressed behind a JSON header
(:func:`record_to_bytes`; an in-memory HDF5 image took ~10 ms to open, this ~0.3 ms), and
:meth:`DatasetStore.export_hdf5` writes a plain HDF5 file for tools that want one.

Layout (keys are UTF-8 bytes)::

    meta/manifest        JSON: format, format_version, created, provenance (engine, settings,
                         versions, nextham version, command), updated on every run; ``basis``
                         (union of the records' bases, Basis JSON) and ``spinful`` (the distinct
                         spin flags of the records, e.g. ``[true]``), updated with every record
    meta/count           number of records (decimal)
    rec/<index:010d>     record index -> one record (:func:`record_to_bytes`, with its CRC-32)
    key/<index:010d>     record index -> structure id
    status/<id>          JSON {state: "done"|"failed", index, reason, source, formula, timings, ...}

A record, its key and its status entry are committed in one transaction: either all exist or
none. The file is ``DATASET`` itself (``subdir=False``) plus LMDB's ``DATASET-lock`` and, while a
writer has it open, ``DATASET-writer`` holding the writer's PID (an advisory ``flock``, released by
the kernel when the writer dies, so ``kill -9`` never leaves a stale lock).

Corruption: every record carries a CRC-32 of its bytes (records of format 1 written before it
existed still read, unchecked), so a flipped bit names the record; before LMDB maps the file its
size is checked against the page count in LMDB's meta pages, so a truncated file is an error
message instead of SIGBUS. :meth:`DatasetStore.check` verifies every record.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ..basis.orbitals import Basis, BasisError
from ..blocks.h5io import write_record_group
from ..blocks.record import StructureRecord

FORMAT = "nextham-dataset"
FORMAT_VERSION = 1
EXPORT_FORMAT = "nextham-dataset-hdf5"
DEFAULT_MAP_SIZE = 1 << 40  # 1 TiB of address space; the file grows only as data are written


class StoreError(RuntimeError):
    """The dataset file is missing, unreadable, locked by another writer or not a nextham dataset."""


class CorruptRecordError(StoreError):
    """One stored record fails its checksum or cannot be decoded; ``index`` names it."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def _lmdb():
    try:
        import lmdb
    except ImportError as exc:  # pragma: no cover
        raise StoreError(f"the dataset store needs the 'lmdb' package ({exc}); pip install lmdb") from None
    return lmdb


_MAGIC = b"NXHREC1\n"  # format 1: no checksum (still read)
_MAGIC2 = b"NXHREC2\n"  # format 2: CRC-32 (4 bytes, little endian) of everything after it
_ARRAYS = ("cell", "positions", "numbers", "pbc", "edge_index", "edge_R")


def _pack_array(a: np.ndarray, level: int) -> tuple[dict, bytes]:
    a = np.ascontiguousarray(a)
    raw = a.view(np.uint8).reshape(-1, a.itemsize).T.tobytes() if a.itemsize > 1 else a.tobytes()  # byte shuffle
    data = zlib.compress(raw, level) if level > 0 else raw
    return {"dtype": a.dtype.str, "shape": list(a.shape), "n": len(data), "z": level > 0}, data


def _unpack_array(desc: dict, data: memoryview) -> np.ndarray:
    raw = zlib.decompress(data) if desc["z"] else bytes(data)
    dt = np.dtype(desc["dtype"])
    n = int(np.prod(desc["shape"])) if desc["shape"] else 1
    if dt.itemsize > 1:
        raw = np.frombuffer(raw, np.uint8).reshape(dt.itemsize, n).T.tobytes()
    return np.frombuffer(raw, dt).reshape(desc["shape"]).copy()


def record_to_bytes(record: StructureRecord, dtype: str = "float64", level: int = 4) -> bytes:
    """Serialise a record: JSON header (attributes, basis, metadata, array layout) and the arrays
    of the nextham-record layout (:mod:`nextham.blocks.h5io`), byte-shuffled and zlib-compressed.
    ``dtype="float32"`` stores the blocks in single precision."""
    header: dict[str, Any] = {"spinful": record.spinful, "fermi_energy_eV": record.fermi_energy_eV,
                              "basis": record.basis.to_json(), "metadata": record.metadata, "arrays": []}
    blobs = []
    items = [(k, getattr(record, k)) for k in _ARRAYS]
    for name, data in record.blocks.items():
        if dtype == "float32":
            data = data.astype(np.complex64 if np.iscomplexobj(data) else np.float32)
        items.append((f"blocks/{name}", data))
    for name, arr in items:
        desc, blob = _pack_array(np.asarray(arr), level if arr.size > 64 else 0)
        desc["name"] = name
        header["arrays"].append(desc)
        blobs.append(blob)
    head = json.dumps(header, default=_json_default).encode()
    body = b"".join([len(head).to_bytes(8, "little"), head, *blobs])
    return b"".join([_MAGIC2, zlib.crc32(body).to_bytes(4, "little"), body])


def verify_bytes(data: bytes | memoryview) -> str | None:
    """None when the record bytes pass their checksum (or predate checksums), else the problem."""
    mv = memoryview(data)
    magic = bytes(mv[:len(_MAGIC2)])
    if magic == _MAGIC:
        return None
    if magic != _MAGIC2 or len(mv) < len(_MAGIC2) + 12:
        return "not a nextham record blob (bad magic bytes)"
    stored = int.from_bytes(mv[len(_MAGIC2):len(_MAGIC2) + 4], "little")
    if zlib.crc32(mv[len(_MAGIC2) + 4:]) != stored:
        return "checksum mismatch (the stored bytes were altered: disk or copy corruption)"
    return None


def record_from_bytes(data: bytes | memoryview, source: str = "", index: int | None = None) -> StructureRecord:
    """Inverse of :func:`record_to_bytes` (blocks returned in float64 / complex128).

    Raises :class:`CorruptRecordError` naming ``source`` when the checksum fails or the bytes do
    not decode into a valid record."""
    problem = verify_bytes(data)
    if problem is not None:
        raise CorruptRecordError(f"{source}: {problem}", index)
    mv = memoryview(data)
    p = len(_MAGIC) + (4 if bytes(mv[:len(_MAGIC2)]) == _MAGIC2 else 0)
    try:
        nh = int.from_bytes(mv[p:p + 8], "little")
        header = json.loads(bytes(mv[p + 8:p + 8 + nh]))
        p += 8 + nh
        arrays: dict[str, np.ndarray] = {}
        for desc in header["arrays"]:
            if p + desc["n"] > len(mv):
                raise ValueError("record bytes end early")
            arrays[desc["name"]] = _unpack_array(desc, mv[p:p + desc["n"]])
            p += desc["n"]
        blocks = {}
        for k, v in arrays.items():
            if k.startswith("blocks/"):
                blocks[k[7:]] = v.astype(np.complex128 if np.iscomplexobj(v) else np.float64, copy=False)
        return StructureRecord(cell=arrays["cell"], positions=arrays["positions"], numbers=arrays["numbers"],
                               pbc=arrays["pbc"], basis=Basis.from_json(header["basis"]),
                               edge_index=arrays["edge_index"], edge_R=arrays["edge_R"], blocks=blocks,
                               spinful=bool(header["spinful"]), fermi_energy_eV=header["fermi_energy_eV"],
                               metadata=header["metadata"])
    except (ValueError, KeyError, TypeError, IndexError, zlib.error, MemoryError) as exc:
        # ValueError covers JSON, reshape, RecordError and BasisError
        raise CorruptRecordError(f"{source}: cannot decode the record ({type(exc).__name__}: {exc})", index) from None


def check_lmdb_size(path: Path) -> None:
    """Refuse a file that is not an LMDB environment or is shorter than its own page count says.

    LMDB maps the file and reads pages by number: a page beyond the end of a truncated file gives
    SIGBUS, which no exception handler catches. The two meta pages (page 0 and 1) record the page
    size and the last page in use; the newer one (larger transaction id) is the one LMDB uses.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 152 or struct.unpack_from("<I", head, 16)[0] != 0xBEEFC0DE:
            raise StoreError(f"{path}: not a nextham dataset (not an LMDB file)")
        page_size = struct.unpack_from("<I", head, 40)[0]
        if page_size < 512 or page_size & (page_size - 1) or size < 2 * page_size:
            raise StoreError(f"{path}: damaged dataset file ({size} bytes; page size {page_size} in its header)")
        fh.seek(page_size)
        second = fh.read(256)
    metas = []
    for page in (head, second):
        if len(page) >= 152 and struct.unpack_from("<I", page, 16)[0] == 0xBEEFC0DE:
            last_page, txn_id = struct.unpack_from("<QQ", page, 136)
            metas.append((txn_id, last_page))
    if not metas:
        raise StoreError(f"{path}: damaged dataset file (no valid LMDB meta page)")
    needed = (max(metas)[1] + 1) * page_size
    if size < needed:
        raise StoreError(f"{path}: truncated dataset file: {size} bytes, but its index needs {needed} "
                         f"(an interrupted copy or a full disk?); copy it again or regenerate it")


class WriterLock:
    """Advisory exclusive lock ``DATASET-writer`` holding the writer's PID (one writer per dataset)."""

    def __init__(self, dataset: Path):
        self.path = dataset.with_name(dataset.name + "-writer")
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            try:
                pid = self.path.read_text().strip() or "unknown"
            except OSError:
                pid = "unknown"
            raise StoreError(f"{self.path.with_name(self.path.name[:-len('-writer')])}: in use by PID {pid} "
                             f"(another nextham generate is writing it); wait for it to finish or use another "
                             f"--out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class DatasetStore:
    """A dataset file. Open for reading (default) or writing (``mode="a"``, one writer at a time).

    ``len(store)``, ``store[i]`` (random access, any order), iteration, ``store.manifest``,
    ``store.status()``; writers use :meth:`append` / :meth:`record_failure`.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r", map_size: int = DEFAULT_MAP_SIZE,
                 dtype: str = "float64") -> None:
        lmdb = _lmdb()
        self.path = Path(path)
        self.mode = mode
        self.dtype = dtype
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if mode == "r":
            if not self.path.exists():
                raise StoreError(f"{self.path}: no such dataset")
            if self.path.is_dir():
                raise StoreError(f"{self.path}: is a directory, not a nextham dataset file")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise StoreError(f"{self.path}: is a directory, not a nextham dataset file")
        self.env = None
        self._lock: WriterLock | None = None
        # size first (a writer only ever grows the file past its meta pages' page count), then the lock
        if self.path.exists() and self.path.stat().st_size > 0:
            check_lmdb_size(self.path)
        elif mode == "r":
            raise StoreError(f"{self.path}: empty file, not a nextham dataset")
        if mode == "a":
            self._lock = WriterLock(self.path)
            self._lock.acquire()
        try:
            self.env = lmdb.open(str(self.path), subdir=False, map_size=map_size, readonly=(mode == "r"),
                                 lock=(mode == "a"), max_dbs=0, readahead=False, meminit=False,
                                 max_readers=512)
        except lmdb.Error as exc:
            self._release_lock()
            raise StoreError(f"{self.path}: cannot open as a nextham dataset ({exc})") from None
        try:
            raw = self._get(b"meta/manifest")
            self._check_manifest(raw)
        except BaseException:
            self.close()
            raise

    def _check_manifest(self, raw: bytes | None) -> None:
        mode = self.mode
        if raw is None:
            if mode == "r":
                raise StoreError(f"{self.path}: not a nextham dataset (no manifest)")
            self._write_manifest({"format": FORMAT, "format_version": FORMAT_VERSION,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": []})
        else:
            try:
                man = json.loads(raw)
            except ValueError:
                raise StoreError(f"{self.path}: damaged dataset (its manifest is not valid JSON)") from None
            if not isinstance(man, dict) or man.get("format") != FORMAT:
                man = man if isinstance(man, dict) else {}
                raise StoreError(f"{self.path}: not a nextham dataset (format {man.get('format')!r})")
            if not isinstance(man.get("format_version", 0), int) or man.get("format_version", 0) > FORMAT_VERSION:
                raise StoreError(f"{self.path}: dataset format version {man['format_version']} is newer "
                                 f"than this nextham ({FORMAT_VERSION})")
        self._content: tuple[Basis | None, tuple[bool, ...]] | None = None
        if mode == "a" and len(self) and "basis" not in self.manifest:
            self._write_content(*self.content())  # a dataset written before the manifest had it: once

    # ------------------------------------------------------------------ context
    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None
        self._release_lock()

    def _release_lock(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def _get(self, key: bytes) -> bytes | None:
        """One value (a copy), with LMDB's own corruption errors turned into :class:`StoreError`."""
        lmdb = _lmdb()
        try:
            with self.env.begin() as txn:
                return txn.get(key)
        except lmdb.Error as exc:
            raise StoreError(f"{self.path}: damaged dataset file ({type(exc).__name__}: {exc})") from None

    def __enter__(self) -> "DatasetStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ manifest
    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self._get(b"meta/manifest"))

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(b"meta/manifest", json.dumps(manifest, default=_json_default).encode())

    def update_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest (writer only); ``run=...`` appends to ``runs``."""
        self._require_writer()
        with self.env.begin(write=True) as txn:
            man = json.loads(txn.get(b"meta/manifest"))
            run = fields.pop("run", None)
            man.update(fields)
            if run is not None:
                man.setdefault("runs", []).append(run)
            txn.put(b"meta/manifest", json.dumps(man, default=_json_default).encode())

    def content(self) -> tuple[Basis | None, tuple[bool, ...]]:
        """(union of the records' bases, distinct spin flags), from the manifest.

        A dataset written before the manifest recorded them is read record by record, once per open
        store (a writer stores the result in the manifest). ``(None, ())`` for an empty dataset.
        """
        if self._content is None:
            man = self.manifest
            if "basis" in man or not len(self):
                basis = Basis.from_json(man["basis"]) if man.get("basis") else None
                self._content = basis, tuple(bool(x) for x in man.get("spinful", ()))
            else:
                basis, spins = None, set()
                for rec in self:
                    basis = rec.basis if basis is None else basis.merged(rec.basis)
                    spins.add(bool(rec.spinful))
                self._content = basis, tuple(sorted(spins))
        return self._content

    def _write_content(self, basis: Basis | None, spins: tuple[bool, ...]) -> None:
        self.update_manifest(basis=basis.to_json() if basis is not None else None, spinful=list(spins))

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        raw = self._get(b"meta/count")
        try:
            return int(raw) if raw else 0
        except ValueError:
            raise StoreError(f"{self.path}: damaged dataset (record count {raw[:20]!r})") from None

    def _index(self, index: int) -> int:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.path}: record {index} out of range (dataset has {n})")
        return index

    def raw(self, index: int) -> bytes:
        """The stored bytes of record ``index`` (negative: from the end)."""
        index = self._index(index)
        data = self._get(f"rec/{index:010d}".encode())
        if data is None:
            raise CorruptRecordError(f"{self.path}: record {index} is missing", index)
        return data

    def __getitem__(self, index: int) -> StructureRecord:
        index = self._index(index)
        try:
            return record_from_bytes(self.raw(index), source=f"{self.path}@{index}", index=index)
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"{exc}; `nextham info {self.path} --check` lists every damaged record and "
                                     f"rerunning the `nextham generate` command recomputes them", index) from None

    def verify(self, index: int) -> str | None:
        """None when record ``index`` passes its checksum, else the problem (fast: no decoding)."""
        try:
            return verify_bytes(self.raw(index))
        except CorruptRecordError as exc:
            return str(exc).split(": ", 1)[-1]

    def __iter__(self) -> Iterator[StructureRecord]:
        for i in range(len(self)):
            yield self[i]

    def key(self, index: int) -> str:
        index = self._index(index)
        raw = self._get(f"key/{index:010d}".encode())
        if raw is None:
            raise CorruptRecordError(f"{self.path}@{index}: record has no structure key", index)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise CorruptRecordError(f"{self.path}@{index}: damaged structure key", index) from None

    def status(self) -> dict[str, dict[str, Any]]:
        """structure id -> status entry (done and failed structures)."""
        lmdb = _lmdb()
        out = {}
        try:
            with self.env.begin() as txn:
                cur = txn.cursor()
                if cur.set_range(b"status/"):
                    for k, v in cur:
                        if not k.startswith(b"status/"):
                            break
                        out[k[7:].decode(errors="replace")] = json.loads(v)
        except lmdb.Error as exc:
            raise StoreError(f"{self.path}: damaged dataset file ({type(exc).__name__}: {exc})") from None
        except ValueError:
            raise StoreError(f"{self.path}: damaged dataset (a status entry is not valid JSON)") from None
        return out

    def failures(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.status().items() if v.get("state") == "failed"}

    # ------------------------------------------------------------------ writing
    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only")

    def append(self, record: StructureRecord, key: str, info: dict[str, Any] | None = None) -> int:
        """Append ``record`` for structure ``key`` atomically; returns its index.

        The record, its key and its ``done`` status are one transaction. A ``key`` already done is
        refused (nothing is computed or stored twice).
        """
        self._require_writer()
        data = record_to_bytes(record, self.dtype)
        with self.env.begin(write=True) as txn:
            old = txn.get(f"status/{key}".encode())
            if old is not None and json.loads(old).get("state") == "done":
                raise StoreError(f"{self.path}: structure {key!r} is already in the dataset")
            raw = txn.get(b"meta/count")
            index = int(raw) if raw else 0
            man = json.loads(txn.get(b"meta/manifest"))
            try:
                basis = record.basis.merged(Basis.from_json(man["basis"])) if man.get("basis") else record.basis
            except BasisError as exc:
                raise StoreError(f"{self.path}: structure {key!r} does not fit the dataset: {exc}") from None
            spins = tuple(sorted(set(man.get("spinful", ())) | {bool(record.spinful)}))
            man.update(basis=basis.to_json(), spinful=list(spins))
            txn.put(b"meta/manifest", json.dumps(man, default=_json_default).encode())
            txn.put(f"rec/{index:010d}".encode(), data)
            txn.put(f"key/{index:010d}".encode(), key.encode())
            entry = {"state": "done", "index": index, **(info or {})}
            txn.put(f"status/{key}".encode(), json.dumps(entry, default=_json_default).encode())
            txn.put(b"meta/count", str(index + 1).encode())
        self._content = basis, spins
        return index

    def rewrite(self, index: int, record: StructureRecord, key: str, info: dict[str, Any] | None = None) -> None:
        """Replace the stored bytes of record ``index`` (of structure ``key``), e.g. one that failed its
        checksum and was recomputed; record, key and status in one transaction."""
        self._require_writer()
        index = self._index(index)
        data = record_to_bytes(record, self.dtype)
        entry = {"state": "done", "index": index, "recomputed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})}
        with self.env.begin(write=True) as txn:
            txn.put(f"rec/{index:010d}".encode(), data)
            txn.put(f"key/{index:010d}".encode(), key.encode())
            txn.put(f"status/{key}".encode(), json.dumps(entry, default=_json_default).encode())

    def record_failure(self, key: str, reason: str, info: dict[str, Any] | None = None) -> None:
        """Record that structure ``key`` failed, with a human-readable reason."""
        self._require_writer()
        entry = {"state": "failed", "reason": reason, **(info or {})}
        with self.env.begin(write=True) as txn:
            txn.put(f"status/{key}".encode(), json.dumps(entry, default=_json_default).encode())

    def forget_failures(self) -> int:
        """Delete failed status entries (so that a rerun retries them); returns how many."""
        self._require_writer()
        keys = list(self.failures())
        with self.env.begin(write=True) as txn:
            for k in keys:
                txn.delete(f"status/{k}".encode())
        return len(keys)

    def forget_failures_of(self, source: str, name: str) -> int:
        """Delete failed entries of the same source file and name (or of the unreadable file itself,
        keys ``file-...``): the structure has now been computed. Returns how many."""
        self._require_writer()
        stale = [k for k, v in self.failures().items()
                 if source and v.get("source") == source and (v.get("name") == name or k.startswith("file-"))]
        with self.env.begin(write=True) as txn:
            for k in stale:
                txn.delete(f"status/{k}".encode())
        return len(stale)

    # ------------------------------------------------------------------ checks and export
    def check(self, decode: bool = True) -> dict[int, str]:
        """record index -> problem, for every record that fails its checksum or (``decode``) does not
        decode into a valid record; empty when the dataset is sound."""
        problems: dict[int, str] = {}
        for i in range(len(self)):
            problem = self.verify(i)
            if problem is None and decode:
                try:
                    record_from_bytes(self.raw(i)).validate(hermitian_tol=None)
                except (StoreError, ValueError) as exc:  # RecordError is a ValueError
                    problem = str(exc).removeprefix(": ")
            if problem is not None:
                problems[i] = problem
        return problems

    def validate(self, records: bool = True) -> dict[str, Any]:
        """Check counts, keys and status consistency (and every record when ``records``)."""
        n = len(self)
        status = self.status()
        done = {k: v for k, v in status.items() if v.get("state") == "done"}
        problems = []
        if len(done) != n:
            problems.append(f"{len(done)} structures marked done but {n} records")
        seen = set()
        for i in range(n):
            k = self.key(i)
            if k in seen:
                problems.append(f"structure {k} stored twice")
            seen.add(k)
            if done.get(k, {}).get("index") != i:
                problems.append(f"record {i} ({k}) has no matching done status")
            if records:
                try:
                    self[i].validate()
                except Exception as exc:
                    problems.append(f"record {i} ({k}): {exc}")
        if problems:
            raise StoreError(f"{self.path}: invalid dataset: " + "; ".join(problems[:10]))
        return {"records": n, "failed": len(status) - len(done)}

    def export_hdf5(self, path: str | os.PathLike, indices: range | list[int] | None = None) -> Path:
        """Write records to a plain HDF5 file: attributes ``format = "nextham-dataset-hdf5"``,
        ``format_version``, ``count``, ``manifest`` (JSON); groups ``records/<index:010d>`` in the
        ``nextham-record`` layout with attribute ``key``. ``nextham info`` reads it, and every
        command that takes a record takes ``FILE.h5@N``."""
        path = Path(path)
        indices = range(len(self)) if indices is None else indices
        with h5py.File(path, "w") as f:
            f.attrs["format"] = EXPORT_FORMAT
            f.attrs["format_version"] = 1
            f.attrs["count"] = len(indices)
            f.attrs["manifest"] = json.dumps(self.manifest)
            g = f.create_group("records")
            for n, i in enumerate(indices):
                rg = g.create_group(f"{n:010d}")
                write_record_group(rg, self[i], dtype=self.dtype)
                rg.attrs["key"] = self.key(i)
        return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return str(obj)
