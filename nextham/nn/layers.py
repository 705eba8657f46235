"""Small equivariant building blocks: Gaussian basis, radial MLP, layer norm, gated FFN, scatter ops.

Every module declares ``irreps_in``/``irreps_out`` (:mod:`nextham.nn.contracts`); irreps bookkeeping is
in ``__init__``, ``forward`` is plain tensor algebra. Features are (n, irreps.dim) in e3nn's layout
(copy-major within each ``mul x ir`` chunk).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

from .contracts import check_chain, stage


class GaussianBasis(nn.Module):
    """``exp(-((r - mu_k) / sigma)^2 / 2)``, ``mu_k`` evenly on ``[0, r_max]``, ``sigma`` their spacing.

    Distances (n,) in Å (irreps in ``1x0e``) -> (n, num) invariants (irreps out ``num x 0e``)."""

    def __init__(self, num: int, r_max: float):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps("1x0e"), o3.Irreps(f"{num}x0e")
        self.register_buffer("centers", torch.linspace(0.0, r_max, num))
        self.width = r_max / max(num - 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((r[:, None] - self.centers[None]) / self.width) ** 2)


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Plain MLP with ``act`` between layers (none after the last)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def irreps_chunks(irreps: o3.Irreps) -> list[tuple[int, int, int, o3.Irrep]]:
    """(start, mul, 2l+1, irrep) of every chunk."""
    out, start = [], 0
    for mul, ir in irreps:
        out.append((start, mul, ir.dim, ir))
        start += mul * ir.dim
    return out


def copy_index(irreps: o3.Irreps, groups: int) -> torch.Tensor:
    """(dim,) group (e.g. attention head) of each component: copy ``u`` of a ``mul`` chunk -> ``u * groups // mul``."""
    idx = []
    for mul, ir in irreps:
        for u in range(mul):
            idx.extend([u * groups // mul] * ir.dim)
    return torch.tensor(idx, dtype=torch.int64)


class EquivariantLayerNorm(nn.Module):
    """Layer norm of irreps features: the even scalars (0e) centred and divided by their root mean square;
    all other irreps divided together by the root mean square of the whole row (every component, the
    scalars included: an invariant); learned per-copy scale, bias on the even scalars. Irreps in = out.

    One norm for the whole row, not one per irreps chunk: a chunk, or all non-scalar chunks of a row,
    can be zero in exact arithmetic (the odd irreps of a two-centre H0, an atom on an inversion centre)
    and then hold rounding noise in floats; dividing it by its own tiny norm blew that noise up to O(1)
    (equivariance errors ~1 in float32). Against the row's scale it stays as small as it is. ``eps``
    (squared units of the features) keeps an all-zero row finite.
    """

    def __init__(self, irreps: str | o3.Irreps, eps: float = 1e-6):
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        self.eps = eps
        self.chunks = irreps_chunks(self.irreps_in)
        self.sizes = [mul * d for _, mul, d, _ in self.chunks]
        self.weight = nn.Parameter(torch.ones(self.irreps_in.num_irreps))
        n_bias = sum(mul for mul, ir in self.irreps_in if ir.l == 0 and ir.p == 1)
        self.bias = nn.Parameter(torch.zeros(n_bias))
        self.n_other = sum(n for n, (_, _, _, ir) in zip(self.sizes, self.chunks) if not (ir.l == 0 and ir.p == 1))
        # (components outside the even scalars; 0 for a scalars-only input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.split: one gradient concatenation in backward instead of a zero-filled full tensor per slice
        parts = torch.split(x, self.sizes, dim=1)
        is_scalar = [ir.l == 0 and ir.p == 1 for _, _, _, ir in self.chunks]
        if self.n_other:
            inv_other = torch.rsqrt(x.pow(2).mean(dim=1) + self.eps)[:, None, None]
        out, w0, b0 = [], 0, 0
        for part, (_, mul, d, _), scalar in zip(parts, self.chunks, is_scalar):
            xc = part.reshape(-1, mul, d)
            if scalar:
                xc = xc - xc.mean(dim=1, keepdim=True)
                xc = xc * torch.rsqrt(xc.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)
            else:
                xc = xc * inv_other
            xc = xc * self.weight[w0:w0 + mul][None, :, None]
            w0 += mul
            if scalar:
                xc = xc + self.bias[b0:b0 + mul][None, :, None]
                b0 += mul
            out.append(xc.reshape(-1, mul * d))
        return torch.cat(out, dim=1)


class GatedFFN(nn.Module):
    """Linear -> gate (SiLU on scalars, sigmoid gates on l > 0) -> Linear. Irreps in = out."""

    def __init__(self, irreps: str | o3.Irreps, scalar_mult: int = 2):
        super().__init__()
        irreps = o3.Irreps(irreps)
        self.irreps_in = self.irreps_out = irreps
        scalars = o3.Irreps([(mul * scalar_mult, ir) for mul, ir in irreps if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = Gate(scalars, acts, gates, [torch.sigmoid] * len(gates), gated)
        self.lin1 = IrrepsLinear(irreps, self.gate.irreps_in, biases=True)
        self.lin2 = IrrepsLinear(self.gate.irreps_out, irreps, biases=True)
        check_chain("GatedFFN", [stage("lin1", self.lin1), stage("gate", self.gate), stage("lin2", self.lin2)],
                    self.irreps_in, self.irreps_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.gate(self.lin1(x)))


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``out[index[k]] += src[k]`` along dim 0."""
    return src.new_zeros((n,) + src.shape[1:]).index_add(0, index, src)


def scatter_softmax(logits: torch.Tensor, index: torch.Tensor, n: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of (E, H) logits over the edges sharing ``index``; masked edges get weight 0."""
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None], float("-inf"))
    mx = logits.new_full((n, logits.shape[1]), float("-inf"))
    mx = mx.scatter_reduce(0, index[:, None].expand_as(logits), logits, "amax", include_self=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx)).detach()
    ex = torch.exp(logits - mx[index])
    den = scatter_sum(ex, index, n)
    return ex / (den[index] + torch.finfo(ex.dtype).tiny)


def smooth_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``sqrt(sum x^2 + eps)`` over the last dim (differentiable at 0)."""
    return torch.sqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)


def fan_in_init(seq: nn.Sequential) -> nn.Sequential:
    """Weights ``N(0, 1/fan_in)``, biases zero, for every ``nn.Linear`` of ``seq`` (in place; returns ``seq``)."""
    for m in seq:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
            nn.init.zeros_(m.bias)
    return seq


class IrrepsLinear(nn.Module):
    """Equivariant linear map ``irreps_in -> irreps_out`` (copies of equal irrep mix; bias on 0e outputs).

    Same function class and normalisation as ``e3nn.o3.Linear`` (weights ~ N(0, 1), scaled by
    ``1/sqrt(fan_in)`` per output irrep type), one ``(mul_in, mul_out)`` parameter per pair of chunks of
    equal irrep. The forward pass assembles the block-sparse ``(irreps_in.dim, irreps_out.dim)`` matrix
    of all paths with one ``index_add`` and applies it with one matrix product (a handful of kernels
    instead of one einsum per path; the small layers of a training step are launch-bound).
    """

    def __init__(self, irreps_in: str | o3.Irreps, irreps_out: str | o3.Irreps, biases: bool = False):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.in_sizes = [mul * ir.dim for mul, ir in self.irreps_in]
        self.paths: list[list[tuple[int, int, float]]] = []  # per output chunk: (input chunk, weight index, norm)
        weights = []
        for mul_out, ir_out in self.irreps_out:
            fan_in = sum(mul for mul, ir in self.irreps_in if ir == ir_out)
            paths = []
            for i, (mul_in, ir_in) in enumerate(self.irreps_in):
                if ir_in == ir_out:
                    paths.append((i, len(weights), fan_in ** -0.5))
                    weights.append(nn.Parameter(torch.randn(mul_in, mul_out)))
            self.paths.append(paths)
        self.weights = nn.ParameterList(weights)
        self.bias_slots = [k for k, (mul, ir) in enumerate(self.irreps_out) if biases and ir.l == 0 and ir.p == 1]
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(self.irreps_out[k].mul)) for k in self.bias_slots])
        self._init_matrix_terms()

    def _init_matrix_terms(self) -> None:
        """Position in the flat (in.dim * out.dim) matrix, flat weight index and norm of every matrix entry."""
        starts_in = np.cumsum([0] + self.in_sizes)
        starts_out = np.cumsum([0] + [mul * ir.dim for mul, ir in self.irreps_out])
        sizes = [w.numel() for w in self.weights]
        offsets = np.cumsum([0] + sizes)
        positions, indices, norms = [], [], []
        for k, ((mul_out, ir), paths) in enumerate(zip(self.irreps_out, self.paths)):
            for i, w, norm in paths:
                mul_in = self.irreps_in[i].mul
                u, v, m = np.meshgrid(np.arange(mul_in), np.arange(mul_out), np.arange(ir.dim), indexing="ij")
                row, col = starts_in[i] + u * ir.dim + m, starts_out[k] + v * ir.dim + m
                positions.append((row * self.irreps_out.dim + col).ravel())
                indices.append((offsets[w] + u * mul_out + v).ravel())
                norms.append(np.full(u.size, norm))
        cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
        self.register_buffer("matrix_position", torch.as_tensor(cat(positions, np.int64)), persistent=False)
        self.register_buffer("matrix_weight", torch.as_tensor(cat(indices, np.int64)), persistent=False)
        self._matrix_norm = cat(norms, np.float64)  # applied in the working dtype (float64 kept exact)
        self._norm_cache: dict = {}
        bias_pos = [starts_out[k] + np.arange(self.irreps_out[k].mul) for k in self.bias_slots]  # 0e: dim 1
        self.register_buffer("bias_position", torch.as_tensor(cat(bias_pos, np.int64)), persistent=False)

    def matrix(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The ``(irreps_in.dim, irreps_out.dim)`` matrix ``W`` of the map (``x @ W`` + bias)."""
        din, dout = self.irreps_in.dim, self.irreps_out.dim
        device = self.matrix_position.device
        if not len(self.weights):
            return torch.zeros(din, dout, dtype=dtype or torch.get_default_dtype(), device=device)
        flat = torch.cat([w.reshape(-1) for w in self.weights])
        key = (flat.dtype, device)
        norm = self._norm_cache.get(key)
        if norm is None:
            norm = self._norm_cache[key] = torch.as_tensor(self._matrix_norm, dtype=flat.dtype, device=device)
        values = flat[self.matrix_weight] * norm
        return flat.new_zeros(din * dout).index_add(0, self.matrix_position, values).view(din, dout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        W = self.matrix(x.dtype)
        if not self.bias_slots:
            return x @ W
        bias = torch.cat(list(self.biases))
        bias = bias.new_zeros(self.irreps_out.dim).index_add(0, self.bias_position, bias)
        return torch.addmm(bias, x, W)
