"""The prepared constant part of the L1 real-space loss equals the sort-based formulas (float64)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nextham.losses import LossConfig, Objective, real_space_loss, weighted_median
from nextham.losses.constant_part import (ConstantPartCache, build_constant_part, constant_penalty,
                                          union_weighted_median)
from nextham.testing.torch_fixtures import float64_single_thread  # noqa: F401 (float64, fast e3nn builds)


class _Record:  # a stand-in record object (the cache compares record identity only)
    pass


def _split(n_fixed: int, n_var: int, gen: torch.Generator, ties: bool):
    """Random ratios/weights of a constant part (A) and a changing part (B), optionally with ties."""
    a = torch.randn(n_fixed, generator=gen, dtype=torch.float64)
    b = torch.randn(n_var, generator=gen, dtype=torch.float64)
    if ties:  # few distinct values, shared between A and B
        a, b = torch.round(2 * a) / 2, torch.round(2 * b) / 2
    wa = torch.rand(n_fixed, generator=gen, dtype=torch.float64) + 0.01
    wb = torch.rand(n_var, generator=gen, dtype=torch.float64) + 0.01
    return a, wa, b, wb


def _part_of(a, wa):
    """A constant part of ratios ``a`` (as ``(a s) / s`` rounds them) with weights ``wa`` (overlap
    ``s = +-wa``); returns the part and the ratios."""
    s = wa * torch.where(torch.arange(len(wa)) % 2 == 0, 1.0, -1.0).to(torch.float64)
    return build_constant_part(a * s, s, torch.zeros(0, dtype=torch.long), _Record()), (a * s) / s


@pytest.mark.parametrize("ties", [False, True])
def test_union_weighted_median_equals_sorting_everything(ties):
    gen = torch.Generator().manual_seed(0)
    for n_fixed, n_var in [(0, 5), (7, 0), (1, 1), (50, 3), (3, 50), (200, 200), (1000, 17), (2, 999)]:
        for _ in range(20):
            a, wa, b, wb = _split(n_fixed, n_var, gen, ties)
            part, a = _part_of(a, wa)
            got = union_weighted_median(part, b, wb)
            ref = weighted_median(torch.cat([a, b]), torch.cat([wa, wb]))
            assert float(got) == float(ref), (n_fixed, n_var, float(got), float(ref))
    assert float(union_weighted_median(_part_of(*_split(0, 0, gen, False)[:2])[0],
                                       torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))) == 0.0


def test_union_median_with_a_dominant_weight_on_either_side():
    part, _ = _part_of(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 10.0, 1.0], dtype=torch.float64))
    b = torch.tensor([-5.0, 5.0], dtype=torch.float64)
    for wb, expected in [([1.0, 1.0], 1.0), ([100.0, 1.0], -5.0), ([1.0, 100.0], 5.0)]:
        assert float(union_weighted_median(part, b, torch.tensor(wb, dtype=torch.float64))) == expected


def test_constant_penalty_equals_the_direct_sum():
    gen = torch.Generator().manual_seed(1)
    n = 300
    s = torch.randn(n, generator=gen, dtype=torch.float64)
    s[::7] = 0.0  # zero overlap (spin off-diagonal positions)
    d = torch.complex(torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(n, generator=gen, dtype=torch.float64))
    part = build_constant_part(d, s.to(d.dtype), torch.zeros(0, dtype=torch.long), _Record())
    for mu in [-3.0, -0.1, 0.0, 0.37, 5.0, float(part.ratio[10])]:
        direct = ((d.real - mu * s).abs() + d.imag.abs()).sum()
        got = constant_penalty(part, torch.tensor(mu, dtype=torch.float64))
        assert abs(float(got) - float(direct)) <= 1e-12 * float(direct)


def _structures(gen, sizes=(400, 250), n_var=(60, 30)):
    """Packed pred/target/h0/overlap of two structures (complex, real overlap with zeros), the model's
    changing positions (batch-global) and pred = h0 elsewhere."""
    K = sum(sizes)
    c = lambda: torch.complex(torch.randn(K, generator=gen, dtype=torch.float64),  # noqa: E731
                              torch.randn(K, generator=gen, dtype=torch.float64))
    h0, target = c(), c()
    s = torch.randn(K, generator=gen, dtype=torch.float64)
    s[::5] = 0.0
    seg = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    variable = torch.cat([seg[n] + torch.randperm(sizes[n], generator=gen)[:n_var[n]] for n in range(len(sizes))])
    delta = torch.zeros(K, dtype=torch.complex128)
    delta[variable] = 0.1 * c()[variable]
    return h0, target, s.to(torch.complex128), seg, variable, delta


def test_real_space_loss_with_constant_parts_equals_the_plain_loss():
    gen = torch.Generator().manual_seed(2)
    h0, target, s, seg, variable, delta = _structures(gen)
    records = [_Record(), _Record()]
    cache = ConstantPartCache()
    for _ in range(3):  # built at step 0, reused afterwards (delta moves only on the variable positions)
        delta = delta.clone()
        delta[variable] += 0.05 * torch.randn(len(variable), generator=gen, dtype=torch.float64)
        d1 = delta.clone().requires_grad_(True)
        d2 = delta.clone().requires_grad_(True)
        ref, mu_ref = real_space_loss(h0 + d1, target, s, seg)
        parts = [cache.get(n, records[n], (h0 + delta)[a:b], target[a:b], h0[a:b], s[a:b],
                           variable[(variable >= a) & (variable < b)] - a)
                 for n, (a, b) in enumerate(zip(seg[:-1], seg[1:]))]
        got, mu = real_space_loss(h0 + d2, target, s, seg, constant_parts=parts)
        assert torch.equal(mu, mu_ref)
        assert abs(float(got.detach() - ref.detach())) <= 1e-14 * float(ref.detach())
        (g1,) = torch.autograd.grad(ref, d1)
        (g2,) = torch.autograd.grad(got, d2)
        # equal where the model acts; the constant elements get no gradient (a model's delta there does
        # not depend on its parameters, so their gradient never reaches them anyway)
        torch.testing.assert_close(g2[variable], g1[variable], rtol=0, atol=1e-15)
        fixed = torch.ones(len(g2), dtype=torch.bool)
        fixed[variable] = False
        assert not g2[fixed].any()
    assert cache.builds == {0: 1, 1: 1}


def test_cache_rebuilds_when_the_constant_elements_change_and_gives_up():
    gen = torch.Generator().manual_seed(3)
    h0, target, s, seg, variable, delta = _structures(gen, sizes=(300,), n_var=(40,))
    rec, cache = _Record(), ConstantPartCache(max_builds=2)
    pred = h0 + delta
    p1 = cache.get(0, rec, pred, target, h0, s, variable)
    assert cache.get(0, rec, pred, target, h0, s, variable) is p1
    moved = pred.clone()
    fixed = torch.ones(300, dtype=torch.bool)
    fixed[variable] = False
    moved[torch.nonzero(fixed)[0]] += 1e-12  # a model that changes a "constant" element
    p2 = cache.get(0, rec, moved, target, h0, s, variable)
    assert p2 is not p1 and 0 not in cache.parts  # built for this step, not kept
    ref, mu_ref = real_space_loss(moved, target, s, seg)
    got, mu = real_space_loss(moved, target, s, seg, constant_parts=[p2])
    assert torch.equal(mu, mu_ref) and abs(float(got - ref)) <= 1e-14 * float(ref)
    assert cache.get(0, _Record(), pred, target, h0, s, variable) is None  # third build: left to the plain loss


def test_objective_with_the_model_equals_the_plain_objective():
    """Trainer path: NextHAM model output (variable_index) through the objective, twice (the second
    step reuses the cached part), against the same output without variable_index."""
    from nextham.graph import build_graph, collate
    from nextham.nn import ModelConfig, NextHAMModel
    from nextham.testing.equivariance import example_record

    torch.manual_seed(0)
    rec = example_record(spinful=True)
    model = NextHAMModel(ModelConfig.preset("tiny", cutoff=5.0, distance_windows=[[0.0, 3.0]]), rec.basis, True,
                         device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate([build_graph(rec, 5.0, output_radius=model.output_radius)])
    assert 0 < len(batch.pair_flat) < len(batch.h0)
    cfg = LossConfig.model_validate({"reciprocal": {"enabled": False}})  # the k-space part is not at stake
    fast, plain = Objective(cfg, seed=0), Objective(cfg, seed=0)
    for step in range(2):
        results = []
        for objective, keep in ((fast, True), (plain, False)):
            model.zero_grad()
            out = model(batch)
            if not keep:
                out = dataclasses.replace(out, variable_index=None)
            res = objective(out.hamiltonian, batch, [0], epoch=step, output=out)
            res.total.backward()
            results.append((res, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
        (r1, g1), (r2, g2) = results
        assert r1.mu == r2.mu
        for k in r2.parts:
            assert abs(r1.parts[k] - r2.parts[k]) <= 1e-13 * abs(r2.parts[k]), k
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-15)
    assert fast.constant_parts.builds == {0: 1} and not plain.constant_parts.builds
