"""TraceGrad: an invariant of unrestricted non-linearity whose gradient is an equivariant update.

``z = MLP(I(f))`` with ``I(f)`` the invariant (0e) part of ``f (x) f``: for every irreps chunk
``mul x (l, p)`` the Gram matrix ``G_uv = sum_m f_um f_vm / sqrt(2l+1)`` (upper triangle). Since ``z`` is
invariant, ``v = d(sum z)/df`` is exactly equivariant (autograd, ``create_graph`` while training), and the
features are updated as ``f <- f + alpha (|f| / |v|) v``. ``z`` feeds the trace head.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from .layers import irreps_chunks, mlp, smooth_norm


class TraceGrad(nn.Module):
    """Irreps in = out (``irreps``); returns ``(f_new, z)``, ``z`` of shape (n, z_dim) (invariants).

    ``update=False`` only computes ``z`` (ablation "no TraceGrad" with the trace head kept).
    """

    def __init__(self, irreps: str | o3.Irreps, z_dim: int, hidden: int, alpha: float = 0.2,
                 learn_alpha: bool = False, update: bool = True, eps: float = 1e-12):
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        self.update = update
        self.eps = eps
        self.chunks = irreps_chunks(self.irreps_in)
        # invariant q = sum_m f[:, i] f[:, j] / sqrt(2l+1) over the (i, j) of copies (u <= v) of one chunk:
        # one product of gathered components and one matrix sum (instead of an einsum per chunk)
        first, second, column, root = [], [], [], []
        n_inv = 0
        for start, mul, d, _ in self.chunks:
            iu = torch.triu_indices(mul, mul)
            for q, (u, v) in enumerate(iu.T.tolist()):
                for m in range(d):
                    first.append(start + u * d + m)
                    second.append(start + v * d + m)
                    column.append(n_inv + q)
            root += [d ** 0.5] * iu.shape[1]
            n_inv += iu.shape[1]
        self.register_buffer("pair_first", torch.tensor(first, dtype=torch.long), persistent=False)
        self.register_buffer("pair_second", torch.tensor(second, dtype=torch.long), persistent=False)
        summation = torch.zeros(len(first), n_inv)
        summation[torch.arange(len(first)), torch.tensor(column, dtype=torch.long)] = 1.0
        self.register_buffer("pair_summation", summation, persistent=False)  # 0/1: exact in any dtype
        self._root_dim = root  # sqrt(2l+1) per invariant, applied in the working dtype
        self._root_cache: dict = {}
        self.mlp = mlp([n_inv, hidden, hidden, z_dim])
        a = torch.tensor(float(alpha))
        if learn_alpha:
            self.alpha = nn.Parameter(a)
        else:
            self.register_buffer("alpha", a)

    def invariants(self, f: torch.Tensor) -> torch.Tensor:
        """(n, number of invariants): upper triangles (row-major, u <= v) of the per-chunk Gram matrices
        ``G_uv = sum_m f_um f_vm / sqrt(2l+1)``, chunk after chunk."""
        key = (f.dtype, f.device)
        root = self._root_cache.get(key)
        if root is None:
            root = self._root_cache[key] = torch.tensor(self._root_dim, dtype=f.dtype, device=f.device)
        return ((f[:, self.pair_first] * f[:, self.pair_second]) @ self.pair_summation.to(f.dtype)) / root

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outer = torch.is_grad_enabled()
        with torch.enable_grad():
            src = f if (outer and f.requires_grad) else f.detach().requires_grad_(True)
            z = self.mlp(self.invariants(src))
            if not self.update:
                return f, (z if outer else z.detach())
            (v,) = torch.autograd.grad(z.sum(), src, create_graph=outer)
        if not outer:
            z = z.detach()
        scale = self.alpha * smooth_norm(f, self.eps) / smooth_norm(v, self.eps)
        return f + scale * v, z

    def gradient(self, f: torch.Tensor) -> torch.Tensor:
        """``v = d(sum z)/df`` alone (for tests)."""
        with torch.enable_grad():
            src = f.detach().requires_grad_(True)
            (v,) = torch.autograd.grad(self.mlp(self.invariants(src)).sum(), src)
        return v
