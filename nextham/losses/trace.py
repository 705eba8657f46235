"""Trace loss for TraceGrad and its adaptive weighting.

The model's trace head predicts one invariant per shell-pair block, supervised by
``T = tr(dH dH^dagger)`` of the target correction (summed over spin blocks); the model computes both
(``ModelOutput.trace_pred`` / ``.trace_target``). As in the reference implementation the trace term is
rescaled every step so that it contributes a fixed fraction ``w`` of the objective::

    total = (1 - w) * L_H + w * (L_H / L_T)|detached * L_T

so its gradient scale follows the Hamiltonian loss whatever the magnitude of ``T`` (default w = 0.2).
"""

from __future__ import annotations

import torch

from .real_space import elementwise


def trace_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean penalty between predicted and target traces (target detached)."""
    if pred.shape != target.shape:
        raise ValueError(f"trace prediction has shape {tuple(pred.shape)}, target {tuple(target.shape)}")
    return elementwise(pred - target.detach(), kind).mean()


def combine_with_trace(main: torch.Tensor, trace: torch.Tensor, weight: float = 0.2,
                       ratio: torch.Tensor | None = None) -> torch.Tensor:
    """``(1 - w) main + w * ratio * trace`` with ``ratio = main / trace`` (detached) unless given.

    Pass ``ratio`` computed from values averaged over all ranks to keep distributed runs identical to a
    single process.
    """
    if ratio is None:
        ratio = main.detach() / trace.detach().clamp_min(torch.finfo(trace.dtype).tiny)
    return (1.0 - weight) * main + weight * ratio * trace
