"""The predicted dH transforms exactly as the target: E(3) (+ SU(2) for spin), permutations, periodic images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nextham.blocks.record import hermitian_error
from nextham.graph import build_graph, collate
from nextham.nn import ModelConfig, NextHAMModel
from nextham.testing.equivariance import assert_model_equivariant, example_record

CASES = [("si", False), ("si", True), ("gaas", False), ("gaas", True)]


@pytest.fixture(scope="module")
def models():
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", cutoff=5.0, zero_init_output=False)
    out = {}
    for kind, spinful in CASES:
        rec = example_record(kind, spinful)
        out[kind, spinful] = (NextHAMModel(cfg, rec.basis, spinful, device="cpu"), rec)
    return out


@pytest.mark.parametrize("kind,spinful", CASES)
def test_full_equivariance(models, kind, spinful):
    model, rec = models[kind, spinful]
    errors = assert_model_equivariant(model, rec, seed=7)
    assert {"inversion", "improper rotation 0", "atom permutation", "periodic images", "translation"} <= set(errors)


def test_the_check_fails_for_a_model_that_is_not_equivariant(models):
    """A perturbation that breaks rotation symmetry (a fixed Cartesian direction enters the geometry)
    is caught, and a model that predicts zero is refused rather than passed."""
    model, rec = models["si", True]

    def skewed(r):
        return model_delta(model, r.replace(positions=r.positions + np.array([0.0, 0.0, 0.02]) * r.positions[:, :1]))

    with pytest.raises(AssertionError, match="not equivariant.*rotation 0"):
        assert_model_equivariant(model, rec, predict=skewed, permutations=False, images=False, translations=False)
    with pytest.raises(AssertionError, match="predicts zero"):
        assert_model_equivariant(model, rec, predict=lambda r: np.zeros(len(r.blocks["H0"])))


def model_delta(model, rec) -> np.ndarray:
    with torch.no_grad():
        return model(collate([build_graph(rec, model.config.cutoff)])).delta.numpy()


def test_two_centre_h0_exact_zero_chunks():
    """Irreps that are zero in exact arithmetic (the 0o, 1e, 2o, 3e parts of a spinful two-centre H0, and
    hidden chunks fed only by them) hold rounding noise; the layer norm must not amplify it (it did, to
    O(1) in float32, when it divided each chunk by its own norm)."""
    from nextham.testing.toy import two_centre_record

    torch.manual_seed(0)
    rec = two_centre_record(2, spinful=True)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=4.2, zero_init_output=False), rec.basis, True, device="cpu")
    assert_model_equivariant(model, rec, rotations=1)


@pytest.mark.parametrize("kind,spinful", CASES)
def test_exact_hermiticity(models, kind, spinful):
    model, rec = models[kind, spinful]
    batch = collate([build_graph(rec, model.config.cutoff)])
    with torch.no_grad():
        out = model(batch)
    d = out.delta
    assert d.is_complex() == spinful
    assert torch.equal(d, d[batch.conj_index].conj())
    pred = rec.with_blocks(H=out.hamiltonian.numpy())
    assert hermitian_error(pred, "H") < 1e-12
