"""The index arithmetic of a record's packed blocks, in one place.

A :class:`RecordLayout` depends only on what fixes the packing (atomic numbers, orbital basis, edge
list ``(i, j, R)``, spin flag), never on block values. It owns:

* **edge lookup**: a collision-free key of ``(R, i, j)`` (:func:`match_rows`), the partner (Hermitian)
  edge ``(j, i, -R)`` of every edge, the distinct lattice vectors ``R`` and the R-index of each edge;
* **packed coordinates**: for every packed element of a matrix with spin factor ``f`` (2 for spinful
  ``H0``/``H``, else 1), its edge, its ``(p, q)`` inside the ``(f n_i, f n_j)`` block, and its
  ``(row, col)`` in the whole-cell matrix ``M(R)`` (spin-major: ``row = s n + off_i + a`` with
  ``s = p // n_i``, ``a = p % n_i``; docs/conventions.md);
* the **partner index**: the packed position of ``B_ji(-R)[q, p]`` for each ``B_ij(R)[p, q]``;
* the **overlap in the layout of H**: the packed ``S`` element paired with each ``H`` element
  (``S (x) I2`` for spinful records, zero off the spin diagonal).

Keys never wrap: rows of integers are ranked column by column and combined in a mixed radix whose
size is checked in exact (Python) integers; tables too large for int64 fall back to a lexicographic
``np.unique(axis=0)``. The layout is built once per record (:meth:`StructureRecord.layout`) and shared
by records of equal layout through a small fingerprint cache (records are decoded anew at every
training step).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from ..basis.orbitals import Basis

_INT64_LIMIT = 1 << 62


def row_ids(columns: Sequence[np.ndarray]) -> np.ndarray:
    """(m,) int64 id of every row of the integer table ``columns`` (k arrays of length m).

    Equal rows get equal ids and ids order rows lexicographically (first column most significant,
    signed values compared as integers). Never overflows.
    """
    cols = [np.asarray(c, dtype=np.int64).reshape(-1) for c in columns]
    m = len(cols[0]) if cols else 0
    if m == 0:
        return np.zeros(0, np.int64)
    ranks, sizes = [], []
    for c in cols:
        values, inverse = np.unique(c, return_inverse=True)
        ranks.append(inverse.reshape(-1).astype(np.int64))
        sizes.append(len(values))
    total = 1
    for s in sizes:
        total *= s
    if total < _INT64_LIMIT:
        key = np.zeros(m, np.int64)
        for r, s in zip(ranks, sizes):
            key = key * s + r
        return key
    _, inverse = np.unique(np.stack(ranks, axis=1), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def match_rows(table: Sequence[np.ndarray], query: Sequence[np.ndarray]) -> np.ndarray:
    """Index into ``table`` (k columns of equal length n, rows unique) of each row of ``query``
    (k columns of length m), -1 where the query row is absent. Shape (m,)."""
    n = len(np.asarray(table[0]).reshape(-1))
    ids = row_ids([np.concatenate([np.asarray(t).reshape(-1), np.asarray(q).reshape(-1)])
                   for t, q in zip(table, query)])
    t_ids, q_ids = ids[:n], ids[n:]
    if n == 0:
        return np.full(len(q_ids), -1, np.int64)
    order = np.argsort(t_ids, kind="stable")
    pos = np.clip(np.searchsorted(t_ids[order], q_ids), 0, n - 1)
    return np.where(t_ids[order][pos] == q_ids, order[pos], -1).astype(np.int64)


def edge_columns(i: np.ndarray, j: np.ndarray, R: np.ndarray) -> list[np.ndarray]:
    """The columns ``(Rx, Ry, Rz, i, j)`` that identify an edge; their row order is the canonical
    edge order of records built by the readers."""
    R = np.asarray(R, dtype=np.int64).reshape(-1, 3)
    return [R[:, 0], R[:, 1], R[:, 2], np.asarray(i, np.int64).reshape(-1), np.asarray(j, np.int64).reshape(-1)]


def unique_edges(i: np.ndarray, j: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: index of the first occurrence of each distinct edge, in canonical
    ``(R, i, j)`` order, and the distinct edge of every input edge."""
    ids = row_ids(edge_columns(i, j, R))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    return first.astype(np.int64), inverse.reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class PackedCoordinates:
    """Where every packed element of one matrix sits. Shapes (nnz,) each, int64.

    edge : its edge.  p, q : row and column inside the edge's block.
    row, col : row and column in the whole-cell matrix ``M(R)`` (spin-major for spinful).
    """

    edge: np.ndarray
    p: np.ndarray
    q: np.ndarray
    row: np.ndarray
    col: np.ndarray


@dataclass(frozen=True, eq=False)
class RecordLayout:
    """Packing of one record's blocks (see the module docstring). Immutable; derived arrays cached.

    numbers : (N,) atomic numbers.  edge_index : (E, 2) atom pairs.  edge_R : (E, 3) lattice vectors
    of atom ``j``.  spinful : whether ``H0``/``H`` carry spin (factor 2).  atom_norb : (N,) spinless
    orbitals per atom.
    """

    numbers: np.ndarray
    edge_index: np.ndarray
    edge_R: np.ndarray
    spinful: bool
    atom_norb: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, numbers: np.ndarray, basis: Basis, edge_index: np.ndarray, edge_R: np.ndarray,
              spinful: bool) -> "RecordLayout":
        """Layout of a record with these atoms, basis, edges and spin flag (see :func:`layout_of`)."""
        numbers = np.asarray(numbers, np.int64).reshape(-1)
        return cls(numbers=numbers, edge_index=np.asarray(edge_index, np.int64).reshape(-1, 2),
                   edge_R=np.asarray(edge_R, np.int64).reshape(-1, 3), spinful=bool(spinful),
                   atom_norb=np.asarray(basis.norb_per_atom(numbers), np.int64))

    # ------------------------------------------------------------------ sizes
    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def n_edges(self) -> int:
        return len(self.edge_index)

    @cached_property
    def atom_offsets(self) -> np.ndarray:
        """(N+1,) spinless orbital offset of each atom in the whole-cell matrix."""
        return np.concatenate([[0], np.cumsum(self.atom_norb)]).astype(np.int64)

    @property
    def n_orbitals(self) -> int:
        return int(self.atom_offsets[-1])

    def block_shapes(self, f: int) -> np.ndarray:
        """(E, 2) block shapes for spin factor ``f`` (1: spinless or S; 2: spinful H)."""
        n = self.atom_norb
        return np.stack([n[self.edge_index[:, 0]], n[self.edge_index[:, 1]]], axis=1) * f

    def block_offsets(self, f: int) -> np.ndarray:
        """(E+1,) start of each block in the flat packed array, spin factor ``f``."""
        return self.cached(("offsets", f), lambda: np.concatenate(
            [[0], np.cumsum(np.prod(self.block_shapes(f), axis=1))]).astype(np.int64))

    def nnz(self, f: int) -> int:
        return int(self.block_offsets(f)[-1])

    # ------------------------------------------------------------------ edges
    @cached_property
    def onsite_mask(self) -> np.ndarray:
        """(E,) True for self-loops (i == j, R = 0)."""
        return (self.edge_index[:, 0] == self.edge_index[:, 1]) & ~self.edge_R.any(axis=1)

    def find_edges(self, i: np.ndarray, j: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Edge index of each ``(i, j, R)`` query, -1 where absent."""
        return match_rows(edge_columns(self.edge_index[:, 0], self.edge_index[:, 1], self.edge_R),
                          edge_columns(i, j, R))

    @cached_property
    def reverse_edges(self) -> np.ndarray:
        """(E,) index of the partner edge ``(j, i, -R)``; -1 where missing."""
        return self.find_edges(self.edge_index[:, 1], self.edge_index[:, 0], -self.edge_R)

    @cached_property
    def lattice_R(self) -> np.ndarray:
        """(n_R, 3) the distinct lattice vectors, sorted."""
        return self._lattice[0]

    @cached_property
    def r_of_edge(self) -> np.ndarray:
        """(E,) index into :attr:`lattice_R` of every edge."""
        return self._lattice[1]

    @cached_property
    def _lattice(self) -> tuple[np.ndarray, np.ndarray]:
        R, inverse = np.unique(self.edge_R, axis=0, return_inverse=True)
        return R.reshape(-1, 3).astype(np.int64), inverse.reshape(-1).astype(np.int64)

    # ------------------------------------------------------------------ packed elements
    def coordinates(self, f: int) -> PackedCoordinates:
        """Edge, in-block and whole-cell coordinates of every packed element, spin factor ``f``."""
        return self.cached(("coords", f), lambda: self._coordinates(f))

    def _coordinates(self, f: int) -> PackedCoordinates:
        shapes = self.block_shapes(f)
        offsets = self.block_offsets(f)
        edge = np.repeat(np.arange(self.n_edges, dtype=np.int64), shapes[:, 0] * shapes[:, 1])
        local = np.arange(offsets[-1], dtype=np.int64) - offsets[edge]
        ncol = shapes[edge, 1]
        p, q = local // ncol, local % ncol
        i, j = self.edge_index[edge, 0], self.edge_index[edge, 1]
        ai, aj = self.atom_offsets[i], self.atom_offsets[j]
        if f == 2:
            ni, nj = self.atom_norb[i], self.atom_norb[j]
            n = self.n_orbitals
            row, col = (p // ni) * n + ai + p % ni, (q // nj) * n + aj + q % nj
        else:
            row, col = ai + p, aj + q
        return PackedCoordinates(edge, p, q, row, col)

    def spin_of_elements(self) -> tuple[np.ndarray, np.ndarray]:
        """Spin index ``(s_row, s_col)`` (0 = up, 1 = down) of every packed spinful ``H`` element."""
        c = self.coordinates(2)
        ni = self.atom_norb[self.edge_index[c.edge, 0]]
        nj = self.atom_norb[self.edge_index[c.edge, 1]]
        return c.p // ni, c.q // nj

    def partner_index(self, f: int) -> np.ndarray:
        """(nnz,) packed position of ``B_ji(-R)[q, p]`` for every element ``B_ij(R)[p, q]``.

        Raises ``ValueError`` naming an edge without its partner."""
        rev = self.reverse_edges
        if np.any(rev < 0):
            e = int(np.flatnonzero(rev < 0)[0])
            raise ValueError(f"edge (i={self.edge_index[e, 0]}, j={self.edge_index[e, 1]}, "
                             f"R={tuple(int(x) for x in self.edge_R[e])}) has no Hermitian partner (j, i, -R)")

        def build() -> np.ndarray:
            c = self.coordinates(f)
            return self.block_offsets(f)[rev[c.edge]] + c.q * self.block_shapes(f)[rev[c.edge], 1] + c.p
        return self.cached(("partner", f), build)

    def overlap_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(index, valid)`` over the packed elements of ``H``: the packed ``S`` position of the overlap
        element of each (``S (x) I2`` for spinful; ``index`` is 0 where ``valid`` is False, i.e. off the
        spin diagonal). Spinless records: the identity and all True."""
        def build() -> tuple[np.ndarray, np.ndarray]:
            if not self.spinful:
                nnz = self.nnz(1)
                return np.arange(nnz, dtype=np.int64), np.ones(nnz, bool)
            c = self.coordinates(2)
            ni = self.atom_norb[self.edge_index[c.edge, 0]]
            nj = self.atom_norb[self.edge_index[c.edge, 1]]
            valid = (c.p // ni) == (c.q // nj)
            index = np.where(valid, self.block_offsets(1)[c.edge] + (c.p % ni) * nj + c.q % nj, 0)
            return index.astype(np.int64), valid
        return self.cached(("overlap",), build)

    def overlap_like_h(self, overlap: np.ndarray) -> np.ndarray:
        """Packed spinless ``S`` -> packed overlap in the layout of ``H`` (complex ``S (x) I2`` when
        spinful; ``S`` itself when spinless)."""
        if not self.spinful:
            return overlap
        index, valid = self.overlap_index()
        return np.where(valid, overlap[index], 0.0).astype(np.complex128)

    def cached(self, key, build):
        """``build()`` once per layout under ``key`` (for values derived from the layout alone, e.g. the
        torch index tensors of :mod:`nextham.losses.layout`)."""
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = build()
        return value


def layout_fingerprint(numbers: np.ndarray, basis: Basis, edge_index: np.ndarray, edge_R: np.ndarray,
                       spinful: bool) -> str:
    """Hash of everything a layout depends on (not the block values)."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (numbers, edge_index, edge_R):
        a = np.ascontiguousarray(np.asarray(arr, np.int64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(basis.to_json().encode())
    h.update(b"1" if spinful else b"0")
    return h.hexdigest()


_LAYOUTS: "OrderedDict[str, RecordLayout]" = OrderedDict()
_LAYOUT_CACHE_SIZE = 1024
#: bytes of index arrays the shared layouts may hold (oldest dropped first). Layouts of the universal
#: recipe hold ~45 MB each (every pair within the orbitals' reach, spinful, 16 orbitals per atom): a
#: count limit of 1024 alone let a training process grow to 24 GB and be killed for memory
_LAYOUT_CACHE_BYTES = 1 << 30


def _array_bytes(obj, depth: int = 0) -> int:
    """Bytes of the numpy arrays and torch tensors reachable from ``obj`` through dicts, sequences and
    object attributes (three levels: a layout, its cache, the cached values)."""
    if hasattr(obj, "nbytes") and hasattr(obj, "shape"):
        return int(obj.nbytes)
    if depth >= 3:
        return 0
    if isinstance(obj, dict):
        return sum(_array_bytes(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_array_bytes(v, depth + 1) for v in vars(obj).values())
    return 0


def layout_of(numbers: np.ndarray, basis: Basis, edge_index: np.ndarray, edge_R: np.ndarray,
              spinful: bool) -> RecordLayout:
    """The shared :class:`RecordLayout` of these atoms, basis, edges and spin (LRU of at most 1024
    layouts and :data:`_LAYOUT_CACHE_BYTES` of their arrays, the most recent always kept)."""
    key = layout_fingerprint(numbers, basis, edge_index, edge_R, spinful)
    hit = _LAYOUTS.get(key)
    if hit is not None:
        _LAYOUTS.move_to_end(key)
        return hit
    layout = _LAYOUTS[key] = RecordLayout.build(numbers, basis, edge_index, edge_R, spinful)
    if len(_LAYOUTS) > _LAYOUT_CACHE_SIZE:
        _LAYOUTS.popitem(last=False)
    total = sum(_array_bytes(v) for v in _LAYOUTS.values())  # values cached since they were added count too
    while total > _LAYOUT_CACHE_BYTES and len(_LAYOUTS) > 1:
        _, old = _LAYOUTS.popitem(last=False)
        total -= _array_bytes(old)
    return layout
