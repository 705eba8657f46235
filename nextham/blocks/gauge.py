"""The energy gauge of a Hamiltonian, on numpy arrays (the torch twin is :mod:`nextham.losses.gauge`).

``H`` and ``H + mu S`` describe the same physics: every eigenvalue of ``(H + mu S, S)`` is that of
``(H, S)`` plus ``mu`` (docs/conventions.md). Comparisons of two Hamiltonians therefore first align
the gauge:

* least squares (``mode="lsq"``): ``mu* = Re sum (pred - ref) conj(S) / sum |S|^2``, the minimiser of
  ``sum |pred - ref - mu S|^2`` (used by every reported gauge MAE);
* L1 (``mode="median"``): the weighted median of ``Re d_k / s_k`` with weights ``|s_k|``, the minimiser
  of ``sum |Re d_k - mu s_k|`` (real ``s_k``; used by the L1 loss).

Arrays are packed in the layout of ``H``; for spinful records the overlap in that layout is
``S (x) I2`` (:meth:`nextham.blocks.record.StructureRecord.overlap_like_h`). Energies in eV.
"""

from __future__ import annotations

import numpy as np

GAUGE_MODES = ("lsq", "median")


def gauge_shift(pred: np.ndarray, ref: np.ndarray, overlap: np.ndarray, mode: str = "lsq") -> float:
    """The rigid shift ``mu`` (eV) that best aligns ``pred`` with ``ref + mu S`` (see module docstring)."""
    d = np.asarray(pred) - np.asarray(ref)
    s = np.asarray(overlap)
    if mode == "lsq":
        denom = float(np.sum(np.abs(s) ** 2))
        return float(np.real(np.sum(d * np.conj(s))) / denom) if denom > 0 else 0.0
    if mode == "median":
        s = s.real
        nz = s != 0
        if not nz.any():
            return 0.0
        x, w = d.real[nz] / s[nz], np.abs(s[nz])
        order = np.argsort(x)
        cw = np.cumsum(w[order])
        return float(x[order][min(int(np.searchsorted(cw, 0.5 * cw[-1])), len(x) - 1)])
    raise ValueError(f"unknown gauge mode {mode!r} (expected one of {GAUGE_MODES})")


def gauge_residual(pred: np.ndarray, ref: np.ndarray, overlap: np.ndarray,
                   mu: float | None = None) -> tuple[np.ndarray, float]:
    """``(pred - ref - mu S, mu)``, with the least-squares ``mu`` unless one is given."""
    if mu is None:
        mu = gauge_shift(pred, ref, overlap)
    return np.asarray(pred) - np.asarray(ref) - mu * np.asarray(overlap), float(mu)


def gauge_mae(pred: np.ndarray, ref: np.ndarray, overlap: np.ndarray,
              mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """``(gauge_mae_eV, plain_mae_eV, mu_eV)`` of ``pred`` against ``ref`` over the elements ``mask``
    selects (all by default); ``mu`` is the least-squares shift over those elements. Complex entries
    count ``|z|``."""
    if mask is not None:
        pred, ref, overlap = np.asarray(pred)[mask], np.asarray(ref)[mask], np.asarray(overlap)[mask]
    if np.size(pred) == 0:
        return 0.0, 0.0, 0.0
    r, mu = gauge_residual(pred, ref, overlap)
    return float(np.mean(np.abs(r))), float(np.mean(np.abs(np.asarray(pred) - np.asarray(ref)))), mu
