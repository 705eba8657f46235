"""Equiformer-style graph attention that keeps and updates edge features (one Transformer block).

For a graph edge ``(i, j, R)`` (aggregated into atom ``i``):

* message ``m = L_i(x_i) + L_j(x_j) + L_e(e_ij)`` (layer-normed inputs);
* depthwise tensor product ``m (x) Y(r_ij)`` ('uvu': one weight per copy and path) whose weights come
  from a radial MLP of the Gaussian basis of ``|r_ij|``; outputs restricted to the hidden irreps types;
* value ``v = L_v(tp)``; attention logits per head ``a_h . LeakyReLU(L_a(tp scalars) + W rbf)``;
  softmax over the edges of atom ``i`` within the cutoff;
* node update ``x_i += L_o(sum_j alpha_ijh v_ij)`` (copies of each irreps chunk split over heads);
* edge update ``e_ij += L_eo(v_ij * logit_ijh)`` (switch ``edge_updates``);
* gated feed-forward on nodes (and edges), each with pre-layer-norm and residual.

Irreps: node features ``irreps_in = irreps_out = hidden``, edge features ``irreps_edge = hidden``,
``irreps_sh`` = spherical harmonics to ``sh_lmax``; the sub-modules are checked against each other when
the block is built (:mod:`nextham.nn.contracts`).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from .contracts import check_chain, expect_irreps, stage
from .layers import EquivariantLayerNorm, GatedFFN, IrrepsLinear, copy_index, mlp, scatter_softmax, scatter_sum
from .sparse_products import TensorProduct



def uvu_paths(hidden: o3.Irreps, sh: o3.Irreps) -> tuple[o3.Irreps, list[tuple]]:
    """The attention block's 'uvu' paths hidden x spherical harmonics -> every output irrep that the
    hidden irreps hold: ``(irreps_mid, instructions)`` for ``e3nn``'s ``TensorProduct``."""
    types = {ir for _, ir in hidden}
    mid, instructions = [], []
    for i1, (mul, ir1) in enumerate(hidden):
        for i2, (_, ir2) in enumerate(sh):
            for ir in ir1 * ir2:
                if ir in types:
                    instructions.append((i1, i2, len(mid), "uvu", True))
                    mid.append((mul, ir))
    return o3.Irreps(mid), instructions

class TransformerBlock(nn.Module):
    def __init__(self, hidden: str | o3.Irreps, sh: str | o3.Irreps, num_rbf: int, radial_hidden: int,
                 num_heads: int, attn_hidden: int, ffn_scalar_mult: int = 2, edge_updates: bool = True):
        super().__init__()
        H = o3.Irreps(hidden)
        SH = o3.Irreps(sh)
        self.irreps_in = self.irreps_out = self.irreps_edge = H
        self.irreps_sh = SH
        self.num_heads = num_heads
        self.attn_hidden = attn_hidden
        self.edge_updates = edge_updates
        self.norm_node = EquivariantLayerNorm(H)
        self.norm_edge = EquivariantLayerNorm(H)
        self.lin_center = IrrepsLinear(H, H, biases=True)
        self.lin_neighbour = IrrepsLinear(H, H)
        self.lin_edge = IrrepsLinear(H, H)
        self.irreps_mid, instructions = uvu_paths(H, SH)
        self.tp = TensorProduct(H, SH, self.irreps_mid, instructions, shared_weights=False, internal_weights=False)
        self.radial = mlp([num_rbf, radial_hidden, radial_hidden, self.tp.weight_numel])
        self.lin_value = IrrepsLinear(self.irreps_mid, H)
        self.lin_attn = IrrepsLinear(self.irreps_mid, f"{num_heads * attn_hidden}x0e", biases=True)
        self.rbf_attn = nn.Linear(num_rbf, num_heads * attn_hidden, bias=False)
        self.attn_dot = nn.Parameter(torch.randn(num_heads, attn_hidden) / attn_hidden ** 0.5)
        self.register_buffer("head_of", copy_index(H, num_heads), persistent=False)
        self.lin_node_out = IrrepsLinear(H, H)
        self.norm_ffn_node = EquivariantLayerNorm(H)
        self.ffn_node = GatedFFN(H, ffn_scalar_mult)
        if edge_updates:
            self.lin_edge_out = IrrepsLinear(H, H)
            self.norm_ffn_edge = EquivariantLayerNorm(H)
            self.ffn_edge = GatedFFN(H, ffn_scalar_mult)
        self.check_irreps()

    def check_irreps(self) -> None:
        """Raise :class:`~nextham.nn.contracts.IrrepsMismatchError` naming the first sub-module whose
        ``irreps_in`` differs from the irreps it receives (see the module docstring for the data flow)."""
        where = "TransformerBlock"
        node, edge = f"{where} node features", f"{where} edge features"
        norm_node = stage("norm_node", self.norm_node)
        m = check_chain(node, [norm_node, stage("lin_center", self.lin_center)], self.irreps_in)
        check_chain(node, [norm_node, stage("lin_neighbour", self.lin_neighbour)], self.irreps_in, m)
        check_chain(edge, [stage("norm_edge", self.norm_edge), stage("lin_edge", self.lin_edge)], self.irreps_edge, m)
        expect_irreps(where, "tp", self.irreps_sh, self.tp.irreps_in2, "the spherical harmonics")
        tp = ("tp", self.tp.irreps_in1, self.tp.irreps_out)
        v = check_chain(f"{where} messages", [tp, stage("lin_value", self.lin_value)], m)
        check_chain(f"{where} messages", [tp, stage("lin_attn", self.lin_attn)], m,
                    f"{self.num_heads * self.attn_hidden}x0e")
        check_chain(node, [stage("lin_node_out", self.lin_node_out), stage("norm_ffn_node", self.norm_ffn_node),
                           stage("ffn_node", self.ffn_node)], v, self.irreps_out)
        if self.edge_updates:
            check_chain(edge, [stage("lin_edge_out", self.lin_edge_out), stage("norm_ffn_edge", self.norm_ffn_edge),
                               stage("ffn_edge", self.ffn_edge)], v, self.irreps_edge)

    def forward(self, x: torch.Tensor, e: torch.Tensor, sh: torch.Tensor, rbf: torch.Tensor,
                center: torch.Tensor, neighbour: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, H), e (E, H), sh (E, SH), rbf (E, num_rbf), center/neighbour (E,), mask (E,) bool -> (x, e)."""
        n = x.shape[0]
        xn = self.norm_node(x)
        m = self.lin_center(xn)[center] + self.lin_neighbour(xn)[neighbour] + self.lin_edge(self.norm_edge(e))
        t = self.tp(m, sh, self.radial(rbf))
        v = self.lin_value(t)
        a = torch.nn.functional.leaky_relu(self.lin_attn(t) + self.rbf_attn(rbf), 0.2)
        logits = (a.view(-1, self.num_heads, self.attn_hidden) * self.attn_dot).sum(-1)  # (E, heads)
        alpha = scatter_softmax(logits, center, n, mask)
        x = x + self.lin_node_out(scatter_sum(v * alpha[:, self.head_of], center, n))
        x = x + self.ffn_node(self.norm_ffn_node(x))
        if self.edge_updates:
            e = e + self.lin_edge_out(v * logits[:, self.head_of])
            e = e + self.ffn_edge(self.norm_ffn_edge(e))
        return x, e
