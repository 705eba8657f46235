"""The predicted dH transforms exactly as the target: E(3) (+ SU(2) for spin), permutations, periodic images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nextham.basis.rotations import random_orthogonal
from nextham.graph import build_graph, collate
from nextham.nn import ModelConfig, NextHAMModel
from nextham.testing.equivariance import (example_record, permute_atoms, rotate_blocks, rotate_record, shift_image,
                                          translate_record)

TOL = 1e-10
CASES = [("si", False), ("si", True), ("gaas", False), ("gaas", True)]


def predict(model, rec) -> np.ndarray:
    with torch.no_grad():
        return model(collate([build_graph(rec, model.config.cutoff)])).delta.numpy()


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


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
def test_rotation_and_inversion(models, kind, spinful):
    model, rec = models[kind, spinful]
    d = predict(model, rec)
    assert np.max(np.abs(d)) > 1e-3
    rng = np.random.default_rng(7)
    for Q in [random_orthogonal(rng, improper=False), random_orthogonal(rng, improper=True), -np.eye(3)]:
        got = predict(model, rotate_record(rec, Q))
        want = rotate_blocks(rec, Q, d, "H")
        assert rel_err(got, want) < TOL, (Q, rel_err(got, want))


@pytest.mark.parametrize("kind,spinful", CASES[:3])
def test_translation_permutation_images(models, kind, spinful):
    model, rec = models[kind, spinful]
    d = predict(model, rec)
    assert rel_err(predict(model, translate_record(rec, [0.3, -1.7, 2.2])), d) < TOL
    perm = np.arange(rec.n_atoms)[::-1].copy()
    assert rel_err(predict(model, permute_atoms(rec, perm)), d) < TOL
    assert rel_err(predict(model, shift_image(rec, 1, np.array([1, -2, 0]))), d) < TOL


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
    from nextham.blocks.record import hermitian_error
    assert hermitian_error(pred, "H") < 1e-12
