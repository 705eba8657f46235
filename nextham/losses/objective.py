"""The training objective: real-space + k-space (P, Q, PQ) + trace, on a batch of structures.

``total_H = lambda_R L_R + lambda_P L_P + lambda_Q L_Q + lambda_PQ L_PQ`` (reference weights 0.99955,
2e-4, 1e-4, 1.5e-4), averaged over the structures of the batch, then the trace term is mixed in with its
adaptive scale (:mod:`nextham.losses.trace`).

The random k-points of a structure are drawn from a generator seeded by ``(seed, epoch, structure
key)``, so a run is reproducible, resumes exactly and gives the same k-points whatever the number of
processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .config import LossConfig
from .constant_part import ConstantPartCache
from .layout import overlap_like_h, packed_layout
from .real_space import real_space_loss
from .reciprocal import dft_eigensystems, reciprocal_loss, sample_kpoints
from .trace import combine_with_trace, trace_loss


@dataclass
class LossResult:
    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)
    mu: list[float] = field(default_factory=list)


def segments_of(records: Sequence[Any], name: str) -> list[int]:
    """Offsets of each record's packed ``name`` in a concatenation over ``records``."""
    sizes = [int(r.block_offsets(name)[-1]) for r in records]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()


def kpoint_generator(seed: int, epoch: int, key: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7_919 + int(key) * 104_729) % (2 ** 63 - 1))
    return g


class Objective:
    """Callable objective: ``objective(hamiltonian, batch, keys, epoch, output) -> LossResult``.

    ``hamiltonian`` is the packed predicted H of the batch (layout of ``batch.h0``); ``batch`` carries
    ``records``, ``h_target`` and ``overlap`` (packed spinless S, concatenated); ``keys`` identify the
    structures (dataset indices) for the k-point draw.
    """

    def __init__(self, settings: LossConfig, seed: int = 0, trace_target_fn=None):
        self.s = settings
        self.seed = seed
        # trace_target_fn(batch, packed dH) -> per-shell-pair tr(dH dH^dagger), laid out like trace_pred.
        # With it the trace target is computed from the gauge-aligned target H + mu S (as the reference
        # code does); without it the model's own trace_target (from H - H0) is used.
        self.trace_target_fn = trace_target_fn
        # the elements a model leaves at H0 (output.variable_index lists the others), per structure key
        self.constant_parts = ConstantPartCache()

    def __call__(self, hamiltonian: torch.Tensor, batch: Any, keys: Sequence[int], epoch: int = 0,
                 output: Any = None, allreduce=None) -> LossResult:
        s = self.s
        records = batch.records
        h_seg = segments_of(records, "H0")
        s_seg = segments_of(records, "S")
        target = batch.h_target
        if target is None:
            raise ValueError("the batch has no target Hamiltonian (records without H cannot be trained on)")
        overlap = batch.overlap
        layouts = [packed_layout(r) for r in records]
        s_h = torch.cat([overlap_like_h(lay, overlap[a:b]) for lay, a, b in zip(layouts, s_seg[:-1], s_seg[1:])])
        overlap_real = not s_h.is_complex()
        if hamiltonian.is_complex() and not s_h.is_complex():
            s_h = s_h.to(hamiltonian.dtype)
        parts = None
        variable = getattr(output, "variable_index", None)
        if variable is not None and overlap_real and s.kind == "l1" and s.shift in ("auto", "median"):
            parts = self._constant_parts(hamiltonian, batch, keys, s_h, h_seg, variable)
        l_real, mu = real_space_loss(hamiltonian, target, s_h, h_seg, kind=s.kind, shift=s.shift,
                                     constant_parts=parts)
        total_h = s.weight_real * l_real
        parts = {"loss_real": l_real.detach()}
        rs = s.reciprocal
        if rs.enabled:
            tp = tq = tpq = hamiltonian.real.new_zeros(())
            for n, (rec, lay) in enumerate(zip(records, layouts)):
                g = kpoint_generator(self.seed, epoch, keys[n])
                kpts = sample_kpoints(rs.n_k, g, rs.k_mesh, rec.pbc)
                a, b = h_seg[n], h_seg[n + 1]
                if not bool(torch.isfinite(target[a:b]).all()):  # let the trainer's NaN guard report it
                    tp = tp + float("nan")
                    continue
                eigs = dft_eigensystems(lay, target[a:b], overlap[s_seg[n]:s_seg[n + 1]], kpts, rs.overlap_threshold)
                terms = reciprocal_loss(hamiltonian[a:b], lay, eigs, kpts, rec.fermi_energy_eV, rs.window_eV,
                                        s.kind, rs.weights, shift="none" if s.shift == "none" else "auto")
                tp, tq, tpq = tp + terms.p, tq + terms.q, tpq + terms.pq
            B = len(records)
            tp, tq, tpq = tp / B, tq / B, tpq / B
            total_h = total_h + tp + tq + tpq
            parts.update(loss_p=tp.detach(), loss_q=tq.detach(), loss_pq=tpq.detach())
        total = total_h
        parts["loss_h"] = total_h.detach()
        if s.trace.enabled and output is not None and getattr(output, "trace_pred", None) is not None \
                and getattr(output, "trace_target", None) is not None:
            t_target = output.trace_target
            if self.trace_target_fn is not None:
                sizes = torch.tensor(np.diff(h_seg), device=s_h.device)
                mu_e = torch.repeat_interleave(mu.to(s_h.device), sizes).to(s_h.real.dtype)
                with torch.no_grad():
                    t_target = self.trace_target_fn(batch, target + mu_e * s_h - batch.h0)
            lt = trace_loss(output.trace_pred, t_target, s.kind)
            ratio = None
            if allreduce is not None:  # same adaptive scale on every rank
                vals = allreduce(torch.stack([total_h.detach(), lt.detach()]).to(torch.float64))
                ratio = (vals[0] / vals[1].clamp_min(1e-300)).to(lt.dtype)
            total = combine_with_trace(total_h, lt, s.trace.weight, ratio)
            parts["loss_trace"] = lt.detach()
        parts["loss"] = total.detach()
        # one host synchronisation per step for every reported number
        names = list(parts)
        values = torch.cat([torch.stack([parts[n].real.to(torch.float64) for n in names]),
                            mu.detach().to(torch.float64).reshape(-1)]).tolist()
        return LossResult(total=total, parts=dict(zip(names, values[:len(names)])), mu=values[len(names):])

    def _constant_parts(self, hamiltonian, batch, keys, s_h, h_seg, variable) -> list:
        """Per structure the prepared constant elements (None where the cache gives up on a structure)."""
        var = variable.to(hamiltonian.device)
        target, h0 = batch.h_target, batch.h0
        parts = []
        for n, rec in enumerate(batch.records):
            a, b = h_seg[n], h_seg[n + 1]
            v = var if len(batch.records) == 1 else var[(var >= a) & (var < b)]
            parts.append(self.constant_parts.get(keys[n], rec, hamiltonian[a:b], target[a:b], h0[a:b], s_h[a:b], v - a))
        return parts
