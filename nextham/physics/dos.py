"""Density of states with Gaussian smearing, and the Fermi level from the electron count."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import erfc


def gaussian_dos(eigenvalues: np.ndarray, energies: np.ndarray, sigma: float = 0.05,
                 weights: np.ndarray | None = None, spin_degeneracy: float = 2.0) -> np.ndarray:
    """DOS (states/eV per cell) on the grid ``energies`` (eV).

    ``eigenvalues`` (n_k, n_bands) eV (NaN ignored); k-point ``weights`` sum to 1 (uniform default);
    ``spin_degeneracy`` 2 for spinless Hamiltonians, 1 for spinful (SOC) ones.
    """
    eps = np.asarray(eigenvalues, dtype=np.float64)
    w = np.full(len(eps), 1.0 / len(eps)) if weights is None else np.asarray(weights, dtype=np.float64)
    valid = ~np.isnan(eps)
    e = eps[valid]
    wk = np.broadcast_to(w[:, None], eps.shape)[valid]
    out = np.zeros(len(energies))
    chunk = max(1, int(2e7 // max(len(energies), 1)))
    for s in range(0, len(e), chunk):
        d = (energies[None, :] - e[s:s + chunk, None]) / sigma
        out += (wk[s:s + chunk, None] * np.exp(-0.5 * d * d)).sum(axis=0)
    return spin_degeneracy * out / (sigma * np.sqrt(2 * np.pi))


def electron_count(eigenvalues: np.ndarray, fermi: float, sigma: float = 0.01, weights: np.ndarray | None = None,
                   spin_degeneracy: float = 2.0) -> float:
    """Electrons below ``fermi`` with Gaussian occupations ``erfc((eps - E_F)/(sqrt2 sigma))/2``."""
    eps = np.asarray(eigenvalues, dtype=np.float64)
    w = np.full(len(eps), 1.0 / len(eps)) if weights is None else np.asarray(weights)
    occ = 0.5 * erfc((eps - fermi) / (np.sqrt(2) * sigma))
    return float(spin_degeneracy * np.nansum(w[:, None] * occ))


def fermi_level(eigenvalues: np.ndarray, n_electrons: float, sigma: float = 0.01, weights: np.ndarray | None = None,
                spin_degeneracy: float = 2.0) -> float:
    """Fermi level (eV) such that the Gaussian-smeared occupation holds ``n_electrons``.

    For an insulator the result lies in the gap (mid-gap for small ``sigma``).
    """
    eps = np.asarray(eigenvalues, dtype=np.float64)
    n_states = spin_degeneracy * np.sum(~np.isnan(eps[0]))
    if not 0 <= n_electrons <= n_states:
        raise ValueError(f"{n_electrons} electrons do not fit in {n_states:g} states")
    lo, hi = np.nanmin(eps) - 10 * sigma - 1.0, np.nanmax(eps) + 10 * sigma + 1.0
    f = lambda mu: electron_count(eps, mu, sigma, weights, spin_degeneracy) - n_electrons  # noqa: E731
    return float(brentq(f, lo, hi, xtol=1e-12))
