"""Reciprocal-space (k-space) loss in the eigenbasis of the DFT Hamiltonian.

At a few random k-points per step (from a shifted Monkhorst-Pack grid), with the DFT eigenpairs
``H(k) C = S(k) C diag(eps)`` normalised so that ``C^dagger S(k) C = I``, the predicted Hamiltonian is
projected, ``Ht = C^dagger H_pred(k) C``. For the DFT Hamiltonian ``Ht = diag(eps)`` exactly, and for
``H + mu S`` it is ``diag(eps + mu)``. Bands are split into ``P`` (``eps < E_F + window``, default
10 eV) and ``Q`` (the rest); the loss penalises

    lambda_P  * mean |Ht_PP - diag(eps_P + mu)|
  + lambda_Q  * mean |Ht_QQ - diag(eps_Q + mu)|
  + lambda_PQ * mean |Ht_PQ|

with ``|z| = |Re z| + |Im z|`` (L1) or ``|z|^2`` (MSE), means over the matrix elements of each block,
and ``mu`` solved in closed form per structure (weighted median of the diagonal residuals for L1,
weighted mean for MSE) so that the loss is invariant under ``H_pred -> H_pred + mu S``.

The DFT eigenvectors are computed on the fly, in float64, from the stored H(R) and S(R) (see
docs/training.md for the measured cost and why they are not cached). Ill-conditioned overlap
directions (``S(k)`` eigenvalues below ``overlap_threshold``) are dropped by canonical
orthogonalisation, so a structure may have fewer bands than orbitals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .layout import PackedLayout, bloch_h, bloch_s
from .gauge import weighted_median
from .real_space import elementwise


def shifted_grid(mesh: tuple[int, int, int] = (4, 4, 4), pbc=(True, True, True)) -> np.ndarray:
    """Shifted (Gamma-free for even meshes) grid ``k_a = (n_a + 1/2) / N_a``; k = 0 along non-periodic axes."""
    axes = [((np.arange(n) + 0.5) / n) if p else np.zeros(1) for n, p in zip(mesh, pbc)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g - np.floor(g + 0.5)  # fold to [-1/2, 1/2)


def sample_kpoints(n_k: int, generator: torch.Generator, mesh=(4, 4, 4), pbc=(True, True, True)) -> np.ndarray:
    """``n_k`` distinct k-points (without replacement) of :func:`shifted_grid`, drawn with ``generator``."""
    grid = shifted_grid(tuple(mesh), pbc)
    idx = torch.randperm(len(grid), generator=generator)[: max(1, min(n_k, len(grid)))].numpy()
    return grid[idx]


@dataclass
class Eigensystem:
    """DFT eigenpairs at one k: ``eps`` (nb,) eV ascending, ``C`` (dim, nb) with ``C^dagger S C = I``."""

    eps: torch.Tensor
    C: torch.Tensor


def generalized_eigh(Hk: torch.Tensor, Sk: torch.Tensor, overlap_threshold: float = 1e-6) -> Eigensystem:
    """Solve ``H C = S C eps`` by canonical orthogonalisation (drops S eigenvalues < threshold)."""
    Hk = 0.5 * (Hk + Hk.conj().T)
    Sk = 0.5 * (Sk + Sk.conj().T)
    s, U = torch.linalg.eigh(Sk)
    keep = s > overlap_threshold
    if not bool(keep.any()):
        raise ValueError("overlap matrix S(k) has no eigenvalue above the threshold "
                         f"{overlap_threshold:g}; the basis is degenerate")
    X = U[:, keep] / torch.sqrt(s[keep])[None, :]
    Hp = X.conj().T @ Hk @ X
    eps, V = torch.linalg.eigh(0.5 * (Hp + Hp.conj().T))
    return Eigensystem(eps=eps, C=X @ V)


def dft_eigensystems(layout: PackedLayout, h_target: torch.Tensor, overlap: torch.Tensor, kpts: np.ndarray,
                     overlap_threshold: float = 1e-6) -> list[Eigensystem]:
    """Eigenpairs of the target ``(H(k), S(k))`` at each k (float64, no gradient).

    One batched ``eigh`` of all ``S(k)`` and, where every k keeps the same number of overlap directions
    (the usual case), one batched ``eigh`` of all projected ``H(k)``; otherwise per k."""
    with torch.no_grad():
        k = torch.as_tensor(kpts, dtype=torch.float64)
        h = h_target.detach().to(torch.complex128 if h_target.is_complex() else torch.float64)
        Hk = bloch_h(layout, h, k)
        Sk = bloch_s(layout, overlap.detach().to(torch.float64), k)
        Hk = 0.5 * (Hk + Hk.conj().transpose(-1, -2))
        s, U = torch.linalg.eigh(0.5 * (Sk + Sk.conj().transpose(-1, -2)))
        keep = s > overlap_threshold
        n_keep = keep.sum(dim=1)
        if not bool((n_keep == n_keep[0]).all()) or int(n_keep[0]) == 0:
            return [generalized_eigh(H, S, overlap_threshold) for H, S in zip(Hk, Sk)]
        nb = int(n_keep[0])
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :nb]  # kept columns, ascending
        X = torch.gather(U, 2, order[:, None, :].expand(-1, U.shape[1], -1))
        X = X / torch.sqrt(torch.gather(s, 1, order))[:, None, :]
        Hp = X.conj().transpose(-1, -2) @ Hk @ X
        eps, V = torch.linalg.eigh(0.5 * (Hp + Hp.conj().transpose(-1, -2)))
        C = X @ V
        return [Eigensystem(eps=e, C=c) for e, c in zip(eps, C)]


@dataclass
class ReciprocalTerms:
    """Weighted k-space terms of one structure (each already multiplied by its lambda) and ``mu``."""

    p: torch.Tensor
    q: torch.Tensor
    pq: torch.Tensor
    mu: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.p + self.q + self.pq


def reciprocal_loss(pred: torch.Tensor, layout: PackedLayout, eigs: list[Eigensystem], kpts: np.ndarray,
                    fermi_energy_eV: float | None, window_eV: float, kind: str,
                    weights: tuple[float, float, float], shift: str = "auto") -> ReciprocalTerms:
    """k-space loss of one structure's packed prediction ``pred`` (H layout) at ``kpts``.

    ``eigs`` from :func:`dft_eigensystems` at the same ``kpts``. ``fermi_energy_eV`` None puts every
    band in P. ``window_eV``, ``kind`` and ``weights`` ``(lambda_P, lambda_Q, lambda_PQ)`` come from
    :class:`nextham.losses.config.LossConfig`. ``shift``: "auto" (exact minimiser), "none" (mu = 0). Terms are averaged over k.
    """
    lp, lq, lpq = weights
    k = torch.as_tensor(kpts, dtype=torch.float64 if pred.dtype in (torch.float64, torch.complex128) else torch.float32)
    Hk = bloch_h(layout, pred, k)
    cdtype = Hk.dtype
    nk = len(eigs)
    cut = np.inf if fermi_energy_eV is None else float(fermi_energy_eV) + window_eV
    # masks and counts stay tensors: no host synchronisation inside the loss
    residuals, masks = [], []
    for H, e in zip(Hk, eigs):
        C = e.C.to(device=H.device, dtype=cdtype)
        eps = e.eps.to(device=H.device, dtype=H.real.dtype)
        D = C.conj().T @ H @ C - torch.diag(eps).to(cdtype)
        P = eps < cut
        n_p, n_q = P.sum().clamp_min(1), (~P).sum().clamp_min(1)
        residuals.append(D)
        masks.append((P, n_p, n_q))
    r = torch.cat([torch.diagonal(D).real.detach() for D in residuals])
    w = torch.cat([torch.where(P, lp / n_p ** 2, lq / n_q ** 2).to(r.dtype) / nk for P, n_p, n_q in masks])
    if shift == "none":
        mu = r.new_zeros(())
    elif kind == "l1":
        mu = weighted_median(r, w)
    else:
        mu = (r * w).sum() / w.sum()
    zero = Hk.real.new_zeros(())
    tp, tq, tpq = zero, zero, zero
    for D, (P, n_p, n_q) in zip(residuals, masks):
        D = D - mu.to(D.real.dtype) * torch.eye(D.shape[0], dtype=D.dtype, device=D.device)
        pen = elementwise(D, kind)
        Pf = P.to(pen.dtype)
        Qf = 1.0 - Pf
        tp = tp + lp * (Pf @ pen @ Pf) / (n_p * n_p) / nk
        tq = tq + lq * (Qf @ pen @ Qf) / (n_q * n_q) / nk
        tpq = tpq + lpq * (Pf @ pen @ Qf) / (n_p * n_q) / nk
    return ReciprocalTerms(p=tp, q=tq, pq=tpq, mu=mu)
