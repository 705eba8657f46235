"""The k-mesh -> R transform (pure numpy): exact recovery when the BvK mesh separates all pairs."""

import numpy as np
import pytest
from ase.build import bulk

from nextham.engines.realspace import bloch_to_realspace, bvk_mesh, mesh_index, mesh_kpoints, pair_support
from nextham.engines.toy import ToyEngine
from nextham.physics.bloch import bloch_sum


@pytest.mark.parametrize("atoms", [bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))])
def test_recovers_realspace_blocks(atoms):
    cutoff = 5.0
    rec = ToyEngine(cutoff=cutoff).compute(atoms)
    support = pair_support(atoms.cell.array, atoms.positions, np.full(len(atoms), cutoff / 2 + 1e-6))
    mesh = bvk_mesh(support)
    k = mesh_kpoints(mesh)
    Mk = {name: bloch_sum(rec, name, k) for name in ("S", "H")}
    rs = bloch_to_realspace(Mk, mesh, support, rec.atom_offsets, real={"S": True, "H": True})
    assert max(rs.residual.values()) < 1e-12
    for name in ("S", "H"):
        ref = rec.to_dense(name)
        got = rs.matrices[name]
        for R, M in ref.items():
            np.testing.assert_allclose(got[R], M, atol=1e-12)
        for R, M in got.items():
            if R not in ref:
                assert np.abs(M).max() < 1e-12


def test_too_small_mesh_is_refused():
    atoms = bulk("Si", "diamond", a=5.43)
    support = pair_support(atoms.cell.array, atoms.positions, np.full(2, 3.0))
    mesh = bvk_mesh(support)
    with pytest.raises(ValueError, match="too small"):
        bloch_to_realspace({"S": np.zeros((1, 16, 16))}, (1, 1, 1), support, np.array([0, 8, 16]))
    assert min(mesh) > 1


def test_mesh_index_roundtrip():
    mesh = (3, 4, 5)
    k = mesh_kpoints(mesh)
    np.testing.assert_array_equal(mesh_index(k - np.rint(k), mesh), np.arange(60))
    with pytest.raises(ValueError):
        mesh_index(np.array([[0.1, 0, 0]]), mesh)
