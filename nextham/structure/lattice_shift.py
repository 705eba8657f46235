"""Moving atoms by lattice vectors without moving their matrix blocks off their geometry.

Convention (CONVENTIONS.md, docs/engine.md): the block of edge (i, j, R) couples orbital i at
``pos_i`` with orbital j at ``pos_j + R @ cell``, where ``pos`` are the positions the record stores.
Codes that wrap atoms into the cell (GPAW, ABACUS) label R for the wrapped positions; records keep
the positions they were given and relabel R with :func:`lattice_offsets` and
:func:`translate_edges`.
"""

from __future__ import annotations

import numpy as np


def lattice_offsets(cell: np.ndarray, positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Integer n (N, 3) with ``positions = reference + n @ cell`` (Å); raises if they differ otherwise."""
    cell = np.asarray(cell, dtype=np.float64)
    frac = (np.asarray(positions, float) - np.asarray(reference, float)) @ np.linalg.inv(cell)
    n = np.rint(frac).astype(np.int64)
    if np.abs(frac - n).max(initial=0.0) > 1e-6:
        raise ValueError("positions differ from the reference by more than lattice vectors")
    return n


def translate_edges(edge_index: np.ndarray, edge_R: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Translations after moving atom a by ``offsets[a] @ cell``: ``R' = R + n_i - n_j``.

    ``pos'_j + R' @ cell - pos'_i = pos_j + R @ cell - pos_i``: every edge keeps its geometry.
    """
    i, j = np.asarray(edge_index).T
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.asarray(edge_R, dtype=np.int64) + offsets[i] - offsets[j]


def translate_atoms(record, offsets: np.ndarray):
    """A copy of ``record`` with atom a moved by ``offsets[a] @ cell`` and R relabelled (same blocks)."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
    return record.replace(positions=record.positions + offsets @ record.cell,
                          edge_R=translate_edges(record.edge_index, record.edge_R, offsets))


def change_lattice_basis(record, cell: np.ndarray, operation: np.ndarray):
    """``record`` (cell ``operation @ cell``) expressed in the lattice basis ``cell``: same blocks.

    ``operation``: integer unimodular (3, 3) with ``record.cell = operation @ cell`` (e.g. from
    ``ase.geometry.minkowski_reduce``). A translation R' in the record's basis is
    ``R' @ record.cell = (R' @ operation) @ cell``, so R = R' @ operation; positions do not move.
    """
    op = np.asarray(operation, dtype=np.int64)
    if abs(round(np.linalg.det(op))) != 1 or not np.allclose(op @ np.asarray(cell, float), record.cell, atol=1e-8):
        raise ValueError("operation is not a unimodular change of basis between the two cells")
    return record.replace(cell=np.asarray(cell, dtype=np.float64), edge_R=np.asarray(record.edge_R) @ op)
