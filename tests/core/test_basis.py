"""Orbital bases, per-code conversion tables, real harmonics, Wigner D and SU(2)."""

import numpy as np
import pytest

from nextham.basis.conventions import atom_permutation, convert_block, inverse_permutation, shell_permutation
from nextham.basis.orbitals import Basis, BasisError, ElementBasis
from nextham.basis.rotations import (atom_rotation, pauli_matrices, random_orthogonal, real_spherical_harmonics,
                                     su2_from_rotation, wigner_D)


def test_basis_from_spec_offsets_and_json():
    el = ElementBasis.from_string("Si", "2s2p1d")
    assert el.ls == (0, 0, 1, 1, 2)
    assert el.norb == 13
    assert el.shell_offsets.tolist() == [0, 1, 2, 5, 8, 13]
    assert el.orbital_m.tolist()[:8] == [0, 0, -1, 0, 1, -1, 0, 1]
    assert el.spec() == "2s2p1d"
    basis = Basis.from_specs({"Si": "2s2p1d", "O": [0, 1]})
    assert basis.atom_offsets([14, 8, 14]).tolist() == [0, 13, 17, 30]
    assert Basis.from_json(basis.to_json()) == basis


def test_basis_errors_are_clear():
    with pytest.raises(BasisError, match="unknown element 'Xx'"):
        ElementBasis.from_string("Xx", "1s")
    with pytest.raises(BasisError, match="cannot parse basis spec"):
        ElementBasis.from_string("Si", "2s2q")
    with pytest.raises(BasisError, match="has no orbital basis"):
        Basis.from_specs({"Si": "1s"})["Ge"]
    with pytest.raises(BasisError, match="inconsistent bases"):
        Basis.from_specs({"Si": "1s"}).merged(Basis.from_specs({"Si": "1s1p"}))


@pytest.mark.parametrize("l, idx", [(1, [2, 0, 1]), (2, [4, 2, 0, 1, 3]), (3, [6, 4, 2, 0, 1, 3, 5])])
def test_abacus_table(l, idx):
    i, s = shell_permutation("abacus", l)
    assert i.tolist() == idx
    assert s.tolist() == [(-1.0) ** abs(m) for m in range(-l, l + 1)]


@pytest.mark.parametrize("l, idx", [(1, [1, 2, 0]), (2, [2, 4, 0, 3, 1]), (3, [6, 4, 2, 0, 1, 3, 5])])
def test_openmx_table(l, idx):
    i, s = shell_permutation("openmx", l)
    assert i.tolist() == idx and np.all(s == 1)


def test_openmx_table_matches_harmonics():
    """OpenMX p = (x, y, z) and d = (z^2, x^2-y^2, xy, xz, yz): permuting real harmonics evaluated in
    OpenMX's order with the table gives nextham's order."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(20, 3))
    x, y, z = v.T
    r2 = (v**2).sum(1)
    openmx_p = np.stack([x, y, z], 1)
    openmx_d = np.stack([(3 * z * z - r2) / (2 * np.sqrt(3)), (x * x - y * y) / 2, x * y, x * z, y * z], 1)
    for l, old in ((1, openmx_p), (2, openmx_d)):
        idx, sign = shell_permutation("openmx", l)
        new = old[:, idx] * sign
        ref = real_spherical_harmonics(l, v) * np.linalg.norm(v, axis=1)[:, None] ** l
        ratio = new / ref
        assert np.allclose(ratio, ratio[0, 0])


def test_atom_permutation_round_trip():
    el = ElementBasis.from_string("Fe", "2s2p2d1f")
    idx, sign = atom_permutation("abacus", el)
    inv = inverse_permutation(idx, sign)
    rng = np.random.default_rng(0)
    B = rng.normal(size=(el.norb, el.norb))
    there = convert_block(B, (idx, sign), (idx, sign))
    back = convert_block(there, inv, inv)
    assert np.array_equal(back, B)


def test_real_harmonics_table():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(10, 3))
    x, y, z = v.T
    r = np.linalg.norm(v, axis=1)
    Y1 = real_spherical_harmonics(1, v) * r[:, None]
    assert np.allclose(Y1 / np.sqrt(3 / (4 * np.pi)), np.stack([y, z, x], 1))
    Y2 = real_spherical_harmonics(2, v) * r[:, None] ** 2
    c = np.sqrt(15 / (4 * np.pi))
    ref = c * np.stack([x * y, y * z, (3 * z * z - r * r) / (2 * np.sqrt(3)), x * z, (x * x - y * y) / 2], 1)
    assert np.allclose(Y2, ref)


@pytest.mark.parametrize("l", range(0, 6))
def test_wigner_D_is_a_representation(l):
    rng = np.random.default_rng(l)
    Q1, Q2 = random_orthogonal(rng), random_orthogonal(rng)
    D1, D2, D12 = wigner_D(l, Q1), wigner_D(l, Q2), wigner_D(l, Q1 @ Q2)
    assert np.allclose(D1 @ D1.T, np.eye(2 * l + 1), atol=1e-12)
    assert np.allclose(D12, D1 @ D2, atol=1e-12)
    assert np.allclose(wigner_D(l, -np.eye(3)), (-1) ** l * np.eye(2 * l + 1), atol=1e-12)


def test_su2_rotates_pauli_vector():
    rng = np.random.default_rng(3)
    sigma = pauli_matrices()
    for _ in range(5):
        Q = random_orthogonal(rng)
        U = su2_from_rotation(Q)
        Qp = Q * np.linalg.det(Q)
        assert np.allclose(U @ U.conj().T, np.eye(2))
        for a in range(3):
            assert np.allclose(U @ sigma[a] @ U.conj().T, np.einsum("b,bij->ij", Qp[:, a], sigma), atol=1e-13)


def test_atom_rotation_spin_major():
    rng = np.random.default_rng(4)
    Q = random_orthogonal(rng)
    R = atom_rotation((0, 1), Q, spinful=True)
    assert R.shape == (8, 8)
    assert np.allclose(R[:4, :4], su2_from_rotation(Q)[0, 0] * atom_rotation((0, 1), Q))
