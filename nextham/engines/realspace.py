"""Real-space matrices ``M(R)`` from Bloch matrices ``M(k)`` on a full Γ-centred k-mesh.

An LCAO code gives ``M(k) = sum_R exp(+2 pi i k.R) M(R)`` (docs/conventions.md, orbital j in cell R).
On an ``N1 x N2 x N3`` Γ-centred mesh the discrete inverse transform

    M~(R mod N) = 1/N_k sum_k exp(-2 pi i k.R) M(k)

returns the sum of ``M(R + N t)`` over all Born-von Karman (BvK) images ``t``. When every atom
pair's blocks vanish beyond a distance ``rcut_i + rcut_j`` and the mesh is large enough that all
translations R of a pair within that distance are distinct modulo N (:func:`bvk_mesh`), each
residue class holds at most one non-zero image and ``M(R)`` is recovered exactly: the block of pair
(i, j) at residue r goes to the one translation R = r (mod N) of that pair within the cutoff
(:func:`pair_support`), if there is one. Everything else must be zero; :func:`bloch_to_realspace`
reports the largest value it drops (aliasing check).

Pure numpy, vectorized over k, R and orbitals; no engine imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.neighborlist import primitive_neighbor_list


@dataclass(frozen=True)
class PairSupport:
    """Atom pairs (i, j, R) within ``radius_i + radius_j``: edge_index (E, 2), edge_R (E, 3)."""

    edge_index: np.ndarray
    edge_R: np.ndarray
    distances: np.ndarray


def pair_support(cell: np.ndarray, positions: np.ndarray, radii: np.ndarray) -> PairSupport:
    """All (i, j, R) with ``|pos_j + R @ cell - pos_i| < radii[i] + radii[j]`` (Å), self-loops included."""
    radii = np.asarray(radii, dtype=np.float64)
    i, j, S, d = primitive_neighbor_list("ijSd", np.ones(3, bool), np.asarray(cell, float),
                                         np.asarray(positions, float), radii, self_interaction=True)
    return PairSupport(np.stack([i, j], 1).astype(np.int64), S.astype(np.int64), d)


def bvk_mesh(support: PairSupport, minimum: tuple[int, int, int] = (1, 1, 1)) -> tuple[int, int, int]:
    """Smallest Γ-centred mesh whose BvK supercell separates every pair's translations.

    For every pair (i, j) the translations R in ``support`` span at most ``N_c - 1`` along each
    lattice direction c, so no two of them are congruent modulo N.
    """
    n_atoms = int(support.edge_index.max()) + 1 if len(support.edge_index) else 1
    key = support.edge_index[:, 0] * n_atoms + support.edge_index[:, 1]
    mesh = []
    for c in range(3):
        Rc = support.edge_R[:, c]
        hi = np.full(n_atoms * n_atoms, np.iinfo(np.int64).min)
        lo = np.full(n_atoms * n_atoms, np.iinfo(np.int64).max)
        np.maximum.at(hi, key, Rc)
        np.minimum.at(lo, key, Rc)
        span = (hi - lo)[hi >= lo]
        mesh.append(max(int(span.max()) + 1 if span.size else 1, int(minimum[c])))
    return tuple(mesh)  # type: ignore[return-value]


def mesh_kpoints(mesh: tuple[int, int, int]) -> np.ndarray:
    """Γ-centred mesh in FFT order: k = m / N with m = 0..N-1 (fractional), shape (N1 N2 N3, 3)."""
    grids = np.meshgrid(*[np.arange(n) / n for n in mesh], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def mesh_index(kpts: np.ndarray, mesh: tuple[int, int, int]) -> np.ndarray:
    """Flat FFT-order index of each fractional k-point of a Γ-centred ``mesh`` (any periodic image)."""
    N = np.asarray(mesh)
    m = np.rint(np.asarray(kpts) * N).astype(np.int64)
    if np.abs(np.asarray(kpts) * N - m).max() > 1e-6:
        raise ValueError(f"k-points are not on the Γ-centred {tuple(mesh)} mesh")
    m %= N
    return (m[:, 0] * N[1] + m[:, 1]) * N[2] + m[:, 2]


@dataclass
class RealSpace:
    """Result of :func:`bloch_to_realspace`.

    matrices : name -> {R: dense whole-cell matrix}; only R with a kept pair appear, blocks of pairs
        not assigned to R are exactly zero.
    residual : name -> largest |value| dropped (blocks of residue classes without an image within the
        cutoff); a measure of aliasing / truncation.
    imag : name -> largest |Im M(R)| of a spinless matrix before taking the real part.
    """

    matrices: dict[str, dict[tuple[int, int, int], np.ndarray]]
    residual: dict[str, float]
    imag: dict[str, float]


def bloch_to_realspace(Mk: dict[str, np.ndarray], mesh: tuple[int, int, int], support: PairSupport,
                       atom_offsets: np.ndarray, spinful: dict[str, bool] | None = None,
                       real: dict[str, bool] | None = None) -> RealSpace:
    """Inverse Bloch transform of whole-cell matrices on a full Γ-centred mesh.

    Parameters
    ----------
    Mk : name -> (N1 N2 N3, f n, f n) complex, in FFT mesh order (:func:`mesh_kpoints`), f = 2 for
        spinful (spin-major) matrices.
    mesh : the Γ-centred mesh.
    support : the pairs to keep (each (i, j) has distinct R modulo ``mesh``).
    atom_offsets : (N + 1,) spinless orbital offsets.
    spinful : name -> matrix carries the spin index (spin-major, whole cell).
    real : name -> take the real part (spinless LCAO matrices of real orbitals are real).
    """
    spinful = spinful or {}
    real = real or {}
    N = np.asarray(mesh)
    nk = int(np.prod(N))
    n_atoms = len(atom_offsets) - 1
    norb = np.diff(atom_offsets)
    # residue class of each kept pair; check uniqueness
    res = support.edge_R % N
    flat = (res[:, 0] * N[1] + res[:, 1]) * N[2] + res[:, 2]
    i, j = support.edge_index.T
    key = (flat * n_atoms + i) * n_atoms + j
    if len(np.unique(key)) != len(key):
        raise ValueError(f"k-mesh {tuple(mesh)} too small: two translations of one atom pair alias")
    atom_mask = np.zeros((nk, n_atoms, n_atoms), dtype=bool)
    atom_mask[flat, i, j] = True
    unique_R, inverse = np.unique(support.edge_R, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)

    out: dict[str, dict[tuple[int, int, int], np.ndarray]] = {}
    residual: dict[str, float] = {}
    imag: dict[str, float] = {}
    for name, M in Mk.items():
        f = 2 if spinful.get(name, False) else 1
        if M.shape[0] != nk:
            raise ValueError(f"{name}: {M.shape[0]} k-points, mesh {tuple(mesh)} has {nk}")
        n = int(atom_offsets[-1])
        grid = M.reshape(*mesh, f * n, f * n)
        MR = np.fft.fftn(grid, axes=(0, 1, 2)).reshape(nk, f * n, f * n) / nk
        orb_mask = np.repeat(np.repeat(atom_mask, norb, axis=1), norb, axis=2)
        if f == 2:
            orb_mask = np.tile(orb_mask, (1, 2, 2))
        dropped = np.where(orb_mask, 0.0, MR)
        residual[name] = float(np.abs(dropped).max()) if dropped.size else 0.0
        MR = np.where(orb_mask, MR, 0.0)
        if real.get(name, False) and f == 1:
            imag[name] = float(np.abs(MR.imag).max())
            MR = MR.real.copy()
        # assemble {R: dense}: a residue may hold pairs from different R (different images per pair)
        mats: dict[tuple[int, int, int], np.ndarray] = {}
        for u, R in enumerate(unique_R):
            sel = inverse == u
            r0 = flat[sel][0]  # R fixes its residue class
            pm = np.zeros((n_atoms, n_atoms), dtype=bool)
            pm[i[sel], j[sel]] = True
            om = np.repeat(np.repeat(pm, norb, axis=0), norb, axis=1)
            if f == 2:
                om = np.tile(om, (2, 2))
            mats[tuple(int(x) for x in R)] = np.where(om, MR[r0], 0.0)
        out[name] = mats
    return RealSpace(out, residual, imag)
