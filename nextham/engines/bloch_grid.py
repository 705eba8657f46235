"""LCAO basis functions on a real-space grid as one sparse Bloch matrix per k-point.

An LCAO code evaluates each atom-centred orbital on the grid points inside its cutoff sphere, once
per periodic image that reaches the cell (one *window* per orbital shell and image). With the Bloch
phase of each image folded in, the orbitals of the cell at k-point k form one sparse matrix

    Phi_k[G, mu] = sum_{windows W of mu} A_W[G, mu] conj(phase_k(W)),   phase_k(W) = exp(2 pi i k.s_W),

(``G`` the flat grid index, ``s_W`` the image's lattice displacement, fractional ``k``). Two grid
products of the self-consistent loop follow from it exactly, in another order of the same sums:

* the pseudo density of one k-point, ``n(G) = sum_n f_n |sum_mu Phi_k[G, mu] C_n,mu|^2``: equal to
  ``sum_{mu nu} rho_mu,nu phi*_mu phi_nu`` with ``rho = C^H diag(f) C``, but it costs
  ``nnz(Phi) x n_bands`` instead of ``n_grid x n_active^2`` (the occupied bands are far fewer than
  the orbitals active at a grid point: ~20 against ~120 in an 8-atom Si cell);
* the potential matrix of one k-point, ``V_k = Phi_k^H diag(v dV) Phi_k`` (Hermitian, Hartree), as
  dense BLAS products over chunks of grid rows.

This module is numerics only (numpy/scipy, no DFT code): :mod:`nextham.engines.gpaw` reads GPAW's
windows into it and decides where it pays off (:meth:`BlochGridBasis.costs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

MATRIX_CACHE_BYTES = 256 * 2**20
"""Bloch matrices kept for reuse across SCF iterations, at most this many bytes in all (many k-points of
a larger cell: the rest are rebuilt from the window entries on each use, ~20 ms for 8 atoms)."""

ROW_CHUNK = 4096
"""Grid rows per dense chunk of the potential matrix (bounds the work memory to 4096 x n_orbitals)."""


@dataclass
class BlochGridBasis:
    """Orbital values on the grid, per window, with the Bloch matrices built from them on demand.

    rows, orbitals, values : (nnz,) flat grid index, orbital index mu and value of every window
        entry (images of one orbital are separate entries; they are summed with their phases).
    windows : (nnz,) window of each entry, the index into ``phase_qW``'s columns.
    phase_qW : (n_k, n_windows) complex, ``exp(2 pi i k_q . s_W)``.
    n_grid, n_orbitals : shape of every Bloch matrix.
    """

    rows: np.ndarray
    orbitals: np.ndarray
    values: np.ndarray
    windows: np.ndarray
    phase_qW: np.ndarray
    n_grid: int
    n_orbitals: int
    _pattern: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _matrices: dict[int, sp.csr_matrix] = field(default_factory=dict, repr=False)

    def _csr_pattern(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inverse, indices, indptr): entry -> stored element of the coalesced CSR pattern."""
        if self._pattern is None:
            key = self.rows.astype(np.int64) * self.n_orbitals + self.orbitals
            unique, inverse = np.unique(key, return_inverse=True)
            del key
            row, col = np.divmod(unique, self.n_orbitals)
            indptr = np.searchsorted(row, np.arange(self.n_grid + 1)).astype(np.int64)
            self._pattern = (inverse.ravel().astype(np.int32 if len(unique) < 2**31 else np.int64),
                             col.astype(np.int32), indptr)
        return self._pattern

    def matrix(self, q: int) -> sp.csr_matrix:
        """``Phi_k`` of k-point ``q`` (complex CSR, n_grid x n_orbitals), cached up to
        :data:`MATRIX_CACHE_BYTES` in all."""
        if q in self._matrices:
            return self._matrices[q]
        inverse, indices, indptr = self._csr_pattern()
        weights = self.values * np.conj(self.phase_qW[q][self.windows])
        n = len(indices)
        data = (np.bincount(inverse, weights=weights.real, minlength=n)
                + 1j * np.bincount(inverse, weights=weights.imag, minlength=n))
        Phi = sp.csr_matrix((data, indices, indptr), shape=(self.n_grid, self.n_orbitals))
        cached = sum(m.data.nbytes + m.indices.nbytes for m in self._matrices.values())
        if cached + Phi.data.nbytes + Phi.indices.nbytes <= MATRIX_CACHE_BYTES:
            self._matrices[q] = Phi
        return Phi

    def density(self, q: int, C_nM: np.ndarray, f_n: np.ndarray) -> np.ndarray:
        """Pseudo density (n_grid,) of k-point ``q``: ``sum_n f_n |Phi_k C_n|^2``.

        C_nM : (n_bands, n_orbitals) LCAO coefficients; f_n : (n_bands,) occupation weights
        (k-point weight and spin degeneracy included). Units: those of |phi|^2 f (GPAW: Bohr^-3).
        """
        psi_Gn = self.matrix(q) @ np.ascontiguousarray(C_nM.T)
        return (psi_Gn.real ** 2 + psi_Gn.imag ** 2) @ f_n

    def potential_matrix(self, q: int, v_G: np.ndarray, dv: float) -> np.ndarray:
        """``V_k = Phi_k^H diag(v dv) Phi_k`` (n_orbitals, n_orbitals), Hermitian, complex.

        v_G : (n_grid,) potential on the grid (flat, the grid's C order); dv : grid volume element.
        """
        Phi = self.matrix(q)
        V = np.zeros((self.n_orbitals, self.n_orbitals), complex)
        for start in range(0, self.n_grid, ROW_CHUNK):
            block = Phi[start:start + ROW_CHUNK].toarray()
            V += block.conj().T @ (block * (v_G[start:start + ROW_CHUNK, None] * dv))
        return V

    def costs(self, n_bands: int, n_kpoints: int) -> dict[str, float]:
        """Operation counts (multiply-adds) per SCF iteration, this module against GPAW's loops.

        GPAW's density and potential loops visit every pair of windows active at a grid point
        (``sum_G n_active(G)^2``; the density once per k-point, the potential once for all
        displacements); here the density costs ``nnz(Phi) x n_bands`` per k-point and the
        potential ``n_grid x n_orbitals^2`` per k-point (dense, complex: x4).
        """
        active = np.bincount(self.rows, minlength=self.n_grid).astype(float)
        pairs = float(active @ active)
        nnz = float(len(self._csr_pattern()[1]))
        return {"density_gpaw": n_kpoints * pairs, "density_bloch": n_kpoints * 4.0 * nnz * n_bands,
                "potential_gpaw": pairs / 2, "potential_bloch": n_kpoints * 4.0 * self.n_grid * self.n_orbitals ** 2}
