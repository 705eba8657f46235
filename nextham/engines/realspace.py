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

from ..blocks.layout import RecordLayout, edge_columns, row_ids


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


# ---------------------------------------------------------------------------- direct real-space assembly
class EdgeLayout:
    """Packed block layout of an edge list (i, j, R) with ``norb[i] x norb[j]`` blocks (spinless).

    The direct real-space assembly writes two-centre blocks, gathers grid potential matrices and
    scatters three-centre (projector) products into flat arrays in this layout; the record is
    built from them without any k-points. Edge lookups and element coordinates are vectorized.
    """

    def __init__(self, edge_index: np.ndarray, edge_R: np.ndarray, norb: np.ndarray) -> None:
        norb = np.asarray(norb, dtype=np.int64)
        self.layout = RecordLayout(numbers=np.zeros(len(norb), np.int64), edge_index=edge_index, edge_R=edge_R,
                                   spinful=False, atom_norb=norb)  # the index arithmetic of records
        self.edge_index, self.edge_R, self.norb = self.layout.edge_index, self.layout.edge_R, norb
        self.n_atoms = len(norb)
        self.atom_offsets = self.layout.atom_offsets
        self.shape_i, self.shape_j = self.layout.block_shapes(1).T
        self.offsets = self.layout.block_offsets(1)
        if len(np.unique(row_ids(edge_columns(self.edge_index[:, 0], self.edge_index[:, 1], self.edge_R)))) \
                != self.n_edges:
            raise ValueError("edge list holds duplicate (i, j, R) entries")
        self.reverse = self.layout.reverse_edges

    @property
    def n_edges(self) -> int:
        return len(self.edge_index)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def find(self, i, j, R) -> np.ndarray:
        """Edge index of each (i, j, R), -1 where absent (vectorized)."""
        return self.layout.find_edges(i, j, R)

    def element_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(edge, row, col)`` of every packed element; row/col are whole-cell orbital indices."""
        c = self.layout.coordinates(1)
        return c.edge, c.row, c.col

    def gather_displacement_matrices(self, V_xMM: np.ndarray, sdisp_xc: np.ndarray) -> tuple[np.ndarray, float]:
        """Blocks of a grid potential matrix given per cell displacement, and the largest value dropped.

        ``V_xMM[x]`` (whole cell) with ``V(k) = herm(V_0 + 2 sum_{x>0} exp(-2 pi i k.s_x) V_x)``
        (GPAW's LCAO convention, ``s_x`` a half space of displacements): in real space
        ``V(R = -s_x) = V_x``, ``V(R = s_x) = V_x^T`` and ``V(0) = (V_0 + V_0^T) / 2``.
        """
        e, row, col = self.element_coords()
        sdisp = np.asarray(sdisp_xc, dtype=np.int64).reshape(-1, 3)
        if len(sdisp) == 0 or sdisp[0].any():
            raise ValueError("the first displacement must be zero")
        disp_keys = {tuple(s): x for x, s in enumerate(sdisp)}
        uR, inv = np.unique(self.edge_R, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        # per edge: the displacement holding R = -s_x (block V_x) or R = +s_x (block V_x^T); -1: none
        x_minus_edge = np.array([disp_keys.get(tuple(-r), -1) for r in uR], dtype=np.int64)[inv]
        x_plus_edge = np.array([disp_keys.get(tuple(r), -1) for r in uR], dtype=np.int64)[inv]
        x_minus, x_plus = x_minus_edge[e], x_plus_edge[e]
        zero = ~self.edge_R[e].any(axis=1)
        out = np.zeros(self.size, dtype=V_xMM.dtype)
        out[zero] = 0.5 * (V_xMM[0, row[zero], col[zero]] + V_xMM[0, col[zero], row[zero]].conj())
        sel = x_minus > 0
        out[sel] = V_xMM[x_minus[sel], row[sel], col[sel]]
        sel = (x_plus > 0) & ~zero
        out[sel] = V_xMM[x_plus[sel], col[sel], row[sel]].conj()
        # what the edges do not hold must vanish: largest |V| over uncovered atom pairs
        covered = np.zeros((len(sdisp), self.n_atoms, self.n_atoms), dtype=bool)
        i, j = self.edge_index.T
        ok = x_minus_edge >= 0
        covered[x_minus_edge[ok], i[ok], j[ok]] = True
        ok = x_plus_edge >= 0
        covered[x_plus_edge[ok], j[ok], i[ok]] = True
        starts = self.atom_offsets[:-1]
        atom_max = np.maximum.reduceat(np.maximum.reduceat(np.abs(V_xMM), starts, axis=1), starts, axis=2)
        residual = float(np.where(covered, 0.0, atom_max).max()) if V_xMM.size else 0.0
        return out, residual

    def spinful_from_components(self, h: np.ndarray, vx: np.ndarray, vy: np.ndarray,
                                vz: np.ndarray) -> np.ndarray:
        """Spin-major packed blocks ``[[h + vz, vx - i vy], [vx + i vy, h - vz]]`` (2n_i x 2n_j)."""
        c = self.layout.coordinates(1)
        e, m, n = c.edge, c.p, c.q
        ni, nj = self.shape_i[e], self.shape_j[e]
        off2 = 4 * self.offsets[e]
        out = np.zeros(4 * self.size, dtype=np.complex128)
        for s, t, val in ((0, 0, h + vz), (0, 1, vx - 1j * vy), (1, 0, vx + 1j * vy), (1, 1, h - vz)):
            out[off2 + (s * ni + m) * (2 * nj) + t * nj + n] = val
        return out


class ThreeCentreProducts:
    """Packed ``sum_a P_a^T X_a P_a`` over projector atoms a, for fixed projector overlaps.

    ``columns[a] = (P, atoms, cells)``: P (ni_a, K_a) the overlaps ``<p_i^a | phi_m^b(cell)>`` of
    atom a's projectors with every orbital column k in reach, ``atoms[k]``/``cells[k]`` that
    column's atom b and lattice cell R1 (columns grouped in runs of one (atom, cell)). Orbital k
    (atom b, cell R1) and l (atom c, cell R2) couple on edge (b, c, R2 - R1). The packed position
    of every product element is found once for all atoms (one edge lookup) and kept, so that each
    matrix X (PAW ``dO``, ``dH``, a SOC component) costs one batch of small products and one
    ``bincount``. Raises ValueError if a product falls outside the edge list.
    """

    def __init__(self, layout: EdgeLayout, columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.layout = layout
        self.atoms = sorted(columns)
        self.P = {a: columns[a][0] for a in self.atoms}
        queries, runs = [], []
        for a in self.atoms:
            _, atoms, cells = columns[a]
            K = len(atoms)
            starts = np.flatnonzero(np.r_[True, (atoms[1:] != atoms[:-1]) | np.any(cells[1:] != cells[:-1], axis=1)])
            run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, K]))
            b, R1 = atoms[starts], np.asarray(cells, dtype=np.int64)[starts]
            p, q = (x.ravel() for x in np.meshgrid(np.arange(len(starts)), np.arange(len(starts)), indexing="ij"))
            queries.append((b[p], b[q], R1[q] - R1[p]))
            runs.append((run, np.arange(K) - starts[run], len(starts)))
        if not queries:
            self.index = np.zeros(0, dtype=np.int64)
            return
        E = layout.find(*(np.concatenate(x) for x in zip(*queries)))
        if (E < 0).any():
            raise ValueError("three-centre term reaches a pair outside the edge list (support too small)")
        index, at = [], 0
        for run, local, n_runs in runs:
            E_a = E[at:at + n_runs * n_runs].reshape(n_runs, n_runs)
            at += n_runs * n_runs
            e_uv = E_a[run[:, None], run[None, :]]
            index.append((layout.offsets[e_uv] + local[:, None] * layout.shape_j[e_uv] + local[None, :]).ravel())
        self.index = np.concatenate(index)

    def __call__(self, X: dict[int, np.ndarray], dtype=np.float64) -> np.ndarray:
        """Packed ``sum_a P_a^T X[a] P_a`` (``X[a]`` (ni_a, ni_a); atoms without an entry in X add 0).

        The real and imaginary parts of X are multiplied and scattered separately, and only where
        they are non-zero: PAW ``dO``/``dH`` are real, the SOC components ``xi L`` purely imaginary
        (real harmonics), so each costs one real product and one ``bincount``.
        """
        size = self.layout.size
        out = np.zeros(size, dtype=np.result_type(dtype, *(np.asarray(x).dtype for x in X.values())))
        if not len(self.index):
            return out.astype(dtype, copy=False)
        for part, factor in ((np.real, 1.0), (np.imag, 1j)):
            blocks = {a: part(np.asarray(x)) for a, x in X.items()}
            if not any(b.any() for b in blocks.values()):
                continue
            values = np.concatenate([(self.P[a].T @ blocks[a] @ self.P[a]).ravel() if a in blocks
                                     else np.zeros(self.P[a].shape[1] ** 2) for a in self.atoms])
            summed = np.bincount(self.index, values, minlength=size)
            out += summed if factor == 1.0 else factor * summed
        return out.astype(dtype, copy=False)
