"""Bloch sums and eigenvalues: analytic models, gauge, folding, rotations, conditioning, DOS."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import make_supercell

from nextham.basis.orbitals import Basis
from nextham.basis.rotations import atom_rotation, random_orthogonal
from nextham.physics.bands import eigenvalues
from nextham.physics.bloch import bloch_sum, bloch_sum_loop
from nextham.physics.dos import electron_count, fermi_level, gaussian_dos
from nextham.physics.eig import solve_generalized
from nextham.physics.kpoints import high_symmetry_path, monkhorst_pack
from nextham.testing.models import random_crystal, random_two_centre_model
from nextham.tightbinding import TwoCentreModel, silicon_vogl


def graphene(eps=-0.3, t=-2.7, s=0.11, a=2.46):
    cell = a * np.array([[1.0, 0, 0], [0.5, np.sqrt(3) / 2, 0], [0, 0, 20.0 / a]])
    atoms = Atoms("C2", scaled_positions=[[1 / 3, 1 / 3, 0.5], [2 / 3, 2 / 3, 0.5]], cell=cell, pbc=True)
    basis = Basis.from_specs({"C": [1]})
    model = TwoCentreModel(basis, {"C": [eps]}, lambda *a: [0.0, t], cutoff=1.5,
                           overlap=lambda *a: [0.0, s])
    return atoms, model.record(atoms)


def test_graphene_pz_closed_form():
    eps, t, s = -0.3, -2.7, 0.11
    atoms, rec = graphene(eps, t, s)
    path = high_symmetry_path(atoms)
    Hk, Sk = bloch_sum(rec, "H", path.kpts), bloch_sum(rec, "S", path.kpts)
    z = 1  # p_z is m = 0, the middle of (y, z, x)
    pz = [z, 3 + z]
    res = solve_generalized(Hk[:, pz][:, :, pz], Sk[:, pz][:, :, pz])
    # nearest-neighbour vectors from atom A to its three B neighbours
    d = rec.edge_vectors[(rec.edge_index[:, 0] == 0) & (rec.edge_index[:, 1] == 1)]
    assert len(d) == 3
    k_cart = path.kpts @ (2 * np.pi * np.linalg.inv(atoms.cell.array).T)
    f = np.abs(np.exp(1j * k_cart @ d.T).sum(axis=1))
    closed = np.sort(np.stack([(eps + t * f) / (1 + s * f), (eps - t * f) / (1 - s * f)], 1), axis=1)
    assert np.max(np.abs(res.eigenvalues - closed)) < 1e-10
    # the full p problem contains the p_z bands
    full, _ = eigenvalues(rec, path.kpts)
    assert np.max(np.min(np.abs(full[:, :, None] - closed[:, None, :]), axis=1)) < 1e-10


def test_two_orbital_chain_closed_form():
    a, eA, eB, t1, t2, s1 = 3.0, -1.0, 0.5, -1.2, -0.4, 0.07
    atoms = Atoms("HLi", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[a, 15, 15], pbc=True)
    basis = Basis.from_specs({"H": [0], "Li": [0]})
    hop = lambda Zi, Zj, l1, l2, p, q, r: [t1 if r < 1.5 else t2]  # noqa: E731
    ovl = lambda Zi, Zj, l1, l2, p, q, r: [s1 if r < 1.5 else 0.0]  # noqa: E731
    rec = TwoCentreModel(basis, {"H": [eA], "Li": [eB]}, hop, cutoff=2.0, overlap=ovl).record(atoms)
    k = np.stack([np.linspace(-0.5, 0.5, 41), np.zeros(41), np.zeros(41)], 1)
    eps, _ = eigenvalues(rec, k)
    # H_AB(k) = t1 + t2 exp(-2 pi i k), S_AB = s1; solve (1-|s|^2)E^2 - (eA+eB-2Re(h s*))E + eA eB - |h|^2 = 0
    h = t1 + t2 * np.exp(-2j * np.pi * k[:, 0])
    A, B, C = 1 - s1**2, -(eA + eB - 2 * np.real(h * s1)), eA * eB - np.abs(h) ** 2
    disc = np.sqrt(B * B - 4 * A * C)
    closed = np.stack([(-B - disc) / (2 * A), (-B + disc) / (2 * A)], 1)
    assert np.max(np.abs(eps - closed)) < 1e-10


@pytest.mark.parametrize("spinful", [False, True])
def test_bloch_hermitian_and_equals_loop(spinful):
    rec = random_two_centre_model(1).record(random_crystal(1, n_atoms=3), spinful=spinful)
    k = np.random.default_rng(0).random((7, 3))
    Hk = bloch_sum(rec, "H", k)
    assert np.max(np.abs(Hk - np.conj(np.swapaxes(Hk, 1, 2)))) < 1e-13
    assert np.max(np.abs(Hk - bloch_sum_loop(rec, "H", k))) < 1e-12


@pytest.mark.parametrize("spinful", [False, True])
def test_gauge_shift_moves_eigenvalues_rigidly(spinful):
    rec = random_two_centre_model(2).record(random_crystal(2, n_atoms=2), spinful=spinful)
    k = np.random.default_rng(1).random((5, 3))
    mu = 0.731
    e0, _ = eigenvalues(rec, k)
    e1, _ = eigenvalues(rec.with_blocks(H=rec.blocks["H"] + mu * rec.overlap_like_h()), k)
    assert np.max(np.abs(e1 - (e0 + mu))) < 1e-10


def test_supercell_folding():
    model = random_two_centre_model(3)
    prim = random_crystal(3, n_atoms=2)
    P = np.diag([2, 2, 1])
    sup = make_supercell(prim, P)
    rec_p, rec_s = model.record(prim), model.record(sup)
    ks = np.random.default_rng(2).random((4, 3))
    e_s, _ = eigenvalues(rec_s, ks)
    shifts = np.array([[m1, m2, 0] for m1 in (0, 1) for m2 in (0, 1)], float)
    for k, es in zip(ks, e_s):
        kp = (k[None, :] + shifts) @ np.linalg.inv(P).T
        ep, _ = eigenvalues(rec_p, kp)
        assert np.max(np.abs(np.sort(ep.ravel()) - es)) < 1e-10


@pytest.mark.parametrize("spinful", [False, True])
def test_block_rotation_with_wigner_D(spinful):
    """Rotating the structure (random O(3)) equals transforming its s, p, d, f blocks with D (and SU(2))."""
    rng = np.random.default_rng(5)
    model = random_two_centre_model(4)
    atoms = random_crystal(4, n_atoms=3)
    rec = model.record(atoms, spinful=spinful)
    for improper in (False, True):
        Q = random_orthogonal(rng, improper=improper)
        rot = atoms.copy()
        rot.set_cell(atoms.cell.array @ Q.T, scale_atoms=False)
        rot.positions = atoms.positions @ Q.T
        rec_rot = model.record(rot, spinful=spinful)
        assert np.array_equal(rec_rot.edge_index, rec.edge_index) and np.array_equal(rec_rot.edge_R, rec.edge_R)
        Rs = [atom_rotation(rec.basis[s].ls, Q, spinful) for s in rec.symbols]
        Rs0 = [atom_rotation(rec.basis[s].ls, Q, False) for s in rec.symbols]
        for name, rot_of in (("H", Rs), ("S", Rs0)):
            for e, (i, j) in enumerate(rec.edge_index):
                expected = rot_of[i] @ rec.block(name, e) @ rot_of[j].conj().T
                assert np.max(np.abs(rec_rot.block(name, e) - expected)) < 1e-10
        k = rng.random((4, 3))
        assert np.max(np.abs(eigenvalues(rec_rot, k)[0] - eigenvalues(rec, k)[0])) < 1e-10


def test_ill_conditioned_overlap_drops_directions():
    rng = np.random.default_rng(6)
    n = 6
    A = rng.normal(size=(n, n))
    S = A @ A.T
    w, U = np.linalg.eigh(S)
    w[0] = 1e-12
    S = (U * w) @ U.T
    H = rng.normal(size=(n, n))
    H = H + H.T
    with pytest.warns(UserWarning, match="dropped 1 S eigenvalue"):
        res = solve_generalized(np.stack([H, H]), np.stack([S, S]), threshold=1e-8, vectors=True)
    assert res.n_dropped.tolist() == [1, 1]
    assert np.isnan(res.eigenvalues[:, -1]).all() and np.isfinite(res.eigenvalues[:, :-1]).all()
    C = res.eigenvectors[0][:, :-1]
    assert np.allclose(C.T @ S @ C, np.eye(n - 1), atol=1e-8)
    # Galerkin condition in the kept subspace: C^T H C = diag(eps)
    assert np.allclose(C.T @ H @ C, np.diag(res.eigenvalues[0, :-1]), atol=1e-8)
    # well conditioned: equals scipy's generalized solver
    from scipy.linalg import eigh
    S2 = A @ A.T + np.eye(n)
    assert np.allclose(solve_generalized(H, S2).eigenvalues, eigh(H, S2, eigvals_only=True), atol=1e-10)


def test_monkhorst_pack():
    k = monkhorst_pack((2, 3, 1))
    assert k.shape == (6, 3) and np.allclose(k[1], [0, 1 / 3, 0])
    ks = monkhorst_pack((2, 2, 2), shift=True)
    assert np.allclose(np.sort(np.unique(ks[:, 0])), [-0.25, 0.25])
    with pytest.raises(ValueError, match="three positive integers"):
        monkhorst_pack((0, 1, 1))


def test_path_of_rotated_cell_gives_same_bands():
    rec = silicon_vogl()
    atoms = rec.to_atoms()
    Q = random_orthogonal(np.random.default_rng(7), improper=False)
    rot = atoms.copy()
    rot.set_cell(atoms.cell.array @ Q.T, scale_atoms=False)
    rot.positions = atoms.positions @ Q.T
    p0, p1 = high_symmetry_path(atoms), high_symmetry_path(rot)
    # the path lies in the user's own (rotated) frame: same Cartesian length scale, same energies
    e0, _ = eigenvalues(rec, p0.kpts)
    e1, _ = eigenvalues(rec, p1.kpts)  # fractional k of the rotated cell apply to the same lattice
    assert np.max(np.abs(e0 - e1)) < 1e-9
    assert p0.labels[0][1] == "Γ"


def test_dos_and_fermi_level():
    rec = silicon_vogl()
    k = monkhorst_pack((6, 6, 6), shift=True)
    eps, _ = eigenvalues(rec, k)
    ef = fermi_level(eps, 8.0, sigma=0.01)
    assert abs(electron_count(eps, ef, sigma=0.01) - 8.0) < 1e-8
    assert np.nanmax(eps[:, :4]) < ef < np.nanmin(eps[:, 4:])
    grid = np.linspace(-20, 20, 8001)
    dos = gaussian_dos(eps, grid, sigma=0.1)
    assert abs(np.trapezoid(dos, grid) - 2 * 10) < 1e-6  # 10 orbitals x 2 spins


@pytest.mark.parametrize("fill", [0.0, 2.0], ids=["dense-stack", "sparse"])
def test_bloch_dense_and_sparse_paths_agree(monkeypatch, fill):
    import nextham.physics.bloch as bloch

    monkeypatch.setattr(bloch, "DENSE_FILL", fill)
    for spinful in (False, True):
        rec = random_two_centre_model(1).record(random_crystal(5, n_atoms=2), spinful=spinful)
        op = bloch.bloch_operator(rec, "H")
        assert isinstance(op.matrix, np.ndarray) == (fill == 0.0)
        k = np.random.default_rng(3).random((5, 3))
        assert np.max(np.abs(op(k, max_bytes=3 * 16 * op.dim**2) - bloch_sum_loop(rec, "H", k))) < 1e-12
