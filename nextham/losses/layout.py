"""Index arrays that map packed blocks to whole-cell matrices, and a differentiable Bloch sum.

Everything here depends only on a record's *layout* (atoms, basis, edge list, spin), never on block
values, so it is built once per layout and cached (:func:`packed_layout`).

For matrix ``name`` with spin factor ``f`` (2 for spinful ``H0``/``H``, else 1) a packed element of
edge ``e = (i, j, R)`` at local position ``(p, q)`` of its ``(f n_i, f n_j)`` block sits at

* row ``s n + off_i + a`` with ``s = p // n_i``, ``a = p % n_i`` (spin-major, CONVENTIONS.md),
* column ``s' n + off_j + b`` with ``s' = q // n_j``, ``b = q % n_j``,

of the ``(f n, f n)`` matrix ``M(R)``. The Bloch sum is ``M(k) = sum_R exp(+2 pi i k.R) M(R)``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ..blocks.record import StructureRecord


@dataclass(frozen=True)
class PackedLayout:
    """Layout of one record's packed ``H`` (or ``H0``) and ``S`` arrays.

    Attributes
    ----------
    dim : size ``f n`` of the whole-cell Hamiltonian matrix.
    n_orbitals : spinless orbital count ``n``.
    spinful : whether ``H`` is spin-major ``(2n, 2n)``.
    flat_index : (nnz_H,) int64, ``row * dim + col`` of every packed ``H`` element.
    r_index : (nnz_H,) int64, index into ``lattice_R`` of every packed ``H`` element.
    s_flat_index : (nnz_S,) int64, ``row * n + col`` of every packed ``S`` element.
    s_r_index : (nnz_S,) int64.
    lattice_R : (n_R, 3) int64, the distinct lattice translations.
    overlap_index : (nnz_H,) int64, index into packed ``S`` of the overlap element paired with every
        ``H`` element (``S (x) I2`` for spinful), 0 where ``overlap_valid`` is False.
    overlap_valid : (nnz_H,) bool, False on the spin-off-diagonal positions of spinful blocks.
    edge_of : (nnz_H,) int64, the edge of every packed ``H`` element.
    """

    dim: int
    n_orbitals: int
    spinful: bool
    flat_index: np.ndarray
    r_index: np.ndarray
    s_flat_index: np.ndarray
    s_r_index: np.ndarray
    lattice_R: np.ndarray
    overlap_index: np.ndarray
    overlap_valid: np.ndarray
    edge_of: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.flat_index.size)

    def tensor(self, name: str, device: torch.device | str) -> torch.Tensor:
        """Field ``name`` as a torch tensor on ``device`` (converted once per device, then cached)."""
        cache = self.__dict__.setdefault("_tensors", {})
        key = (name, str(device))
        t = cache.get(key)
        if t is None:
            t = cache[key] = torch.as_tensor(getattr(self, name), device=device)
        return t


def layout_key(record: StructureRecord) -> str:
    """Fingerprint of everything the layout depends on (not the block values)."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (record.numbers, record.edge_index, record.edge_R):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(record.basis.to_json().encode())
    h.update(b"1" if record.spinful else b"0")
    return h.hexdigest()


def _element_coords(record: StructureRecord, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edge, p, q) of every packed element of ``name`` (vectorised)."""
    return record.packed_coords(name)


def build_layout(record: StructureRecord) -> PackedLayout:
    """Build the index arrays of one record (see the module docstring)."""
    n = record.n_orbitals
    f = 2 if record.spinful else 1
    dim = f * n
    atom_off = record.atom_offsets
    norb = record.atom_norb
    lattice_R, r_of_edge = np.unique(record.edge_R, axis=0, return_inverse=True)
    r_of_edge = r_of_edge.reshape(-1)
    i_at, j_at = record.edge_index[:, 0], record.edge_index[:, 1]

    name = "H" if "H" in record.blocks or "H0" not in record.blocks else "H0"
    edge_of, p, q = _element_coords(record, name)
    ni, nj = norb[i_at[edge_of]], norb[j_at[edge_of]]
    sp, a = p // ni, p % ni
    sq, b = q // nj, q % nj
    row = sp * n + atom_off[i_at[edge_of]] + a
    col = sq * n + atom_off[j_at[edge_of]] + b
    s_off = record.block_offsets("S")
    overlap_valid = sp == sq
    overlap_index = np.where(overlap_valid, s_off[edge_of] + a * nj + b, 0)

    s_edge, sp_, sq_ = _element_coords(record, "S")
    s_row = atom_off[i_at[s_edge]] + sp_
    s_col = atom_off[j_at[s_edge]] + sq_
    return PackedLayout(dim=dim, n_orbitals=n, spinful=record.spinful,
                        flat_index=(row * dim + col).astype(np.int64), r_index=r_of_edge[edge_of].astype(np.int64),
                        s_flat_index=(s_row * n + s_col).astype(np.int64), s_r_index=r_of_edge[s_edge].astype(np.int64),
                        lattice_R=lattice_R.astype(np.int64), overlap_index=overlap_index.astype(np.int64),
                        overlap_valid=overlap_valid, edge_of=edge_of.astype(np.int64))


_CACHE: "OrderedDict[str, PackedLayout]" = OrderedDict()
_CACHE_SIZE = 4096


def packed_layout(record: StructureRecord) -> PackedLayout:
    """Cached :func:`build_layout` (keyed by :func:`layout_key`; LRU of 4096 layouts)."""
    key = layout_key(record)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    lay = build_layout(record)
    _CACHE[key] = lay
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return lay


def overlap_like_h(layout: PackedLayout, overlap: torch.Tensor) -> torch.Tensor:
    """Packed spinless ``S`` -> packed overlap in the layout of ``H`` (``S (x) I2`` when spinful)."""
    out = overlap[layout.tensor("overlap_index", overlap.device)]
    if layout.spinful:
        out = out * layout.tensor("overlap_valid", overlap.device).to(overlap.dtype)
    return out


def bloch_sum(values: torch.Tensor, flat_index, r_index, lattice_R, dim: int, kpts: torch.Tensor) -> torch.Tensor:
    """Differentiable ``M(k) = sum_R exp(+2 pi i k.R) M(R)`` of packed values -> (nk, dim, dim) complex.

    ``kpts`` (nk, 3) in fractional reciprocal coordinates. Gradients flow to ``values``.
    """
    device = values.device
    cdtype = torch.complex128 if values.dtype in (torch.float64, torch.complex128) else torch.complex64
    rdtype = torch.float64 if cdtype == torch.complex128 else torch.float32
    R = torch.as_tensor(lattice_R, device=device, dtype=rdtype)
    k = torch.as_tensor(kpts, device=device, dtype=rdtype).reshape(-1, 3)
    phase = torch.exp(2j * torch.pi * (k @ R.T).to(cdtype))  # (nk, nR)
    contrib = values.to(cdtype)[None, :] * phase[:, torch.as_tensor(r_index, device=device)]
    out = torch.zeros(k.shape[0], dim * dim, dtype=cdtype, device=device)
    out = out.index_add(1, torch.as_tensor(flat_index, device=device), contrib)
    return out.reshape(-1, dim, dim)


def bloch_h(layout: PackedLayout, values: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
    """Bloch sum of packed ``H``-layout values, (nk, f n, f n)."""
    d = values.device
    return bloch_sum(values, layout.tensor("flat_index", d), layout.tensor("r_index", d),
                     layout.tensor("lattice_R", d), layout.dim, kpts)


def bloch_s(layout: PackedLayout, overlap: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
    """Bloch sum of packed spinless ``S``, expanded to ``S(k) (x) I2`` for spinful layouts."""
    d = overlap.device
    Sk = bloch_sum(overlap, layout.tensor("s_flat_index", d), layout.tensor("s_r_index", d),
                   layout.tensor("lattice_R", d), layout.n_orbitals, kpts)
    if layout.spinful:
        eye = torch.eye(2, dtype=Sk.dtype, device=Sk.device)
        Sk = torch.stack([torch.kron(eye, s) for s in Sk])
    return Sk
