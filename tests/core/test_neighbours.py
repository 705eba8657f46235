"""Periodic neighbour list against a brute-force reference on random triclinic cells."""

import itertools

import numpy as np
import pytest
from ase import Atoms

from nextham.structure import neighbour_list


def brute_force(atoms, cutoff):
    cell, pos = atoms.cell.array, atoms.positions
    # enough images: number of cells along each reciprocal direction covering the cutoff
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    n = np.ceil(cutoff / heights).astype(int) + 1
    out = set()
    for R in itertools.product(*[range(-k, k + 1) for k in n]):
        shift = np.array(R) @ cell
        d = pos[None, :, :] + shift - pos[:, None, :]
        for i, j in zip(*np.nonzero(np.linalg.norm(d, axis=-1) <= cutoff)):
            out.add((int(i), int(j), *R))
    return out


@pytest.mark.parametrize("seed, cutoff", [(0, 3.0), (1, 6.5), (2, 9.0)])
def test_neighbour_list_equals_brute_force(seed, cutoff):
    rng = np.random.default_rng(seed)
    cell = 3.0 * (np.eye(3) + 0.3 * rng.normal(size=(3, 3)))  # triclinic; cutoff 9 Å exceeds the cell
    atoms = Atoms("SiO2", scaled_positions=rng.random((3, 3)), cell=cell, pbc=True)
    nl = neighbour_list(atoms, cutoff)
    got = {(int(i), int(j), *map(int, R)) for (i, j), R in zip(nl.edge_index, nl.edge_R)}
    assert got == brute_force(atoms, cutoff)
    # self-loops present, vectors consistent
    assert all((i, i, 0, 0, 0) in got for i in range(3))
    ref = atoms.positions[nl.edge_index[:, 1]] + nl.edge_R @ cell - atoms.positions[nl.edge_index[:, 0]]
    assert np.allclose(nl.vectors, ref)
    assert np.all(nl.distances <= cutoff + 1e-12)
