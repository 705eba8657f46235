"""Real-space loss on H(R) against the gauge-aligned target ``H + mu S``.

``H`` and ``H + mu S`` describe the same physics (docs/conventions.md), so each structure's target is
shifted by the ``mu`` that minimises the loss, solved in closed form every step:

* MSE: ``mu* = Re sum (H_pred - H) conj(S) / sum |S|^2`` (the least-squares shift of docs/conventions.md);
* L1 (on real and imaginary parts): ``sum_k |Re d_k - mu s_k| + |Im d_k|`` with ``d = H_pred - H`` is
  minimised by the *weighted median* of ``Re d_k / s_k`` with weights ``|s_k|`` (over ``s_k != 0``).

``mu`` is treated as a constant in the backward pass: it is a minimiser, so the derivative of the
loss with respect to it vanishes (exactly for MSE; for L1 as a subgradient), and detaching it gives the
same gradient as differentiating through it.

Reduction: mean over a structure's compared elements (real and imaginary parts summed per element for
L1, ``|d|^2`` for MSE), then mean over structures, so that a distributed run with equal per-rank
batches averages to exactly the loss of the whole global batch.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .constant_part import ConstantPart, constant_penalty, union_weighted_median
from .gauge import SHIFT_MODES, gauge_shift

LOSS_KINDS = ("l1", "mse")


def optimal_mu(diff: torch.Tensor, overlap: torch.Tensor, kind: str = "l1", shift: str = "auto") -> torch.Tensor:
    """Closed-form shift ``mu`` (detached scalar) of ``diff = H_pred - H`` against ``overlap`` (same layout).

    ``shift``: "auto" (the exact minimiser of the ``kind`` loss: median for L1, least squares for MSE),
    "lsq", "median" or "none" (:func:`nextham.losses.gauge.gauge_shift`).
    """
    if shift not in SHIFT_MODES:
        raise ValueError(f"unknown shift mode {shift!r} (expected one of {SHIFT_MODES})")
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r} (expected one of {LOSS_KINDS})")
    mode = {"l1": "median", "mse": "lsq"}[kind] if shift == "auto" else shift
    return gauge_shift(diff, overlap, mode)


def elementwise(diff: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-element penalty: ``|Re| + |Im|`` (L1) or ``|d|^2`` (MSE)."""
    if kind == "l1":
        return diff.real.abs() + diff.imag.abs() if diff.is_complex() else diff.abs()
    if kind == "mse":
        return diff.real ** 2 + diff.imag ** 2 if diff.is_complex() else diff ** 2
    raise ValueError(f"unknown loss kind {kind!r} (expected one of {LOSS_KINDS})")


def real_space_loss(pred: torch.Tensor, target: torch.Tensor, overlap: torch.Tensor,
                    segments: Sequence[int] | torch.Tensor, kind: str = "l1", shift: str = "auto",
                    mask: torch.Tensor | None = None,
                    constant_parts: Sequence[ConstantPart | None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauge-aligned real-space loss of a batch.

    Parameters
    ----------
    pred, target : packed ``H`` of all structures, concatenated (real, or complex spin-major).
    overlap : packed overlap in the same layout (``S (x) I2`` for spinful; see
        :func:`nextham.losses.layout.overlap_like_h`).
    segments : (B+1,) offsets of each structure in the packed arrays.
    mask : optional bool (nnz,) of compared elements.
    constant_parts : optional, per structure, the prepared elements the model cannot change
        (:mod:`nextham.losses.constant_part`; L1 with the median shift, real overlap, no ``mask``), or
        None: the same loss and ``mu`` from the changing elements alone.

    Returns
    -------
    loss : scalar, mean over structures of the per-structure mean penalty.
    mu : (B,) the shift of each structure (eV), detached.
    """
    seg = [int(x) for x in segments]
    losses, mus = [], []
    for n, (a, b) in enumerate(zip(seg[:-1], seg[1:])):
        p, t, s = pred[a:b], target[a:b], overlap[a:b]
        part = constant_parts[n] if constant_parts is not None else None
        if part is not None:
            if mask is not None or kind != "l1" or (shift not in ("auto", "median")):
                raise ValueError("constant parts apply to the L1 loss with the median shift and no mask")
            loss, mu = _l1_with_constant_part(p, t, s, part)
            losses.append(loss)
            mus.append(mu)
            continue
        if mask is not None:
            m = mask[a:b]
            p, t, s = p[m], t[m], s[m]
        d = p - t
        mu = optimal_mu(d, s, kind, shift)
        pen = elementwise(d - mu * s, kind)
        losses.append(pen.mean() if pen.numel() else pen.sum())
        mus.append(mu)
    return torch.stack(losses).mean(), torch.stack(mus)


def _l1_with_constant_part(pred: torch.Tensor, target: torch.Tensor, overlap: torch.Tensor,
                           part: ConstantPart) -> tuple[torch.Tensor, torch.Tensor]:
    """One structure's L1 loss and median ``mu`` computed on ``part.variable`` only, the constant elements
    entering through ``part`` (equal to the plain formulas up to rounding)."""
    v = part.variable
    d, s = pred[v] - target[v], overlap[v]
    re, s_re = (d.real if d.is_complex() else d).detach(), s.real if s.is_complex() else s
    nz = s_re != 0
    mu64 = union_weighted_median(part, re[nz] / s_re[nz], s_re[nz].abs())
    mu = mu64.to(re.dtype)
    total = elementwise(d - mu * s, "l1").sum() + constant_penalty(part, mu64).to(re.dtype)
    return total / part.size if part.size else total, mu
