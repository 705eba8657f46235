"""ABACUS readers against ABACUS's own numbers on real outputs.

Fixtures (../shared/fixtures/abacus, deepmodeling/abacus-develop commit 729059f, LGPL-3.0):
``C_soc_nspin4`` (tests/integrate/207_NO_KP_OHS_SPIN4) and ``Si2_nspin1`` (207_NO_KP_OH2).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from nextham.basis.conventions import atom_permutation
from nextham.io.abacus import RYDBERG_EV, read_abacus
from io_helpers import bloch_dense, symmetry_error, symmetry_errors, symmetry_operations


def read_dense_upper(path) -> np.ndarray:
    """ABACUS ``data-<k>-H``: dimension, then the upper triangle row by row, complex ``(re,im)``."""
    toks = path.read_text().split()
    n = int(toks[0])
    vals = np.array([complex(*map(float, t.strip("()").split(","))) for t in toks[1:]])
    assert len(vals) == n * (n + 1) // 2
    M = np.zeros((n, n), complex)
    M[np.triu_indices(n)] = vals
    return M + M.conj().T - np.diag(np.diag(M))


def read_csr_independent(path) -> tuple[int, dict]:
    """Deliberately naive parser (no nextham code) of a legacy CSR file: {R: dense matrix}."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    k = 1 if lines[0].startswith("STEP") else 0
    dim = int(lines[k].split(":")[1])
    nR = int(lines[k + 1].split(":")[1])
    k += 2
    out = {}
    for _ in range(nR):
        *R, nnz = map(int, lines[k].split())
        k += 1
        M = np.zeros((dim, dim))
        if nnz:
            vals = [float(x) for x in lines[k].split()]
            cols = [int(x) for x in lines[k + 1].split()]
            ptr = [int(x) for x in lines[k + 2].split()]
            rows = np.repeat(np.arange(dim), np.diff(ptr))
            M[rows, cols] = vals
            k += 3
        out[tuple(R)] = M
    return dim, out


def test_c_soc_matches_abacus_dense_hk_sk(c_soc_dir, orbitals_dir):
    rec = read_abacus(c_soc_dir, orbital_dirs=[orbitals_dir])
    assert rec.spinful and rec.metadata["source"]["nspin"] == 4
    H_ab = read_dense_upper(c_soc_dir / "data-1-H")  # Ry, ABACUS order, spin interleaved
    S_ab = read_dense_upper(c_soc_dir / "data-1-S")
    n = rec.n_orbitals
    assert H_ab.shape == (2 * n, 2 * n)
    # ABACUS -> nextham: de-interleave spin, permute m, apply the (-1)^m sign, Ry -> eV
    idx, sign = atom_permutation("abacus", rec.basis["C"])
    H4 = H_ab.reshape(n, 2, n, 2).transpose(1, 0, 3, 2)[:, idx][:, :, :, idx] * np.outer(sign, sign)[None, :, None, :]
    H_ref = H4.transpose(0, 1, 2, 3).reshape(2 * n, 2 * n) * RYDBERG_EV
    S_ref = S_ab.reshape(n, 2, n, 2)[:, 0, :, 0][np.ix_(idx, idx)] * np.outer(sign, sign)
    for k in ([0, 0, 0], [0.5, 0, 0]):  # the single C atom has only R = 0: H(k) is k-independent
        Hk, Sk = bloch_dense(rec, "H", k), bloch_dense(rec, "S", k)
        assert np.abs(Hk - H_ref).max() < 2e-7  # eV; CSR holds 8 digits, data-1-H 10
        assert np.abs(Sk - S_ref).max() < 1e-12
    # the up-down overlap of ABACUS is zero and S is spin-diagonal
    assert np.abs(S_ab.reshape(n, 2, n, 2)[:, 0, :, 1]).max() == 0.0


def test_si2_eigenvalues_equal_raw_abacus_order(si2_dir, orbitals_dir):
    rec = read_abacus(si2_dir, orbital_dirs=[orbitals_dir])
    dim, H_raw = read_csr_independent(si2_dir / "data-HR-sparse_SPIN0.csr")
    _, S_raw = read_csr_independent(si2_dir / "data-SR-sparse_SPIN0.csr")
    assert dim == rec.n_orbitals == 26
    rng = np.random.default_rng(7)
    worst = 0.0
    for k in rng.uniform(-0.5, 0.5, size=(4, 3)):
        Hk_raw = sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in H_raw.items()) * RYDBERG_EV
        Sk_raw = sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in S_raw.items())
        ref = eigh(Hk_raw, Sk_raw, eigvals_only=True)
        ours = eigh(bloch_dense(rec, "H", k), bloch_dense(rec, "S", k), eigvals_only=True)
        worst = max(worst, np.abs(ours - ref).max())
    assert worst < 1e-9


def test_si2_record_shape_and_support(si2_dir, orbitals_dir):
    rec = read_abacus(si2_dir, orbital_dirs=[orbitals_dir]).validate(hermitian_tol=1e-6)
    assert rec.basis["Si"].spec() == "2s2p1d"
    assert rec.metadata["source"]["basis_source"] == "orbital files"
    np.testing.assert_allclose(np.abs(np.linalg.det(rec.cell)), 10.2**3 / 4 * 0.529177210903**3, rtol=1e-12)
    # the edge list is the union of the H and S supports: H reaches farther than S here
    n_R_H = len(read_csr_independent(si2_dir / "data-HR-sparse_SPIN0.csr")[1])
    assert len(np.unique(rec.edge_R, axis=0)) >= n_R_H


def test_si2_orbital_convention_by_symmetry(si2_dir, orbitals_dir):
    """Diamond Si (Oh, 48 operations): symmetry-related blocks map into each other with D^l (s, p, d)."""
    rec = read_abacus(si2_dir, orbital_dirs=[orbitals_dir])
    ops = symmetry_operations(rec)
    err_S, n_ops = symmetry_error(rec, "S", ops=ops)
    assert n_ops == 48
    assert err_S < 1e-8
    errs, _ = symmetry_errors(rec, "H", {"s": [0], "p": [1], "d": [2], "all": None}, ops=ops)
    assert max(errs.values()) < 1e-7, errs  # s-s, p-p, d-d sub-blocks separately, and everything



def test_symmetry_check_detects_a_wrong_table(si2_dir, orbitals_dir, monkeypatch):
    """Negative control: reading ABACUS data with the OpenMX table breaks the symmetry by O(1)."""
    import nextham.io.abacus as ab
    from nextham.io import assemble

    real = assemble.orbital_tables
    monkeypatch.setattr(ab, "orbital_tables", lambda numbers, basis, code: real(numbers, basis, "openmx"))
    rec = ab.read_abacus(si2_dir, orbital_dirs=[orbitals_dir])
    err, _ = symmetry_error(rec, "S", ls_filter=[1, 2])
    assert err > 1e-2


def test_c_nspin4_spin_blocks_and_spin_rotation(c_soc_dir, orbitals_dir):
    """Non-collinear C atom in a cubic box: spin-major de-interleave checked by symmetry with D ⊗ U(Q).

    The run is magnetised along z (uu != dd, ud = 0), so only operations keeping the z spin axis apply.
    """
    rec = read_abacus(c_soc_dir, orbital_dirs=[orbitals_dir])
    n = rec.n_orbitals
    H = rec.block("H", 0)
    assert np.abs(H[:n, n:]).max() == 0.0 and np.abs(H[n:, :n]).max() == 0.0
    ops = [op for op in symmetry_operations(rec) if np.isclose(np.linalg.det(op[0]) * op[0][2, 2], 1.0)]
    assert len(ops) == 8
    err, _ = symmetry_error(rec, "H", spin=True, ops=ops)
    assert err < 1e-10
    err_S, n_ops = symmetry_error(rec, "S")
    assert n_ops == 48 and err_S < 1e-10
