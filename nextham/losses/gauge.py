"""The energy gauge on torch tensors: the twin of :mod:`nextham.blocks.gauge` for training.

Same formulas (docs/conventions.md): the least-squares shift ``mu* = Re sum d conj(s) / sum |s|^2`` and
the L1 minimiser, the weighted median of ``Re d_k / s_k`` with weights ``|s_k|``, where
``d = pred - ref`` and ``s`` the overlap packed in the layout of ``H`` (``S (x) I2`` when spinful).
Shifts are returned detached: they are minimisers, so the loss's derivative with respect to them
vanishes. Energies in eV.
"""

from __future__ import annotations

import torch

SHIFT_MODES = ("auto", "lsq", "median", "none")


def weighted_median(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A minimiser of ``sum_k w_k |x_k - m|`` (w >= 0): the lower weighted median of ``values``."""
    if values.numel() == 0:
        return values.new_zeros(())
    order = torch.argsort(values)
    v, w = values[order], weights[order]
    cw = torch.cumsum(w, 0)
    half = 0.5 * cw[-1]
    idx = torch.searchsorted(cw, half.reshape(1)).clamp(max=v.numel() - 1)
    return v[idx[0]]


def gauge_shift(diff: torch.Tensor, overlap: torch.Tensor, mode: str = "lsq") -> torch.Tensor:
    """Detached scalar shift ``mu`` of ``diff = pred - ref`` against ``overlap`` (same layout).

    ``mode``: "lsq" (least squares, complex ``diff`` and ``overlap`` allowed), "median" (L1 minimiser on
    the real parts), "none" (0).
    """
    diff, overlap = diff.detach(), overlap.detach()
    if mode == "none":
        return overlap.real.new_zeros(()) if overlap.is_complex() else overlap.new_zeros(())
    if mode == "lsq":
        num = (diff * overlap.conj()).real.sum() if diff.is_complex() or overlap.is_complex() else (diff * overlap).sum()
        den = (overlap.abs() ** 2).sum()
        return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), den.new_zeros(()))
    if mode == "median":
        d = diff.real if diff.is_complex() else diff
        s = overlap.real if overlap.is_complex() else overlap
        nz = s != 0
        return weighted_median(d[nz] / s[nz], s[nz].abs())
    raise ValueError(f"unknown shift mode {mode!r} (expected one of {SHIFT_MODES})")


def gauge_mae(pred: torch.Tensor, ref: torch.Tensor, overlap: torch.Tensor) -> torch.Tensor:
    """Detached mean ``|pred - ref - mu S|`` (eV) with the least-squares ``mu``, in float64."""
    d = (pred - ref).detach()
    d = d.to(torch.complex128 if d.is_complex() else torch.float64)
    s = overlap.detach().to(d.dtype)
    return (d - gauge_shift(d, s, "lsq") * s).abs().mean()
