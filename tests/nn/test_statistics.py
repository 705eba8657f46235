"""Statistics-based output scale and shift (nextham.nn.readout.OutputStatistics), float64."""

import pytest
import torch

from nextham.graph import build_graph, collate
from nextham.losses import overlap_like_h, packed_layout
from nextham.losses.gauge import gauge_shift
from nextham.nn import ModelConfig, NextHAMModel
from nextham.testing import assert_model_equivariant
from nextham.testing.toy import random_record

CUTOFF = 4.2


def _aligned_target(batch):
    rec = batch.records[0]
    s_h = overlap_like_h(packed_layout(rec), batch.overlap).to(batch.h0.dtype)
    mu = gauge_shift(batch.h0 - batch.h_target, s_h, "lsq")
    return batch.h_target + mu * s_h - batch.h0


def _group_means(model, batches, values):
    """Mean over output edges of each (distance class, species i, species j) of the padded irreps of ``values``."""
    st = model.statistics
    C, S, dim = st.n_classes, st.scale.shape[1], st.scale.shape[3]
    sums = torch.zeros(C * S * S, dim, dtype=torch.float64)
    n = torch.zeros(C * S * S, dtype=torch.float64)
    for batch, v in zip(batches, values):
        x = model.codec.encode(batch, v, batch.record_index.shape[1], torch.float64)
        k, i, j = st.pair_index(batch)
        g = (k * S + i) * S + j
        sums.index_add_(0, g, x)
        n.index_add_(0, g, torch.ones_like(g, dtype=torch.float64))
    return sums / n.clamp_min(1)[:, None], n


@pytest.mark.parametrize("spinful", [False, True])
def test_statistics_init_reproduces_the_training_mean_per_irrep(spinful):
    torch.manual_seed(0)
    train = [random_record(200 + i, spinful=spinful, symbols=("Ga", "As", "As")) for i in range(4)]
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=CUTOFF), train[0].basis, spinful, device="cpu").double()
    batches = [collate([build_graph(r, CUTOFF)]) for r in train]
    with torch.no_grad():
        before = [model(b).delta for b in batches]
    assert all(float(d.abs().max()) == 0.0 for d in before)  # zero-initialised readout, no shift yet
    info = model.fit_output_statistics((b, _aligned_target(b)) for b in batches)
    assert info["structures"] == 4 and info["max_abs_shift_eV"] > 0
    with torch.no_grad():
        pred = [model(b).delta for b in batches]
    want, n = _group_means(model, batches, [_aligned_target(b) for b in batches])
    got, _ = _group_means(model, batches, pred)
    scalar = model.statistics.shifted
    seen = n > 0
    # the invariant (0e) channels: the prediction's mean is the training mean of the aligned dH
    torch.testing.assert_close(got[seen][:, scalar], want[seen][:, scalar], rtol=1e-10, atol=1e-12)
    assert float(want[seen][:, scalar].abs().max()) > 1e-3
    # every other channel starts at zero (no shift may break equivariance)
    assert float(got[:, ~scalar].abs().max()) < 1e-12
    # scales: root mean square of dH - shift per irreps instance, positive everywhere
    sc = model.statistics.scale
    assert bool((sc > 1e-9 * sc.max()).all())


def test_fitted_statistics_keep_exact_equivariance_and_reload():
    torch.manual_seed(0)
    train = [random_record(300 + i, spinful=True) for i in range(3)]
    cfg = ModelConfig.preset("tiny", cutoff=CUTOFF, zero_init_output=False)
    model = NextHAMModel(cfg, train[0].basis, True, device="cpu").double()
    model.fit_output_statistics((b, _aligned_target(b)) for b in (collate([build_graph(r, CUTOFF)]) for r in train))
    assert float((model.statistics.scale - 1).abs().max()) > 0.5
    assert_model_equivariant(model, train[0], rotations=1)
    # the fitted buffers travel in the state dict; an old state dict without them loads as the identity
    fresh = NextHAMModel(cfg, train[0].basis, True, device="cpu").double()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.statistics.shift, model.statistics.shift)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("statistics.")}
    fresh.load_state_dict(old)
    assert float(fresh.statistics.scale.min()) == 1.0 and float(fresh.statistics.shift.abs().max()) == 0.0


def test_distance_classes_and_old_checkpoints():
    """Edges fall in on-site and distance classes by |r_ij|; several classes hold data in a toy record;
    a state dict of the former two-class statistics (0 off-site, 1 on-site) loads with every off-site
    class taking the off-site values."""
    torch.manual_seed(0)
    rec = random_record(400, spinful=False, symbols=("Ga", "As", "As"))
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=CUTOFF), rec.basis, False, device="cpu").double()
    batch = collate([build_graph(rec, CUTOFF)])
    st = model.statistics
    k, _, _ = st.pair_index(batch)
    assert bool((k[batch.record_onsite] == 0).all()) and bool((k[~batch.record_onsite] >= 1).all())
    length = batch.record_length[~batch.record_onsite]
    kk = k[~batch.record_onsite]
    for c, (lo, hi) in enumerate(zip((0.0, *st.distance_bins.tolist()), (*st.distance_bins.tolist(), 1e9)), start=1):
        assert bool(((length >= lo) & (length < hi))[kk == c].all())
    assert len(torch.unique(k)) >= 3
    two = {"statistics.scale": torch.stack([torch.full_like(st.scale[0], 2.0), torch.full_like(st.scale[0], 5.0)]),
           "statistics.shift": torch.zeros(2, *st.shift.shape[1:], dtype=st.shift.dtype)}
    state = {**model.state_dict(), **two}
    model.load_state_dict(state)
    assert float(st.scale[0].min()) == 5.0 and float(st.scale[1:].max()) == 2.0 == float(st.scale[1:].min())
