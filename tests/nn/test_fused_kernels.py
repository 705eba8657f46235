"""Fused kernels (tensor products, linear maps, TraceGrad invariants) equal e3nn or the per-path formulas (float64)."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from nextham.graph import build_graph, collate
from nextham.nn import ModelConfig, NextHAMModel
from nextham.nn.model import _e3nn_codegen
from nextham.nn.sparse_products import FullyConnectedTensorProduct, TensorProduct
from nextham.testing.equivariance import example_record


@pytest.fixture(autouse=True)
def _e3nn_as_the_model_builds_it():
    """e3nn modules as plain fx code (no TorchScript), as :class:`NextHAMModel` builds them."""
    with _e3nn_codegen():
        yield


def _assert_same(ref, new, inputs, weight_input: bool):
    """Outputs and gradients (inputs and weights) of two modules agree to float64 rounding."""
    args = [x.clone().requires_grad_(True) for x in inputs]
    args2 = [x.clone().requires_grad_(True) for x in inputs]
    out_ref, out_new = ref(*args), new(*args2)
    assert out_ref.shape == out_new.shape
    scale = float(out_ref.detach().abs().max())
    assert scale > 0
    torch.testing.assert_close(out_new, out_ref, rtol=0, atol=1e-13 * scale)
    g = torch.randn_like(out_ref)
    wrt_ref = args + ([] if weight_input else [ref.weight])
    wrt_new = args2 + ([] if weight_input else [new.weight])
    for a, b in zip(torch.autograd.grad(out_ref, wrt_ref, g), torch.autograd.grad(out_new, wrt_new, g)):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-13 * max(1.0, float(a.abs().max())))


@pytest.mark.parametrize("irreps", [
    ("4x0e+4x1o+4x1e+4x2o+4x2e", "4x0e+4x1o+4x1e+4x2o+4x2e", "4x0o+4x0e+4x1o+4x1e+4x2o+4x2e+4x3o+4x3e+4x4o+4x4e"),
    ("4x0o+4x0e+4x1o+4x1e+4x2o+4x2e+4x3o+4x3e+4x4o+4x4e", "4x0e+4x1o+4x1e+4x2o+4x2e", "4x5e"),
    ("3x0e+2x1o+1x2e", "2x0e+1x1o+2x2e", "2x0e+3x1o+1x2e+1x1e+2x3o"),  # unequal multiplicities
])
@pytest.mark.parametrize("rows", [2, 64])  # terms summed directly / through the assembled matrix M(w)
def test_fully_connected_equals_e3nn(irreps, rows):
    a, b, c = irreps
    torch.manual_seed(0)
    ref = o3.FullyConnectedTensorProduct(a, b, c)
    torch.manual_seed(0)
    new = FullyConnectedTensorProduct(a, b, c)
    assert new.fused
    # checkpoints load either way: the same parameters; e3nn's generated-code constants (absent here,
    # the code is generated only where it runs) are dropped on load
    generated = "_compiled_main_left_right."
    assert list(new.state_dict()) == [k for k in ref.state_dict() if not k.startswith(generated)]
    new.load_state_dict(ref.state_dict())
    assert not any(name.startswith(generated) for name, _ in new.named_buffers())
    assert torch.equal(new.weight, ref.weight)  # same initialisation from the same seed
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(rows, ref.irreps_in1.dim, generator=gen), torch.randn(rows, ref.irreps_in2.dim, generator=gen)
    _assert_same(ref, new, [x, y], weight_input=False)


def _edge_product(cls):
    """The attention block's 'uvu' product of hidden features with spherical harmonics."""
    from nextham.nn.attention import uvu_paths

    H, SH = o3.Irreps("8x0e+4x1o+4x1e+2x2o+2x2e"), o3.Irreps.spherical_harmonics(2)
    mid, instructions = uvu_paths(H, SH)
    return cls(H, SH, mid, instructions, shared_weights=False, internal_weights=False)


def test_per_edge_weights_equal_e3nn():
    ref, new = _edge_product(o3.TensorProduct), _edge_product(TensorProduct)
    assert new.fused
    gen = torch.Generator().manual_seed(2)
    n = 9
    x = torch.randn(n, ref.irreps_in1.dim, generator=gen)
    y = torch.randn(n, ref.irreps_in2.dim, generator=gen)
    w = torch.randn(n, ref.weight_numel, generator=gen)
    _assert_same(ref, new, [x, y, w], weight_input=True)


def test_modes_outside_the_fused_cases_run_e3nn_code():
    """'uuu' (and 'uvu' with a multiplicity > 1 second input) keep e3nn's forward, same results."""
    args = ("2x1o", "2x1o", "2x1e", [(0, 0, 0, "uuu", True)])
    torch.manual_seed(0)
    ref = o3.TensorProduct(*args)
    torch.manual_seed(0)
    new = TensorProduct(*args)
    assert not new.fused
    x, y = torch.randn(5, 6), torch.randn(5, 6)
    torch.testing.assert_close(new(x, y), ref(x, y), rtol=0, atol=0)
    uvu = TensorProduct("2x1o", "2x0e", "2x1o", [(0, 0, 0, "uvu", True)], shared_weights=False, internal_weights=False)
    assert not uvu.fused


def test_model_fused_equals_e3nn_code():
    """A whole model (built in float32 as the trainer does, run in float64): output, traces and every
    parameter gradient with the fused products equal those of e3nn's code."""
    with torch.device("cpu"):
        torch.set_default_dtype(torch.float32)
        torch.manual_seed(0)
        rec = example_record(spinful=True)
        model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0), rec.basis, rec.spinful, device="cpu")
        for m in model.modules():  # e3nn's code (generated on first need) built here, in float32 as well
            if hasattr(m, "_compile_left_right"):
                m._compile_left_right()
        torch.set_default_dtype(torch.float64)
        model = model.to(torch.float64)
    batch = collate([build_graph(rec, 5.0)])
    fused = [m for m in model.modules() if hasattr(m, "fused")]
    assert fused and all(m.fused for m in fused)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # non-zero readouts, so that every path matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    results = []
    for flag in (False, True):
        for m in fused:
            m.fused = flag
        model.zero_grad()
        out = model(batch)
        target = batch.h_target - batch.h0
        loss = (out.delta - target).abs().pow(2).sum() + out.trace_pred.pow(2).sum()
        loss.backward()
        results.append((out.delta.detach(), out.trace_pred.detach(),
                        [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (d0, t0, g0), (d1, t1, g1) = results
    assert d0.abs().max() > 0
    torch.testing.assert_close(d1, d0, rtol=1e-12, atol=1e-14 * float(d0.abs().max()))
    torch.testing.assert_close(t1, t0, rtol=1e-12, atol=1e-14 * float(t0.abs().max()))
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-13 * max(1.0, float(a.abs().max())))


def _per_path_linear(lin, x):
    """The per-path formula of :class:`IrrepsLinear` (one einsum per pair of chunks), as reference."""
    n = x.shape[0]
    ins = [p.reshape(n, mul, ir.dim) for p, (mul, ir) in zip(torch.split(x, lin.in_sizes, dim=1), lin.irreps_in)]
    bias = dict(zip(lin.bias_slots, lin.biases))
    outs = []
    for k, ((mul, ir), paths) in enumerate(zip(lin.irreps_out, lin.paths)):
        acc = x.new_zeros(n, mul, ir.dim)
        for i, w, norm in paths:
            acc = acc + torch.einsum("nud,uv->nvd", ins[i], lin.weights[w] * norm)
        if k in bias:
            acc = acc + bias[k][None, :, None]
        outs.append(acc.reshape(n, mul * ir.dim))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("biases", [False, True])
def test_irreps_linear_matrix_equals_per_path_formula(biases):
    """One matrix product equals the sum of per-path einsums: output and gradients (input, weights, biases)."""
    from nextham.nn.layers import IrrepsLinear

    torch.manual_seed(0)
    lin = IrrepsLinear("3x0e+2x1o+1x0e+2x2e+1x0o+2x1o", "4x0e+3x1o+1x3o+2x0o+1x2e", biases=biases)
    with torch.no_grad():
        for b in lin.biases:
            b.normal_()
    x = torch.randn(6, lin.irreps_in.dim, requires_grad=True)
    params = [x, *lin.parameters()]
    out, ref = lin(x), _per_path_linear(lin, x)
    torch.testing.assert_close(out, ref, rtol=1e-13, atol=1e-13)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_tracegrad_invariants_equal_the_per_chunk_gram_matrices():
    """Gathered products and one matrix sum equal the per-chunk Gram matrices (upper triangles), and the
    TraceGrad update (first and second derivatives) follows."""
    from nextham.nn.layers import irreps_chunks
    from nextham.nn.tracegrad import TraceGrad

    irreps = o3.Irreps("8x0e+4x1o+4x1e+2x2o+2x2e+1x3o")
    tg = TraceGrad(irreps, 16, 32)

    def per_chunk(f):
        out = []
        for start, mul, d, _ in irreps_chunks(irreps):
            fc = f[:, start:start + mul * d].reshape(-1, mul, d)
            gram = torch.einsum("num,nvm->nuv", fc, fc) / d ** 0.5
            iu = torch.triu_indices(mul, mul)
            out.append(gram[:, iu[0], iu[1]])
        return torch.cat(out, dim=1)

    f = torch.randn(5, irreps.dim, requires_grad=True)
    got, ref = tg.invariants(f), per_chunk(f)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=1e-14)
    g = torch.randn_like(ref)
    (a,) = torch.autograd.grad(got, f, g, create_graph=True)
    (b,) = torch.autograd.grad(ref, f, g, create_graph=True)
    torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    h = torch.randn_like(a)
    torch.testing.assert_close(torch.autograd.grad(a, f, h)[0], torch.autograd.grad(b, f, h)[0], rtol=1e-14, atol=1e-14)
