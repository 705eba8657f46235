"""Index arrays that map packed blocks to whole-cell matrices, and a differentiable Bloch sum.

Everything here depends only on a record's *layout* (atoms, basis, edge list, spin), never on block
values: the index arithmetic is :mod:`nextham.blocks.layout`'s, turned into torch tensors once per
layout and cached (:func:`packed_layout`).

For matrix ``name`` with spin factor ``f`` (2 for spinful ``H0``/``H``, else 1) a packed element of
edge ``e = (i, j, R)`` at local position ``(p, q)`` of its ``(f n_i, f n_j)`` block sits at

* row ``s n + off_i + a`` with ``s = p // n_i``, ``a = p % n_i`` (spin-major, docs/conventions.md),
* column ``s' n + off_j + b`` with ``s' = q // n_j``, ``b = q % n_j``,

of the ``(f n, f n)`` matrix ``M(R)``. The Bloch sum is ``M(k) = sum_R exp(+2 pi i k.R) M(R)``.
"""

from __future__ import annotations

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


def build_layout(record: StructureRecord) -> PackedLayout:
    """The Bloch-sum index arrays of one record, from its :class:`~nextham.blocks.layout.RecordLayout`."""
    lay = record.layout
    f = 2 if record.spinful else 1
    n = lay.n_orbitals
    h, s = lay.coordinates(f), lay.coordinates(1)
    overlap_index, overlap_valid = lay.overlap_index()
    return PackedLayout(dim=f * n, n_orbitals=n, spinful=record.spinful,
                        flat_index=h.row * (f * n) + h.col, r_index=lay.r_of_edge[h.edge],
                        s_flat_index=s.row * n + s.col, s_r_index=lay.r_of_edge[s.edge],
                        lattice_R=lay.lattice_R, overlap_index=overlap_index, overlap_valid=overlap_valid,
                        edge_of=h.edge)


def packed_layout(record: StructureRecord) -> PackedLayout:
    """:func:`build_layout`, built once per shared record layout (records of equal layout share it)."""
    return record.layout.cached("torch_bloch", lambda: build_layout(record))


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
