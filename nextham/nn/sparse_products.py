"""e3nn tensor products evaluated as one gather and one matrix product (same function, fewer kernels).

e3nn's generated code runs every instruction (path ``l1 x l2 -> l_out``) as its own einsum; the tiny
and small presets have tens of paths per tensor product on a few hundred rows, so a training step is
dominated by the launch and autograd overhead of those small kernels, not by arithmetic. Every
instruction is a sum of terms

    out[:, q] += c * x1[:, i1] * x2[:, i2] * w[..., k]

(``c`` = path weight times Clebsch-Gordan coefficient), so with the distinct ``(i1, i2)`` pairs as the
rows ``r`` of a matrix the whole product is

* shared weights (``"uvw"``, e.g. ``FullyConnectedTensorProduct``):
  ``out = (x1[:, i1_r] * x2[:, i2_r]) @ M(w)``, ``M[r, q] = sum c w[k]`` assembled by one ``index_add``
  (for fewer rows than ``M``'s size over the number of terms, e.g. the atoms of a cell, the terms are
  summed directly by one ``index_add`` instead);
* per-row weights (``"uvu"`` with multiplicity-1 second input, e.g. edge features times spherical
  harmonics): ``out = ((x1[:, i1_r] * x2[:, i2_r]) @ C) * w[:, k_q]`` with the constant ``C[r, q] = c``,
  since the weight of an output component then depends on the component alone.

The Clebsch-Gordan blocks are e3nn's own (``o3.wigner_3j``, and the ``1/sqrt(2l+1)`` identities of its
specialised l = 0 paths). Weights, their order, initialisation and state-dict keys are e3nn's: the
classes below subclass e3nn's modules and only replace ``forward``; tensor products outside these
cases (other connection modes, unweighted paths, broadcast inputs, or a dense ``M`` above
:data:`MAX_DENSE` entries) run e3nn's code unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

import numpy as np
import torch
from e3nn import o3

MAX_DENSE = 1 << 22
"""Largest ``rows x irreps_out.dim`` of the dense coefficient matrix (4M entries, 16 MB in float32)."""


def path_coefficients(l1: int, l2: int, l_out: int) -> tuple[np.ndarray, float]:
    """``(C, f)``: the (2l1+1, 2l2+1, 2l_out+1) coupling of one path as e3nn's generated code applies it,
    ``f * C``, with ``C`` the Wigner 3j block (a table e3nn stores in the default dtype) and ``f`` the
    scalar factor of its specialised l = 0 paths (there ``C`` is a 0/1 identity), both float64."""
    d1, d2, d3 = 2 * l1 + 1, 2 * l2 + 1, 2 * l_out + 1
    if (l1, l2, l_out) == (0, 0, 0):
        return np.ones((1, 1, 1)), 1.0
    if l1 == 0:
        return np.eye(d2)[None], 1 / sqrt(d3)
    if l2 == 0:
        return np.eye(d1)[:, None], 1 / sqrt(d3)
    if l_out == 0:
        return np.eye(d1)[:, :, None], 1 / sqrt(d1)
    return o3.wigner_3j(l1, l2, l_out, dtype=torch.float64).numpy(), 1.0


@dataclass(frozen=True)
class ProductTerms:
    """Every non-zero term ``out[:, q] += scale * cg * x1[:, i1] * x2[:, i2] * w[..., weight]`` of a product.

    ``used1``, ``used2``: the components of each input that occur in a term; ``row`` numbers the pair
    ``(i1, i2)`` in the outer product of the used components (``pos(i1) * len(used2) + pos(i2)``); ``cg``
    is the Clebsch-Gordan entry (e3nn rounds its tables to the default dtype), ``scale`` the path weight
    times e3nn's scalar factor (applied in the working dtype, as e3nn does).
    """

    i1: np.ndarray
    i2: np.ndarray
    used1: np.ndarray
    used2: np.ndarray
    row: np.ndarray
    out: np.ndarray
    weight: np.ndarray
    cg: np.ndarray
    scale: np.ndarray


def product_terms(tp: o3.TensorProduct) -> ProductTerms | None:
    """The terms of ``tp``, or None where its instructions are outside the modes handled here
    ("uvw" with shared weights; "uvu" with per-row weights and multiplicity 1 in the second input)."""
    i1s, i2s, qs, ks, cs, fs = [], [], [], [], [], []
    offset = 0
    for ins in tp.instructions:
        if 0 in ins.path_shape:
            continue
        a, b, o = tp.irreps_in1[ins.i_in1], tp.irreps_in2[ins.i_in2], tp.irreps_out[ins.i_out]
        if not ins.has_weight:
            return None
        if ins.connection_mode == "uvw" and tp.shared_weights:
            pass
        elif ins.connection_mode == "uvu" and not tp.shared_weights and b.mul == 1:
            pass
        else:
            return None
        C, factor = path_coefficients(a.ir.l, b.ir.l, o.ir.l)
        if ins.path_weight == 0:
            C = np.zeros_like(C)
        ia, ib, ik = np.nonzero(C)
        c = C[ia, ib, ik]
        s1, s2, so = (tp.irreps_in1[: ins.i_in1].dim, tp.irreps_in2[: ins.i_in2].dim, tp.irreps_out[: ins.i_out].dim)
        d1, d2, do = a.ir.dim, b.ir.dim, o.ir.dim
        if ins.connection_mode == "uvw":
            u, v, w = np.meshgrid(np.arange(a.mul), np.arange(b.mul), np.arange(o.mul), indexing="ij")
            u, v, w = u.reshape(-1, 1), v.reshape(-1, 1), w.reshape(-1, 1)
            k = offset + (u * b.mul + v) * o.mul + w
        else:  # uvu, v = 0
            u = np.arange(a.mul).reshape(-1, 1)
            v, w, k = np.zeros_like(u), u, offset + u
        shape = np.broadcast_shapes(u.shape, ia[None].shape)
        i1s.append(np.broadcast_to(s1 + u * d1 + ia, shape).ravel())
        i2s.append(np.broadcast_to(s2 + v * d2 + ib, shape).ravel())
        qs.append(np.broadcast_to(so + w * do + ik, shape).ravel())
        ks.append(np.broadcast_to(k, shape).ravel())
        cs.append(np.broadcast_to(c, shape).ravel())
        fs.append(np.full(int(np.prod(shape)), factor * ins.path_weight))
        offset += int(np.prod(ins.path_shape))
    if not i1s:
        return None
    i1, i2 = np.concatenate(i1s), np.concatenate(i2s)
    used1, pos1 = np.unique(i1, return_inverse=True)
    used2, pos2 = np.unique(i2, return_inverse=True)
    return ProductTerms(i1=i1, i2=i2, used1=used1, used2=used2, row=pos1.ravel() * len(used2) + pos2.ravel(),
                        out=np.concatenate(qs), weight=np.concatenate(ks), cg=np.concatenate(cs),
                        scale=np.concatenate(fs))


class _SparseProduct:
    """Mixin for e3nn tensor-product modules: buffers of :func:`product_terms` and the fused forward."""

    def _init_fused(self, compile_left_right: bool) -> None:
        """After e3nn's ``__init__`` (run without its code generation): the fused terms, and e3nn's code
        only for a product outside the fused cases (else on first need, :meth:`_compile_left_right`)."""
        self._left_right_compiled = False
        self._register_load_state_dict_pre_hook(self._drop_generated_constants)
        self._init_terms()
        if compile_left_right and not self.fused:
            self._compile_left_right()

    def _init_terms(self) -> None:
        self.irreps_in, self.irreps_out = self.irreps_in1, self.irreps_out  # nextham's irreps contract
        terms = product_terms(self)
        self._rows = 0 if terms is None else len(terms.used1) * len(terms.used2)
        self.fused = terms is not None and self._rows * self.irreps_out.dim <= MAX_DENSE
        if not self.fused:
            return
        dim = self.irreps_out.dim
        # inputs whose every component is used enter the outer product as they are (no gather)
        self._all1 = len(terms.used1) == self.irreps_in1.dim
        self._all2 = len(terms.used2) == self.irreps_in2.dim
        for name, value in (("used1", terms.used1), ("used2", terms.used2),
                            ("term_position", terms.row * dim + terms.out), ("term_weight", terms.weight),
                            ("term_i1", terms.i1), ("term_i2", terms.i2), ("term_out", terms.out)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.long), persistent=False)
        # like e3nn's tables the Clebsch-Gordan entries follow the module's dtype; the scalar factors are
        # applied in the working dtype (float64 kept, no rounding through the default dtype)
        self.register_buffer("term_cg", torch.as_tensor(terms.cg, dtype=torch.get_default_dtype()), persistent=False)
        self._term_scale = terms.scale
        self._scale_cache: dict = {}
        if not self.shared_weights:  # uvu, v = 0: one weight per output component
            weight_of = np.zeros(dim, dtype=np.int64)
            weight_of[terms.out] = terms.weight
            self.register_buffer("weight_of_output", torch.as_tensor(weight_of), persistent=False)

    def _coefficients(self, dtype: torch.dtype) -> torch.Tensor:
        """(terms,) ``scale * cg`` in ``dtype`` (constants: no gradient)."""
        key = (dtype, self.term_cg.device)
        scale = self._scale_cache.get(key)
        if scale is None:
            scale = self._scale_cache[key] = torch.as_tensor(self._term_scale, dtype=dtype, device=self.term_cg.device)
        return self.term_cg.to(dtype) * scale

    def coefficient_matrix(self, weight: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(rows, irreps_out.dim): ``M(w)`` of shared weights ``weight`` (weight_numel,), or without
        ``weight`` the constant ``C`` (per-row weights) in ``dtype``."""
        with torch.no_grad():
            coef = self._coefficients(weight.dtype if weight is not None else dtype)
        values = coef if weight is None else weight[self.term_weight] * coef
        M = values.new_zeros(self._rows * self.irreps_out.dim).index_add(0, self.term_position, values)
        return M.view(self._rows, self.irreps_out.dim)

    def _drop_generated_constants(self, state_dict, prefix, *args) -> None:
        """Load-state-dict pre-hook: checkpoints written while e3nn's generated code existed (releases
        before the lazy compile) hold its constant Wigner 3j buffers; without the code they are dropped."""
        if not self._left_right_compiled:
            for key in [k for k in state_dict if k.startswith(prefix + "_compiled_main_left_right.")]:
                del state_dict[key]

    def _compile_left_right(self) -> None:
        """e3nn's generated code for ``forward``, built on first need: a fused product never runs it, and
        generating it (torch.fx code plus einsum path optimisation) took ~0.1-0.3 s per product, most
        of a model's construction time."""
        from e3nn.o3._tensor_product._tensor_product import _CODEGEN_PROVIDERS_LEFT_RIGHT

        for codegen in _CODEGEN_PROVIDERS_LEFT_RIGHT:
            graph = codegen(self.irreps_in1, self.irreps_in2, self.irreps_out, self.instructions,
                            self.shared_weights, self._specialized_code, self._optimize_einsums)
            if graph is not None:
                break
        self.__codegen__ = [name for name in self.__codegen__ if name != "_compiled_main_left_right"]
        self._codegen_register({"_compiled_main_left_right": graph})
        self._left_right_compiled = True

    def forward(self, x, y, weight=None):
        w = self._get_weights(weight)
        if not self.fused or x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] \
                or (not self.shared_weights and (w.ndim != 2 or w.shape[0] != x.shape[0])):
            if not self._left_right_compiled:
                self._compile_left_right()
            return super().forward(x, y, weight)
        if self.shared_weights and x.shape[0] * len(self.term_weight) < self._rows * self.irreps_out.dim:
            # few rows (e.g. the atoms of a cell): the terms one by one cost less than assembling M
            with torch.no_grad():
                coef = self._coefficients(w.dtype)
            terms = x[:, self.term_i1] * y[:, self.term_i2] * (w[self.term_weight] * coef)
            return terms.new_zeros(x.shape[0], self.irreps_out.dim).index_add(1, self.term_out, terms)
        x = x if self._all1 else x.index_select(1, self.used1)
        y = y if self._all2 else y.index_select(1, self.used2)
        pairs = (x[:, :, None] * y[:, None, :]).reshape(x.shape[0], -1)
        if self.shared_weights:
            return pairs @ self.coefficient_matrix(w)
        with torch.no_grad():
            C = self.coefficient_matrix(dtype=pairs.dtype)
        return (pairs @ C) * w[:, self.weight_of_output]


class TensorProduct(_SparseProduct, o3.TensorProduct):
    """``e3nn.o3.TensorProduct`` (same arguments, weights and results) with the fused forward; e3nn's
    own code is generated only where it runs (products outside the fused cases, or ``fused = False``)."""

    def __init__(self, *args, compile_left_right: bool = True, **kwargs):
        super().__init__(*args, compile_left_right=False, **kwargs)
        self._init_fused(compile_left_right)


class FullyConnectedTensorProduct(_SparseProduct, o3.FullyConnectedTensorProduct):
    """``e3nn.o3.FullyConnectedTensorProduct`` (same arguments, weights and results) with the fused forward;
    e3nn's own code is generated only where it runs."""

    def __init__(self, *args, compile_left_right: bool = True, **kwargs):
        super().__init__(*args, compile_left_right=False, **kwargs)
        self._init_fused(compile_left_right)
