"""Irreps contracts are checked when a model is built; IrrepsLinear is e3nn's Linear."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3
from torch import nn

import nextham.nn.model as model_module
from nextham.nn import ModelConfig, NextHAMModel
from nextham.nn.attention import TransformerBlock
from nextham.nn.contracts import IrrepsMismatchError, check_chain, check_declarations, stage
from nextham.nn.layers import EquivariantLayerNorm, GatedFFN, IrrepsLinear
from nextham.nn.readout import ProductReadout
from nextham.testing.equivariance import example_record

CONFIG = ModelConfig.preset("tiny", cutoff=5.0, num_blocks=2)


def test_every_nn_module_declares_irreps_and_the_model_passes_its_checks():
    rec = example_record("gaas", spinful=True)
    model = NextHAMModel(CONFIG, rec.basis, True, device="cpu")
    declared = [name for name, m in model.named_modules() if type(m).__module__.startswith("nextham.nn")]
    assert {"", "codec", "cores.0", "cores.0.blocks.1", "cores.0.tg_edge.0", "cores.0.readout_node",
            "cores.0.blocks.0.ffn_node", "cores.0.blocks.0.norm_edge", "rbf"} <= set(declared)
    for name in declared:
        m = model.get_submodule(name)
        assert isinstance(m.irreps_in, o3.Irreps) and isinstance(m.irreps_out, o3.Irreps), name
    assert model.irreps_out == o3.Irreps(model.layout.irreps_string)
    model.check_irreps()


def test_mismatched_block_fails_when_the_model_is_built(monkeypatch):
    """The second Transformer block is built with other hidden irreps: the build raises naming it."""
    built = []

    def block(hidden, *args, **kwargs):
        built.append(hidden)
        if len(built) == 2:
            hidden = "8x0e+4x1o+4x1e+2x2e"  # one 2o chunk short
        return TransformerBlock(hidden, *args, **kwargs)

    monkeypatch.setattr(model_module, "TransformerBlock", block)
    rec = example_record("si")
    message = r"module 'blocks\.1' declares irreps_in 8x0e\+4x1o\+4x1e\+2x2e but receives .* from 'tg_node\.0'"
    with pytest.raises(IrrepsMismatchError, match=message):
        NextHAMModel(CONFIG, rec.basis, False, device="cpu")


def test_module_replaced_after_build_is_caught_with_its_path():
    rec = example_record("si")
    model = NextHAMModel(CONFIG, rec.basis, False, device="cpu")
    model.cores[0].tg_node[1] = EquivariantLayerNorm("8x0e+4x1o")  # wrong irreps, right role
    with pytest.raises(IrrepsMismatchError, match=r"cores\.0: .*'tg_node\.1'.*receives"):
        model.check_irreps()
    model = NextHAMModel(CONFIG, rec.basis, False, device="cpu")
    model.cores[0].readout_edge = ProductReadout(CONFIG.hidden_irreps, "4x0e+2x1o", mul=2)
    with pytest.raises(IrrepsMismatchError, match=r"'readout_edge' declares irreps_out 4x0e\+2x1o"):
        model.check_irreps()


def test_inner_chains_and_undeclared_modules():
    with pytest.raises(IrrepsMismatchError, match=r"GatedFFN: module 'lin2'"):
        ffn = GatedFFN("4x0e+2x1o")
        ffn.lin2 = IrrepsLinear("4x0e+2x1e", "4x0e+2x1o")
        check_chain("GatedFFN", [stage("lin1", ffn.lin1), stage("gate", ffn.gate), stage("lin2", ffn.lin2)],
                    ffn.irreps_in, ffn.irreps_out)

    class Undeclared(nn.Module):  # a new layer that forgot its contract
        pass

    Undeclared.__module__ = "nextham.nn.new_layer"
    holder = nn.Module()
    holder.layer = Undeclared()
    with pytest.raises(IrrepsMismatchError, match=r"'layer' \(Undeclared\) declares no irreps_in or irreps_out"):
        check_declarations(holder)


@pytest.mark.parametrize("biases", [False, True])
def test_irreps_linear_equals_e3nn_linear_on_copied_weights(biases):
    """Same function and normalisation as ``e3nn.o3.Linear``, including repeated input irreps, an output
    irrep with no input (zeros) and odd scalars (no bias)."""
    torch.manual_seed(0)
    irreps_in = o3.Irreps("3x0e+2x1o+1x0e+2x2e+1x0o+2x1o")
    irreps_out = o3.Irreps("4x0e+3x1o+1x3o+2x0o+1x2e")
    ours = IrrepsLinear(irreps_in, irreps_out, biases=biases)
    ref = o3.Linear(irreps_in, irreps_out, biases=biases)
    with torch.no_grad():
        for w in ours.weights:
            w.normal_()
        for b in ours.biases:
            b.normal_()
        offset = 0
        for ins in ref.instructions:
            if ins.i_in < 0:  # bias instructions carry their own parameter
                continue
            (path,) = [w for i, w, _ in ours.paths[ins.i_out] if i == ins.i_in]
            n = math.prod(ins.path_shape)
            ref.weight[offset:offset + n] = ours.weights[path].reshape(-1)
            offset += n
        assert offset == ref.weight.numel()
        if biases:
            assert ref.bias.numel() == sum(b.numel() for b in ours.biases)
            ref.bias.copy_(torch.cat(list(ours.biases)))
    x = irreps_in.randn(11, -1)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours(x)[:, irreps_out.slices()[2]], torch.zeros(11, 7, dtype=x.dtype))
