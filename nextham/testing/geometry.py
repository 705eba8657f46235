"""Check that blocks sit on the edges of their geometry, whatever lattice shifts the atoms carry."""

from __future__ import annotations

import numpy as np


def geometric_twin_error(reference, record, names=("S", "H0")) -> dict[str, float]:
    """Largest |block difference| between each edge (i, j, R) of ``record`` and the edge of
    ``reference`` with the same atoms and the same vector ``pos_j + R @ cell - pos_i``.

    Both records hold the same structure in the same atom order and cell; their positions may
    differ by lattice vectors per atom. Raises AssertionError when an edge has no twin or the edge
    counts differ.
    """
    A = record.cell
    i, j = record.edge_index.T
    d = record.positions[j] + record.edge_R @ A - record.positions[i]
    d_cell = reference.positions[j] - reference.positions[i]
    frac = (d - d_cell) @ np.linalg.inv(A)
    R_ref = np.rint(frac).astype(np.int64)
    assert np.abs(frac - R_ref).max() < 1e-6, "the positions differ by more than lattice vectors"
    target = reference.find_edges(i, j, R_ref)
    assert (target >= 0).all(), f"{int((target < 0).sum())} edges have no geometric twin"
    assert record.n_edges == reference.n_edges, (record.n_edges, reference.n_edges)
    out = {}
    for name in names:
        a, b = record.block_list(name), reference.block_list(name)
        out[name] = max(float(np.abs(a[e] - b[target[e]]).max()) for e in range(record.n_edges))
    return out
