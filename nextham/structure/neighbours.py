"""Periodic neighbour list: every (i, j, R) with ``|pos_j + R @ cell - pos_i| <= cutoff``.

Built on ASE's vectorized cell-list implementation (``ase.neighborlist.primitive_neighbor_list``),
which handles cutoffs larger than the cell (many periodic images) without O(N^2) Python loops.
Self-loops (i, i, R=0) are included on request; periodic self-images (i, i, R != 0) always are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import primitive_neighbor_list


@dataclass(frozen=True)
class NeighbourList:
    """Edges of a periodic structure.

    edge_index : (E, 2) int64 atom pairs (i, j); edge_R : (E, 3) int64 lattice translation of j;
    vectors : (E, 3) Å, ``pos_j + R @ cell - pos_i``; distances : (E,) Å.
    Edges are sorted by (i, j, R) lexicographically.
    """

    edge_index: np.ndarray
    edge_R: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray


def neighbour_list(atoms: Atoms, cutoff: float, self_loops: bool = True) -> NeighbourList:
    """All (i, j, R) within ``cutoff`` (Å) of ``atoms`` (ASE cell rows, pbc honoured)."""
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    cell = atoms.cell.array
    pbc = atoms.pbc
    if np.any(pbc) and abs(np.linalg.det(cell[pbc][:, pbc] if pbc.all() else cell)) < 1e-12 and pbc.all():
        raise ValueError("periodic structure with a singular cell")
    i, j, R, D = primitive_neighbor_list("ijSD", pbc, cell, atoms.positions, cutoff,
                                         self_interaction=self_loops)
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    R = R.astype(np.int64)
    order = np.lexsort((R[:, 2], R[:, 1], R[:, 0], j, i))
    D = D[order]
    return NeighbourList(np.stack([i[order], j[order]], 1), R[order], D, np.linalg.norm(D, axis=1))
