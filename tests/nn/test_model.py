"""Model API, config, ablations, TraceGrad, gradients, batching, trace targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from pydantic import ValidationError

from nextham.basis.irreps import e3nn_rotation
from nextham.basis.rotations import random_orthogonal
from nextham.blocks.record import hermitian_error
from nextham.graph import build_graph, collate
from nextham.nn import ModelConfig, NextHAMModel, predict_record
from nextham.nn.tracegrad import TraceGrad
from nextham.testing.equivariance import assert_model_equivariant, example_record


def batch_of(*recs, cutoff=5.0):
    return collate([build_graph(r, cutoff) for r in recs])


def test_config_presets_and_strictness():
    tiny = ModelConfig.preset("tiny")
    paper = ModelConfig.preset("paper")
    assert paper.num_blocks == 4 and paper.num_heads == 4 and paper.sh_lmax == 5 and paper.num_rbf == 64
    assert paper.cutoff == 8.0
    assert o3.Irreps(paper.hidden_irreps) == o3.Irreps("32x0e+16x1o+16x1e+8x2e+8x2o+8x3e+8x3o+8x4e").sort().irreps.simplify()
    assert ModelConfig.preset("small", num_blocks=1).num_blocks == 1
    with pytest.raises(ValidationError):
        ModelConfig.preset("tiny", num_layers=3)  # unknown key
    with pytest.raises(ValidationError):
        ModelConfig.model_validate({**tiny.model_dump(), "bogus": 1})
    with pytest.raises(ValueError):
        ModelConfig.preset("huge")
    with pytest.raises(ValidationError):
        ModelConfig.preset("tiny", hidden_irreps="4x1o")  # no scalars
    assert ModelConfig.model_validate(tiny.model_dump()) == tiny


@pytest.fixture(scope="module")
def si():
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(1)
    rec = example_record("si", seed=4)
    return NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False), rec.basis, False, device="cpu"), rec


def test_untrained_model_starts_at_h0():
    """With the default zero-initialised output layer an untrained model predicts exactly H0."""
    torch.set_default_dtype(torch.float64)
    rec = example_record("si", seed=4)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0), rec.basis, False, device="cpu")
    out = model(batch_of(rec))
    assert torch.count_nonzero(out.delta) == 0
    loss = (out.hamiltonian - batch_of(rec).h_target).abs().sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert grads, "the zero-initialised readout must still receive gradients"


def test_output_contract(si):
    model, rec = si
    assert model.num_parameters() > 0 and "parameters" in model.summary()
    batch = batch_of(rec)
    out = model(batch)
    assert out.delta.shape == batch.h0.shape and out.delta.dtype == torch.float64
    assert torch.equal(out.hamiltonian, batch.h0 + out.delta)
    assert out.trace_pred.shape == out.trace_target.shape == out.trace_edge.shape
    # trace target = sum |H - H0|^2 per shell pair; they add up to the whole |dH|^2
    dH = batch.h_target - batch.h0
    assert torch.allclose(out.trace_target.sum(), dH.pow(2).sum())
    assert torch.equal(model.shell_pair_traces(batch, dH), out.trace_target)
    e0 = int(out.trace_edge[0])
    blk = torch.from_numpy(rec.block("H", e0) - rec.block("H0", e0))
    np.testing.assert_allclose(out.trace_target[out.trace_edge == e0].sum().item(), blk.pow(2).sum().item())
    pred = predict_record(model, rec)
    assert pred is not rec and pred.blocks["H0"] is rec.blocks["H0"]
    np.testing.assert_allclose(pred.blocks["H"], out.hamiltonian.detach().numpy(), atol=1e-12)
    assert hermitian_error(pred, "H") < 1e-12
    assert_model_equivariant(model, rec)


def test_batch_equals_single_structures():
    torch.manual_seed(2)
    recs = [example_record("gaas", seed=5), example_record("si", seed=6)]
    basis = recs[0].basis.merged(recs[1].basis)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False), basis, False, device="cpu")
    with torch.no_grad():
        both = model(batch_of(*recs))
        for k, r in enumerate(recs):
            single = model(batch_of(r))
            b = batch_of(*recs)
            assert torch.allclose(b.segment(both.delta, k), single.delta, atol=1e-12)
    assert_model_equivariant(model, recs[1], rotations=1)  # Si through a layout padded for Ga's f shell


def test_tracegrad_gradient_equivariant():
    torch.manual_seed(3)
    irreps = o3.Irreps("6x0e+3x1o+3x1e+2x2e+2x2o")
    tg = TraceGrad(irreps, z_dim=8, hidden=16)
    f = irreps.randn(7, -1)
    rng = np.random.default_rng(8)
    for improper in (False, True):
        D = irreps.D_from_matrix(torch.tensor(e3nn_rotation(random_orthogonal(rng, improper=improper))))
        v, vr = tg.gradient(f), tg.gradient(f @ D.T)
        assert torch.allclose(vr, v @ D.T, atol=1e-12)
        (fn, z), (fnr, zr) = tg(f), tg(f @ D.T)
        assert torch.allclose(fnr, fn @ D.T, atol=1e-12) and torch.allclose(zr, z, atol=1e-12)
        assert not torch.allclose(fn, f)


ABLATIONS = [
    dict(tracegrad=False),
    dict(tracegrad=False, trace_head=False),
    dict(input="element"),
    dict(input="h0+element"),
    dict(edge_updates=False),
    dict(envelope_gamma=0.3),
    dict(distance_windows=[(0.0, 1.0), (1.0, 3.0), (3.0, 4.0)]),
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_ablations_build_run_and_stay_equivariant(overrides):
    torch.manual_seed(4)
    rec = example_record("si", spinful=True, seed=7)
    cfg = ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False, num_blocks=1, **overrides)
    model = NextHAMModel(cfg, rec.basis, True, device="cpu")
    out = model(batch_of(rec))
    loss = out.delta.abs().pow(2).sum() + (0 if out.trace_pred is None else out.trace_pred.sum())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad) or overrides.get("input") == "element"
    assert (out.trace_pred is None) == (not cfg.trace_head)
    assert_model_equivariant(model, rec, seed=9, rotations=1)
    with torch.no_grad():
        d = model(batch_of(rec)).delta.numpy()
    if cfg.distance_windows:
        far = np.repeat(rec.edge_lengths >= 4.0, np.diff(rec.block_offsets("H")))
        assert np.all(d[far] == 0)  # beyond every window dH = 0 (keep H0)


def test_gradients_match_finite_differences(si):
    """Directional derivative of a loss w.r.t. all parameters, and gradcheck on two parameter tensors."""
    model, rec = si
    batch = batch_of(rec)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}

    def loss_of(p):
        out = torch.func.functional_call(model, p, (batch,))
        return (out.delta - (batch.h_target - batch.h0)).pow(2).sum() + 1e-3 * out.trace_pred.pow(2).sum()

    gen = torch.Generator().manual_seed(0)
    direction = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    grads = torch.autograd.grad(loss_of(p), list(p.values()))
    analytic = sum((g * direction[k]).sum() for g, k in zip(grads, p))
    eps = 1e-5
    with torch.no_grad():
        plus = loss_of({k: v + eps * direction[k] for k, v in params.items()})
        minus = loss_of({k: v - eps * direction[k] for k, v in params.items()})
    numeric = (plus - minus) / (2 * eps)
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)

    name = "cores.0.blocks.0.attn_dot"  # through the attention softmax and both TraceGrad updates

    def f(a):
        return loss_of({**params, name: a})

    assert torch.autograd.gradcheck(f, (params[name].clone().requires_grad_(True),), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_float32_and_complex64():
    torch.set_default_dtype(torch.float32)
    try:
        rec = example_record("si", spinful=True, seed=8)
        model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False, num_blocks=1), rec.basis, True, device="cpu")
        out = model(batch_of(rec))
        assert out.delta.dtype == torch.complex64 and out.hamiltonian.dtype == torch.complex128
        assert torch.isfinite(out.delta.abs()).all()
        errors = assert_model_equivariant(model, rec, rotations=1)  # float32 tolerance
        assert max(errors.values()) > 1e-9  # float32 rounding is visible: the float32 path really ran
    finally:
        torch.set_default_dtype(torch.float64)


def test_basis_mismatch_is_rejected(si):
    model, _ = si
    with pytest.raises(Exception, match="Ga|basis"):
        model(batch_of(example_record("gaas")))


def test_spinful_every_part_is_predicted():
    """Spin-off-diagonal blocks and imaginary parts are outputs of the network, not copies of H0."""
    torch.manual_seed(5)
    rec = example_record("gaas", spinful=True, seed=9)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False, num_blocks=1), rec.basis, True, device="cpu")
    with torch.no_grad():
        d = model(batch_of(rec)).delta.numpy()
    pred = rec.with_blocks(H=d)
    for e in [int(np.flatnonzero(rec.onsite_mask)[0]), int(np.flatnonzero(~rec.onsite_mask)[0])]:
        B = pred.block("H", e)
        n_i, n_j = B.shape[0] // 2, B.shape[1] // 2
        for s1 in range(2):
            for s2 in range(2):
                sub = B[s1 * n_i:(s1 + 1) * n_i, s2 * n_j:(s2 + 1) * n_j]
                assert np.abs(sub.real).max() > 1e-4 and np.abs(sub.imag).max() > 1e-4


def test_metadata_round_trip(si):
    model, rec = si
    clone = NextHAMModel.from_metadata(model.metadata(), device="cpu")
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(clone(batch_of(rec)).delta, model(batch_of(rec)).delta)


def test_blocks_beyond_the_output_radius_stay_h0_and_cost_nothing():
    """dH = 0 and H = H0 exactly on record edges beyond the model's cutoff; inside, the prediction is the
    same as for the record cut to the cutoff (far blocks neither enter features nor messages)."""
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(3)
    rec = example_record("gaas", seed=5, cutoff=7.0)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=4.0, zero_init_output=False), rec.basis, False, device="cpu")
    out = model(batch_of(rec, cutoff=4.0))
    far = np.repeat(rec.edge_lengths > 4.0 + 1e-9, np.diff(rec.block_offsets("H0")))
    assert far.any() and (~far).any()
    assert torch.count_nonzero(out.delta[torch.from_numpy(far)]) == 0
    assert torch.equal(out.hamiltonian[torch.from_numpy(far)], torch.from_numpy(rec.blocks["H0"][far]))
    assert out.delta[torch.from_numpy(~far)].abs().max() > 1e-6
    keep = rec.edge_lengths <= 4.0 + 1e-9
    off = rec.block_offsets("H0")
    elements = np.repeat(keep, np.diff(off))
    cut = rec.replace(edge_index=rec.edge_index[keep], edge_R=rec.edge_R[keep],
                      blocks={n: rec.blocks[n][np.repeat(keep, np.diff(rec.block_offsets(n)))] for n in rec.blocks})
    out_cut = model(batch_of(cut, cutoff=4.0))
    torch.testing.assert_close(out.delta[torch.from_numpy(elements)], out_cut.delta, rtol=1e-12, atol=1e-12)
