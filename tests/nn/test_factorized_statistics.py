"""Factorized output statistics (many elements, fallback for unseen elements), float64."""

import numpy as np
import pytest
import torch

from nextham.basis.orbitals import Basis
from nextham.graph import build_graph, collate
from nextham.nn import ModelConfig, NextHAMModel
from nextham.testing import assert_model_equivariant
from nextham.testing.toy import random_record
from nextham.train.loop import _with_aligned_target  # the target the trainer fits the statistics on

CUTOFF = 4.2


def aligned_target(batch):
    return _with_aligned_target(batch)[1]


def _model(basis, spinful):
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", cutoff=CUTOFF, statistics="factorized")
    return NextHAMModel(cfg, basis, spinful, device="cpu").double()


@pytest.mark.parametrize("spinful", [False, True])
def test_factorized_scale_is_the_rms_per_channel_and_pair(spinful):
    train = [random_record(300 + i, spinful=spinful, symbols=("Ga", "As", "As")) for i in range(4)]
    model = _model(train[0].basis, spinful)
    batches = [collate([build_graph(r, CUTOFF)]) for r in train]
    targets = [aligned_target(b) for b in batches]
    info = model.fit_output_statistics(zip(batches, targets))
    st = model.statistics
    assert info["structures"] == 4 and info["max_abs_shift_eV"] == 0.0
    assert float(st.channel_scale.min()) > 0 and float(st.pair_scale.min()) > 0
    # channel x pair reproduces each (class, pair)'s mean square over the instances it has
    for batch, dh in zip(batches, targets):
        x = model.codec.encode(batch, dh, batch.record_index.shape[1], torch.float64)
        k, i, j = st.pair_index(batch)
        scale, shift = st(batch)
        assert float(shift.abs().max()) == 0.0
        torch.testing.assert_close(scale, st.channel_scale[k][:, st.instance] * st.pair_scale[k, i, j][:, None])
    # the untrained model predicts exactly H0 (zero-initialised readout, no shift)
    with torch.no_grad():
        assert float(model(batches[0]).delta.abs().max()) == 0.0


def test_unseen_element_gets_the_fallback_and_stays_equivariant():
    """A model whose basis lacks an element (here: In, with Ga's shells) predicts for it through the
    fallback row, and the prediction is as equivariant as any other."""
    train = [random_record(310 + i, spinful=True, symbols=("Ga", "As")) for i in range(3)]
    model = _model(train[0].basis, True)
    model.fit_output_statistics((b, aligned_target(b)) for b in (collate([build_graph(r, CUTOFF)]) for r in train))
    with torch.no_grad():  # the network must give non-zero dH for the check to mean something
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    st = model.statistics
    S = len(train[0].basis.elements)
    assert int(st.species_of[49]) == S  # In -> the fallback row
    rec = random_record(320, spinful=True, symbols=("Ga", "As"))
    ga = rec.basis["Ga"]
    unseen = rec.replace(numbers=np.where(rec.numbers == 31, 49, rec.numbers),
                         basis=Basis.from_specs({"In": list(ga.ls), "As": list(rec.basis["As"].ls)}))
    batch = collate([build_graph(unseen, CUTOFF)])
    k, i, j = st.pair_index(batch)
    assert bool((i == S).any())
    for c in range(st.n_classes):  # unseen pairs carry the class median of the seen pairs
        row = st.pair_scale[c, S]
        assert torch.allclose(row, row[0].expand_as(row))
    with torch.no_grad():
        assert float(model(batch).delta.abs().max()) > 0
    assert_model_equivariant(model, unseen)


def test_species_pair_statistics_refuse_an_unseen_element():
    rec = random_record(330, spinful=False, symbols=("Ga", "As"))
    torch.manual_seed(0)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=CUTOFF), Basis((rec.basis["As"],)), False,
                         device="cpu").double()
    with pytest.raises(ValueError, match="outside the model's basis"):
        model(collate([build_graph(rec, CUTOFF)]))
