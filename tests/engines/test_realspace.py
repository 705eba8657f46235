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


# ---------------------------------------------------------------------------- direct assembly layout
from nextham.engines.realspace import EdgeLayout, ThreeCentreProducts  # noqa: E402


def _layout_all_pairs(norb, Rs):
    n = len(norb)
    ei, eR = [], []
    for R in Rs:
        for i in range(n):
            for j in range(n):
                ei.append((i, j))
                eR.append(R)
    return EdgeLayout(np.array(ei), np.array(eR), np.array(norb))


def _bloch(lay, data, k):
    """sum over edges of exp(+2 pi i k.R) block, whole cell (n, n)."""
    n = lay.atom_offsets[-1]
    out = np.zeros((n, n), complex)
    for e, ((i, j), R) in enumerate(zip(lay.edge_index, lay.edge_R)):
        b = data[lay.offsets[e]:lay.offsets[e + 1]].reshape(lay.norb[i], lay.norb[j])
        out[lay.atom_offsets[i]:lay.atom_offsets[i + 1], lay.atom_offsets[j]:lay.atom_offsets[j + 1]] += \
            np.exp(2j * np.pi * k @ R) * b
    return out


def test_displacement_matrices_give_gpaws_bloch_sum():
    """V(k) = herm(V_0 + 2 sum_x exp(-2 pi i k.s_x) V_x) (GPAW's LCAO convention) from the gathered V(R)."""
    rng = np.random.default_rng(1)
    norb = [2, 3]
    sdisp = np.array([[0, 0, 0], [0, 0, 1], [0, 1, -1], [1, 0, 0]])
    Rs = [tuple(s) for s in sdisp] + [tuple(-s) for s in sdisp[1:]]
    lay = _layout_all_pairs(norb, Rs)
    V = rng.normal(size=(len(sdisp), 5, 5))
    data, residual = lay.gather_displacement_matrices(V, sdisp)
    assert residual == 0.0
    for k in rng.random((3, 3)):
        ref = V[0] + 2 * np.einsum("x,xmn->mn", np.exp(-2j * np.pi * sdisp[1:] @ k), V[1:])
        ref = 0.5 * (ref + ref.conj().T)
        np.testing.assert_allclose(_bloch(lay, data, k), ref, atol=1e-12)
    # a pair missing from the edge list is reported, not silently lost
    keep = ~((lay.edge_index[:, 0] == 0) & (lay.edge_index[:, 1] == 1) & (lay.edge_R == [0, 0, -1]).all(1))
    keep &= ~((lay.edge_index[:, 0] == 1) & (lay.edge_index[:, 1] == 0) & (lay.edge_R == [0, 0, 1]).all(1))
    small = EdgeLayout(lay.edge_index[keep], lay.edge_R[keep], np.array(norb))
    _, residual = small.gather_displacement_matrices(V, sdisp)
    assert residual == np.abs(V[1, 0:2, 2:5]).max()


def test_three_centre_sum_equals_dense_products():
    """sum_R1 P(R1)^T X P(R1 + R) placed on edge (b, c, R), against an explicit loop."""
    rng = np.random.default_rng(2)
    norb = [2, 3]
    Rs = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    Rs = sorted({tuple(np.subtract(p, q)) for p in Rs for q in Rs})
    lay = _layout_all_pairs(norb, Rs)
    entries = [(0, (0, 0, 0)), (1, (0, 0, 0)), (0, (1, 0, 0)), (1, (0, -1, 1))]
    ni = 4
    blocks = [rng.normal(size=(ni, norb[b])) for b, _ in entries]
    P = np.concatenate(blocks, axis=1)
    atoms = np.concatenate([np.full(norb[b], b) for b, _ in entries])
    cells = np.concatenate([np.repeat([R], norb[b], axis=0) for b, R in entries]).astype(np.int64)
    X = rng.normal(size=(ni, ni)) + 1j * rng.normal(size=(ni, ni))
    got = ThreeCentreProducts(lay, {0: (P, atoms, cells)})({0: X}, dtype=complex)
    ref = np.zeros(lay.size, complex)
    for (b, R1), Pb in zip(entries, blocks):
        for (c, R2), Pc in zip(entries, blocks):
            e = lay.find([b], [c], np.subtract(R2, R1)[None])[0]
            ref[lay.offsets[e]:lay.offsets[e + 1]] += (Pb.T @ X @ Pc).ravel()
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_spinful_blocks_are_spin_major():
    lay = _layout_all_pairs([1, 2], [(0, 0, 0)])
    rng = np.random.default_rng(3)
    h, vx, vy, vz = (rng.normal(size=lay.size) for _ in range(4))
    out = lay.spinful_from_components(h, vx, vy, vz)
    e = int(lay.find([0], [1], np.zeros((1, 3), int))[0])
    blk = out[4 * lay.offsets[e]:4 * lay.offsets[e + 1]].reshape(2, 4)
    sl = slice(lay.offsets[e], lay.offsets[e + 1])
    np.testing.assert_allclose(blk[0, :2], h[sl] + vz[sl])
    np.testing.assert_allclose(blk[0, 2:], vx[sl] - 1j * vy[sl])
    np.testing.assert_allclose(blk[1, :2], vx[sl] + 1j * vy[sl])
    np.testing.assert_allclose(blk[1, 2:], h[sl] - vz[sl])
