"""The block record: one structure, its orbital basis and the real-space blocks of S, H0 and H.

Conventions (docs/conventions.md):

* ``H_ij(R) = <phi_i,0 | H | phi_j,R>``; rows are the orbitals of atom ``i`` in the home cell,
  columns those of atom ``j`` in cell ``R``; the edge vector is ``pos_j + R @ cell - pos_i`` (Å).
* Both directions of every pair are stored (``H_ji(-R) = H_ij(R)^dagger``), self-loops included.
* Blocks are packed flat (row-major) in edge order. ``S`` is always spinless and real; ``H0``/``H``
  are real spinless blocks ``(n_i, n_j)`` or complex spinful blocks ``(2 n_i, 2 n_j)``, spin-major
  ``[[uu, ud], [du, dd]]``.
* Energies in eV, lengths in Å.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..basis.orbitals import Basis
from .layout import PackedCoordinates, RecordLayout, layout_of, row_ids

MATRIX_NAMES = ("S", "H0", "H")
"""Matrices a record may hold. ``S`` is the overlap (dimensionless), ``H0`` the zeroth-step and ``H``
the self-consistent Kohn-Sham Hamiltonian (eV)."""


class RecordError(ValueError):
    """A record is inconsistent: wrong block shapes, missing Hermitian partners, NaNs, ..."""


@dataclass(eq=False)
class StructureRecord:
    """One structure with blocks of ``S``, ``H0`` and/or ``H``.

    Attributes
    ----------
    cell : (3, 3) float64, Å, lattice vectors as rows.
    positions : (N, 3) float64, Cartesian Å.
    numbers : (N,) int64, atomic numbers.
    pbc : (3,) bool.
    basis : orbital basis of every element present.
    edge_index : (E, 2) int64, atom pairs (i, j).
    edge_R : (E, 3) int64, lattice translation of atom j.
    blocks : name -> flat packed array; ``S`` float64, ``H0``/``H`` float64 or complex128 (spinful).
    spinful : whether ``H0``/``H`` carry the spin index (spin-orbit / non-collinear).
    fermi_energy_eV : Fermi level on the zero of ``H`` (eV), or None.
    metadata : free JSON-serialisable provenance (code, settings, timings, check eigenvalues).
    """

    cell: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    pbc: np.ndarray
    basis: Basis
    edge_index: np.ndarray
    edge_R: np.ndarray
    blocks: dict[str, np.ndarray]
    spinful: bool = False
    fermi_energy_eV: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        self.edge_index = np.asarray(self.edge_index, dtype=np.int64).reshape(-1, 2)
        self.edge_R = np.asarray(self.edge_R, dtype=np.int64).reshape(-1, 3)
        self.spinful = bool(self.spinful)
        for z in self.numbers:
            if not 0 < z < len(chemical_symbols):
                raise RecordError(f"unknown atomic number {z}")
            if chemical_symbols[z] not in self.basis:
                raise RecordError(f"element {chemical_symbols[z]} has no orbital basis "
                                  f"(basis covers {list(self.basis.symbols)})")

    # ------------------------------------------------------------------ sizes and layout
    @cached_property
    def layout(self) -> RecordLayout:
        """The record's packing: edge lookup, packed coordinates, partner index, ``S (x) I2``
        (:mod:`nextham.blocks.layout`). Shared between records of equal layout."""
        return layout_of(self.numbers, self.basis, self.edge_index, self.edge_R, self.spinful)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def n_edges(self) -> int:
        return len(self.edge_index)

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.numbers]

    @property
    def atom_norb(self) -> np.ndarray:
        """Spinless orbital count per atom, (N,)."""
        return self.layout.atom_norb

    @property
    def atom_offsets(self) -> np.ndarray:
        """Spinless orbital offset of each atom, (N+1,)."""
        return self.layout.atom_offsets

    @property
    def n_orbitals(self) -> int:
        """Spinless orbitals in the cell."""
        return self.layout.n_orbitals

    def spin_factor(self, name: str) -> int:
        """2 for spinful ``H0``/``H``, else 1 (``S`` is always spinless)."""
        return 2 if (self.spinful and name != "S") else 1

    def block_shapes(self, name: str) -> np.ndarray:
        """(E, 2) shape of each block of ``name``."""
        return self.layout.block_shapes(self.spin_factor(name))

    def block_offsets(self, name: str) -> np.ndarray:
        """(E+1,) start of each block of ``name`` in the flat array."""
        return self.layout.block_offsets(self.spin_factor(name))

    def coordinates(self, name: str) -> PackedCoordinates:
        """Edge, in-block ``(p, q)`` and whole-cell ``(row, col)`` of every packed element of ``name``."""
        return self.layout.coordinates(self.spin_factor(name))

    def partner_index(self, name: str) -> np.ndarray:
        """(nnz,) packed position of ``B_ji(-R)[q, p]`` for every element ``B_ij(R)[p, q]``."""
        try:
            return self.layout.partner_index(self.spin_factor(name))
        except ValueError as exc:
            raise RecordError(str(exc)) from None

    @property
    def reverse_edges(self) -> np.ndarray:
        """(E,) index of the partner edge (j, i, -R); -1 where missing."""
        return self.layout.reverse_edges

    def find_edges(self, i: np.ndarray, j: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Edge index of each (i, j, R) query, -1 where absent."""
        return self.layout.find_edges(i, j, R)

    def overlap_like_h(self) -> np.ndarray:
        """Packed ``S`` in the layout of ``H``: ``I_2 (x) S_ij`` per block (complex128) for a spinful
        record, ``S`` itself for a spinless one."""
        return self.layout.overlap_like_h(self.blocks["S"])

    def block(self, name: str, edge: int) -> np.ndarray:
        """View of one block of ``name`` as a 2-D array."""
        off = self.block_offsets(name)
        return self.blocks[name][off[edge]:off[edge + 1]].reshape(self.block_shapes(name)[edge])

    def block_list(self, name: str) -> list[np.ndarray]:
        """All blocks of ``name`` as 2-D views (convenience; not for hot paths)."""
        off = self.block_offsets(name)
        return [self.blocks[name][a:b].reshape(s) for a, b, s in zip(off[:-1], off[1:], self.block_shapes(name))]

    # ------------------------------------------------------------------ geometry of edges
    @property
    def edge_vectors(self) -> np.ndarray:
        """(E, 3) Å, ``pos_j + R @ cell - pos_i``."""
        i, j = self.edge_index.T
        return self.positions[j] + self.edge_R @ self.cell - self.positions[i]

    @property
    def edge_lengths(self) -> np.ndarray:
        return np.linalg.norm(self.edge_vectors, axis=1)

    @property
    def onsite_mask(self) -> np.ndarray:
        """(E,) True for self-loops (i == j, R = 0)."""
        return self.layout.onsite_mask

    def to_atoms(self) -> Atoms:
        return Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)

    # ------------------------------------------------------------------ validation
    def validate(self, hermitian_tol: float | None = 1e-6) -> "StructureRecord":
        """Check shapes, dtypes, Hermitian partners and finiteness; raise :class:`RecordError`.

        ``hermitian_tol`` (eV, or dimensionless for S): largest allowed ``|H_ij(R) - H_ji(-R)^dagger|``;
        None skips the value check (the partners must still exist).
        """
        if np.any(self.edge_index < 0) or np.any(self.edge_index >= self.n_atoms):
            raise RecordError(f"edge list refers to atoms outside 0..{self.n_atoms - 1}")
        ids = row_ids([*self.edge_R.T, self.edge_index[:, 0], self.edge_index[:, 1]])
        if len(np.unique(ids)) != len(ids):
            raise RecordError("edge list holds duplicate (i, j, R) entries")
        missing = np.flatnonzero(self.reverse_edges < 0)
        if len(missing):
            e = missing[0]
            i, j = self.edge_index[e]
            raise RecordError(f"{len(missing)} edges lack their Hermitian partner, e.g. (i={i}, j={j}, "
                              f"R={tuple(self.edge_R[e])}) has no (i={j}, j={i}, R={tuple(-self.edge_R[e])})")
        if not self.blocks:
            raise RecordError("record holds no matrices")
        for name, data in self.blocks.items():
            if name not in MATRIX_NAMES:
                raise RecordError(f"unknown matrix name {name!r} (expected one of {MATRIX_NAMES})")
            expected = int(self.block_offsets(name)[-1])
            if data.ndim != 1 or data.size != expected:
                raise RecordError(f"matrix {name}: {data.size} packed values but the basis "
                                  f"({self.basis.to_json()}) and edge list need {expected}")
            if name == "S" and np.iscomplexobj(data):
                raise RecordError("matrix S must be real and spinless")
            if self.spin_factor(name) == 1 and np.iscomplexobj(data):
                raise RecordError(f"matrix {name}: complex values in a spinless record")
            bad = ~np.isfinite(data)
            if bad.any():
                e = int(np.searchsorted(self.block_offsets(name), np.flatnonzero(bad)[0], side="right") - 1)
                raise RecordError(f"matrix {name}: {int(bad.sum())} non-finite values (NaN/inf), first in block "
                                  f"of edge {e} (i={self.edge_index[e, 0]}, j={self.edge_index[e, 1]}, "
                                  f"R={tuple(self.edge_R[e])})")
            if hermitian_tol is not None:
                err = hermitian_error(self, name)
                if err > hermitian_tol:
                    raise RecordError(f"matrix {name}: not Hermitian, max |B_ij(R) - B_ji(-R)^dagger| = {err:.3e}")
        return self

    # ------------------------------------------------------------------ construction
    def replace(self, **changes: Any) -> "StructureRecord":
        return dataclasses.replace(self, **changes)

    def with_blocks(self, **blocks: np.ndarray) -> "StructureRecord":
        """A copy with some matrices replaced or added (same edge list)."""
        return self.replace(blocks={**self.blocks, **blocks})

    @classmethod
    def from_dense(cls, atoms: Atoms, basis: Basis, matrices: Mapping[str, Mapping[tuple[int, int, int], np.ndarray]],
                   spinful: bool = False, fermi_energy_eV: float | None = None,
                   metadata: dict | None = None, tol: float = 0.0) -> "StructureRecord":
        """Cut dense per-R matrices into blocks.

        ``matrices[name][R]`` is the whole-cell matrix ``M(R)`` of shape (n, n) (spinless) or
        (2n, 2n) spin-major for spinful ``H0``/``H``, orbitals in nextham order. The edge list is the
        union over all matrices of the (i, j, R) blocks with any ``|value| > tol``; self-loops are
        always kept. An ``M(-R)`` not given is taken as ``M(R)^dagger``, so every edge has its Hermitian
        partner. Vectorized: one gather per matrix.
        """
        numbers = atoms.get_atomic_numbers()
        offsets = basis.atom_offsets(numbers)
        n_atoms = len(numbers)
        given = {tuple(int(x) for x in R) for m in matrices.values() for R in m}
        Rs = sorted(given | {tuple(-x for x in R) for R in given})
        keep = np.zeros((len(Rs), n_atoms, n_atoms), dtype=bool)
        for name, mats in matrices.items():
            f = 2 if (spinful and name != "S") else 1
            for r, R in enumerate(Rs):
                if R not in mats:
                    continue
                M = np.asarray(mats[R])
                n = offsets[-1]
                if M.shape != (f * n, f * n):
                    raise RecordError(f"matrix {name} at R={R}: shape {M.shape}, basis needs {(f * n, f * n)}")
                A = np.abs(M).reshape(f, n, f, n).max(axis=(0, 2))
                # max over each atom block: reduce rows then columns by atom
                rowmax = np.maximum.reduceat(A, offsets[:-1], axis=0)
                keep[r] |= np.maximum.reduceat(rowmax, offsets[:-1], axis=1) > tol
        r0 = Rs.index((0, 0, 0)) if (0, 0, 0) in Rs else None
        if r0 is not None:
            keep[r0][np.diag_indices(n_atoms)] = True
        # symmetrise the support: (i, j, R) kept -> (j, i, -R) kept
        index = {R: k for k, R in enumerate(Rs)}
        for r, R in enumerate(Rs):
            mR = tuple(-x for x in R)
            if mR in index:
                keep[index[mR]] |= keep[r].T
        rr, ii, jj = np.nonzero(keep)
        R_table = np.array(Rs, dtype=np.int64).reshape(-1, 3)
        record = cls(cell=atoms.cell.array, positions=atoms.positions, numbers=numbers, pbc=atoms.pbc,
                     basis=basis.restrict(numbers), edge_index=np.stack([ii, jj], 1), edge_R=R_table[rr],
                     blocks={}, spinful=spinful, fermi_energy_eV=fermi_energy_eV, metadata=dict(metadata or {}))
        for name, mats in matrices.items():
            f = record.spin_factor(name)
            dtype = np.complex128 if f == 2 else np.float64
            # stack M(R) for every R of the table; an R given only through its partner is M(-R)^dagger
            stack = np.zeros((len(Rs), f * offsets[-1], f * offsets[-1]), dtype)
            for r, R in enumerate(Rs):
                mR = tuple(-x for x in R)
                if R in mats:
                    stack[r] = mats[R]
                elif mR in mats:
                    stack[r] = np.asarray(mats[mR]).conj().T
            c = record.coordinates(name)
            record.blocks[name] = stack[rr[c.edge], c.row, c.col].astype(dtype)
        return record

    def to_dense(self, name: str) -> dict[tuple[int, int, int], np.ndarray]:
        """Whole-cell matrices ``M(R)`` (spin-major for spinful H), inverse of :meth:`from_dense`."""
        dim = self.spin_factor(name) * self.n_orbitals
        c = self.coordinates(name)
        stack = np.zeros((len(self.layout.lattice_R), dim, dim), self.blocks[name].dtype)
        stack[self.layout.r_of_edge[c.edge], c.row, c.col] = self.blocks[name]
        return {tuple(int(x) for x in R): M for R, M in zip(self.layout.lattice_R, stack)}


def conjugate_transpose_blocks(record: StructureRecord, name: str, data: np.ndarray | None = None) -> np.ndarray:
    """Flat array whose block ``e`` is ``B_{rev(e)}^dagger`` (the partner's adjoint), vectorized."""
    data = record.blocks[name] if data is None else data
    src = record.partner_index(name)
    return np.conj(data[src]) if np.iscomplexobj(data) else data[src]


def hermitian_error(record: StructureRecord, name: str) -> float:
    """Max ``|B_ij(R) - B_ji(-R)^dagger|`` of matrix ``name``."""
    data = record.blocks[name]
    if data.size == 0:
        return 0.0
    return float(np.max(np.abs(data - conjugate_transpose_blocks(record, name))))
