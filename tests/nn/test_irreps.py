"""Block <-> irreps: frame conventions against e3nn, exact round trips, equivariance of the coefficients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from nextham.basis.irreps import (SlotLayout, block_to_irreps, e3nn_rotation, irreps_to_block, pair_irreps,
                                  to_e3nn_frame, wigner_3j)
from nextham.basis.rotations import angular_momentum_matrices, atom_rotation, random_orthogonal, real_spherical_harmonics, wigner_D
from nextham.graph import build_graph, collate
from nextham.nn.readout import BlockCodec
from nextham.testing.equivariance import example_record


@pytest.mark.parametrize("improper", [False, True])
def test_e3nn_wigner_matches_nextham(improper):
    rng = np.random.default_rng(3)
    for _ in range(3):
        Q = random_orthogonal(rng, improper=improper)
        for l in range(6):
            De = o3.Irrep(l, (-1) ** l).D_from_matrix(torch.tensor(e3nn_rotation(Q))).numpy()
            np.testing.assert_allclose(De, wigner_D(l, Q), atol=1e-12)


def test_e3nn_spherical_harmonics_match_nextham_table():
    v = np.random.default_rng(0).normal(size=(20, 3))
    for l in range(6):
        a = o3.spherical_harmonics(l, torch.tensor(to_e3nn_frame(v)), normalize=True, normalization="integral")
        np.testing.assert_allclose(a.numpy(), real_spherical_harmonics(l, v), atol=1e-12)


def test_clebsch_gordan_invariant_in_nextham_basis():
    rng = np.random.default_rng(4)
    Q = random_orthogonal(rng, improper=True)
    for l1 in range(4):
        for l2 in range(4):
            for L in range(abs(l1 - l2), l1 + l2 + 1):
                C = wigner_3j(l1, l2, L)
                # parity (-1)^(l1+l2) of the output irrep makes C invariant also under improper Q
                DL = wigner_D(L, Q) * (-1) ** (L + l1 + l2)
                Cr = np.einsum("ia,jb,kc,abc->ijk", wigner_D(l1, Q), wigner_D(l2, Q), DL, C)
                np.testing.assert_allclose(Cr, C, atol=1e-12)


@pytest.mark.parametrize("spinful", [False, True])
def test_pair_round_trip_and_equivariance(spinful):
    rng = np.random.default_rng(5)
    Q = random_orthogonal(rng)
    for l1 in range(4):  # s, p, d, f
        for l2 in range(4):
            pair = pair_irreps(l1, l2, spinful)
            np.testing.assert_allclose(pair.matrix.T @ pair.matrix, np.eye(pair.dim), atol=1e-12)
            assert pair.dim == (8 if spinful else 1) * (2 * l1 + 1) * (2 * l2 + 1)
            assert all(p == (-1) ** (l1 + l2) for _, p in pair.irreps)
            shape = (5,) + pair.block_shape
            B = rng.normal(size=shape) + (1j * rng.normal(size=shape) if spinful else 0)
            c = block_to_irreps(B, l1, l2, spinful)
            np.testing.assert_allclose(irreps_to_block(c, l1, l2, spinful), B, atol=1e-13)
            np.testing.assert_allclose(np.sum(c ** 2, -1), np.sum(np.abs(B) ** 2, axis=(-2, -1)), rtol=1e-12)
            # torch path equals numpy path
            ct = block_to_irreps(torch.as_tensor(B), l1, l2, spinful)
            np.testing.assert_allclose(ct.numpy(), c, atol=1e-13)
            # coefficients rotate with e3nn's D of the irreps
            A1 = atom_rotation([l1], Q, spinful)
            A2 = atom_rotation([l2], Q, spinful)
            Br = A1 @ B @ A2.conj().T
            D = o3.Irreps(pair.irreps_string).D_from_matrix(torch.tensor(e3nn_rotation(Q))).numpy()
            np.testing.assert_allclose(block_to_irreps(Br, l1, l2, spinful), c @ D.T, atol=1e-12)


@pytest.mark.parametrize("spinful", [False, True])
def test_codec_round_trip_mixed_bases_batch(spinful):
    recs = [example_record("gaas", spinful, seed=2), example_record("si", spinful, seed=3)]
    basis = recs[0].basis.merged(recs[1].basis)
    layout = SlotLayout.from_basis(basis, spinful)
    assert layout.n_zeta == {0: 2, 1: 2, 2: 2, 3: 1}
    batch = collate([build_graph(r, 4.0, output_radius=np.inf) for r in recs])  # every block an output
    codec = BlockCodec(layout)
    feats = codec.encode(batch, batch.h0, batch.record_index.shape[1], torch.float64)
    assert feats.shape == (batch.record_index.shape[1], layout.dim)
    back = codec.decode(batch, feats)
    assert back.dtype == batch.h0.dtype
    assert torch.allclose(back, batch.h0, atol=1e-12, rtol=0)
    # padding: Si edges have no f slots -> those columns stay zero
    si_edges = batch.record_batch == 1
    f_cols = codec.columns((3, 3), type(next(iter(batch.pairs.values())))(
        torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), None))
    assert torch.all(feats[si_edges][:, f_cols[0]] == 0)
    # per-pair sums = Frobenius norms of the sub-blocks
    sums = codec.pair_sums(batch, batch.h0)
    assert torch.allclose(sums.sum(), batch.h0.abs().pow(2).sum())


def test_angular_momentum_matrices_generate_the_wigner_matrices():
    """From e3nn's so3_generators: D^l(R_a(theta)) = exp(-i theta L_a), [L_x, L_y] = i L_z, L^2 = l(l+1)."""
    from scipy.linalg import expm
    from scipy.spatial.transform import Rotation

    for l in range(5):
        L = angular_momentum_matrices(l)
        assert L.shape == (3, 2 * l + 1, 2 * l + 1)
        np.testing.assert_allclose(L, L.conj().transpose(0, 2, 1), atol=0)
        np.testing.assert_allclose(L[0] @ L[1] - L[1] @ L[0], 1j * L[2], atol=1e-13)
        np.testing.assert_allclose(np.einsum("aij,ajk->ik", L, L), l * (l + 1) * np.eye(2 * l + 1), atol=1e-13)
        for a in range(3):
            Q = Rotation.from_rotvec(0.7 * np.eye(3)[a]).as_matrix()
            np.testing.assert_allclose(expm(-0.7j * L[a]), wigner_D(l, Q), atol=1e-13)
    # p shell: L_z mixes p_x and p_y (nextham's m = -1, 0, 1 are y, z, x)
    np.testing.assert_allclose(angular_momentum_matrices(1)[2], [[0, 0, 1j], [0, 0, 0], [-1j, 0, 0]], atol=1e-15)
