"""Rotation matrices of real spherical harmonics (Wigner D) and of spin (SU(2)).

Real harmonics follow docs/conventions.md: ``m = -l..l``, no Condon-Shortley phase, so that
``Y_1 ∝ (y, z, x)`` and ``Y_2 ∝ (xy, yz, 3z^2-r^2, xz, x^2-y^2)``. The Wigner matrix ``D^l(Q)`` of a
3x3 orthogonal ``Q`` (proper or improper) is defined by ``Y_l(Q r) = D^l(Q) Y_l(r)``; an improper
``Q`` gives the parity factor ``(-1)^l`` automatically. Orbitals ``phi_lm(r - tau)`` of a rotated
structure then satisfy ``B' = D^l1(Q) B D^l2(Q)^T`` for a spinless (l1, l2) block.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from math import factorial

from scipy.special import lpmv


def real_spherical_harmonics(l: int, vectors: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics of the nextham table.

    ``vectors`` (..., 3) Cartesian (need not be normalised); returns (..., 2l+1) ordered m = -l..l.
    """
    v = np.asarray(vectors, dtype=np.float64)
    r = np.linalg.norm(v, axis=-1)
    cos_t = np.clip(v[..., 2] / np.where(r > 0, r, 1.0), -1.0, 1.0)
    phi = np.arctan2(v[..., 1], v[..., 0])
    out = np.empty(v.shape[:-1] + (2 * l + 1,))
    for m in range(-l, l + 1):
        am = abs(m)
        norm = np.sqrt((2 * l + 1) / (4 * np.pi) * factorial(l - am) / factorial(l + am))
        # scipy's lpmv includes the Condon-Shortley phase (-1)^m: remove it.
        p = (-1) ** am * lpmv(am, l, cos_t)
        if m == 0:
            out[..., l] = norm * p
        elif m > 0:
            out[..., l + m] = np.sqrt(2) * norm * p * np.cos(am * phi)
        else:
            out[..., l + m] = np.sqrt(2) * norm * p * np.sin(am * phi)
    return out


@lru_cache(maxsize=None)
def _sample_points(l: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample directions and the pseudo-inverse of their harmonics (cached per l)."""
    rng = np.random.default_rng(1234 + l)
    pts = rng.normal(size=(4 * l + 8, 3))
    return pts, np.linalg.pinv(real_spherical_harmonics(l, pts))


def wigner_D(l: int, Q: np.ndarray) -> np.ndarray:
    """Real Wigner matrix ``D^l(Q)``, shape (2l+1, 2l+1), for an orthogonal 3x3 ``Q`` (det ±1).

    Solved exactly (least squares on ``4l+8`` sample directions) from ``Y(Q r) = D Y(r)``.
    """
    Q = np.asarray(Q, dtype=np.float64)
    if not np.allclose(Q @ Q.T, np.eye(3), atol=1e-10):
        raise ValueError("wigner_D needs an orthogonal 3x3 matrix")
    pts, Y_pinv = _sample_points(l)
    return (Y_pinv @ real_spherical_harmonics(l, pts @ Q.T)).T


def su2_from_rotation(Q: np.ndarray) -> np.ndarray:
    """SU(2) matrix ``U`` (2x2 complex) of the proper part of ``Q`` (one of the two signs).

    Satisfies ``U sigma_a U^dagger = sum_b Q'_{ba} sigma_b`` with ``Q' = det(Q) Q`` (spin is an axial
    vector: inversion leaves it unchanged). Basis order (up, down).
    """
    from scipy.spatial.transform import Rotation

    Q = np.asarray(Q, dtype=np.float64)
    proper = Q * np.sign(np.linalg.det(Q))
    rotvec = Rotation.from_matrix(proper).as_rotvec()
    angle = np.linalg.norm(rotvec)
    if angle < 1e-14:
        return np.eye(2, dtype=np.complex128)
    n = rotvec / angle
    sigma = pauli_matrices()
    return np.cos(angle / 2) * np.eye(2) - 1j * np.sin(angle / 2) * np.einsum("a,aij->ij", n, sigma)


@lru_cache(maxsize=None)
def angular_momentum_matrices(l: int) -> np.ndarray:
    """(3, 2l+1, 2l+1) complex Hermitian ``L_x, L_y, L_z`` (units of hbar) in nextham's real harmonics.

    ``D^l(R_a(theta)) = exp(-i theta L_a)`` for a rotation by ``theta`` about nextham's axis ``a``. Built from
    e3nn's real generators ``X_b = o3.so3_generators(l)`` (``D = exp(theta X_b)`` about e3nn's axis ``b``):
    nextham's axis ``a`` is e3nn's ``P e_a`` (:data:`nextham.basis.irreps.PERMUTATION`), so
    ``L_a = i sum_b P[b, a] X_b``. Cached; do not modify the returned array.
    """
    import torch
    from e3nn import o3

    from .irreps import PERMUTATION

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds the generators in the default dtype
    try:
        X = o3.so3_generators(l).numpy()
    finally:
        torch.set_default_dtype(old)
    return 1j * np.einsum("ba,bij->aij", PERMUTATION, X)


def pauli_matrices() -> np.ndarray:
    """(3, 2, 2) complex: sigma_x, sigma_y, sigma_z."""
    return np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


def atom_rotation(ls: tuple[int, ...] | list[int], Q: np.ndarray, spinful: bool = False) -> np.ndarray:
    """Block-diagonal rotation of all orbitals of one atom (shells ``ls``); spin-major ``U ⊗ D`` if spinful."""
    from scipy.linalg import block_diag

    D = block_diag(*[wigner_D(l, Q) for l in ls])
    return np.kron(su2_from_rotation(Q), D) if spinful else D


def random_orthogonal(rng: np.random.Generator, improper: bool | None = None) -> np.ndarray:
    """Random 3x3 orthogonal matrix (Haar); ``improper`` forces det = -1 (True) or +1 (False)."""
    from scipy.stats import special_ortho_group

    Q = special_ortho_group.rvs(3, random_state=rng)
    if improper is None:
        improper = bool(rng.integers(2))
    return -Q if improper else Q
