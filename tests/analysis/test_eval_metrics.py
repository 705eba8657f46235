"""Evaluation metrics and the evaluate driver (toy model on synthetic records)."""

import json

import numpy as np
import pytest

from nextham.analysis.metrics import (BandErrors, HamiltonianErrors, element_categories, ghost_states,
                                      ratio_table, residual)
from nextham.blocks.h5io import write_record
from nextham.blocks.ops import spinful_overlap
from nextham.testing.toy import random_record


@pytest.mark.parametrize("spinful", [False, True])
def test_categories_partition_and_gauge_invariance(spinful):
    rec = random_record(1, spinful=spinful)
    cats = element_categories(rec)
    nnz = rec.blocks["H"].size
    for kind in ("spin", "distance", "element"):
        total = sum(m.astype(int) for m in cats[kind].values())
        assert np.all(total == 1), kind
    if spinful:
        assert set(cats["spin"]) == {"uu", "ud", "du", "dd"}
        assert all(m.sum() == nnz // 4 for m in cats["spin"].values())
    shifted = rec.with_blocks(H=rec.blocks["H"] + 0.8 * spinful_overlap(rec))
    r, mu = residual(shifted, rec)
    assert abs(mu - 0.8) < 1e-12 and np.abs(r).max() < 1e-12
    acc = HamiltonianErrors()
    acc.add(shifted, rec)
    acc0 = HamiltonianErrors()
    acc0.add(rec, rec, "H0")
    res, res0 = acc.result(), acc0.result()
    assert res["gauge"]["mae_meV"] < 1e-9 and res0["gauge"]["mae_meV"] > 1
    assert ratio_table(res, res0)["gauge"] < 1e-9


def test_ghost_states():
    ref = np.array([[-1.0, 0.0, 1.0]])
    assert ghost_states(ref, ref, 0.0) == (0, 3)
    assert ghost_states(np.array([[-1.0, 0.5, 1.0]]), ref, 0.0) == (1, 3)
    assert ghost_states(np.array([[-1.0, 0.05, 9.0]]), ref, 0.0, window=3.0) == (0, 2)
    b = BandErrors()
    b.add(ref + 0.01, ref, 0.0)
    assert b.result()["band_mae_meV_pm1eV"] == pytest.approx(10.0)


def test_evaluate_end_to_end(tmp_path):
    from nextham.analysis.evaluate import evaluate, summary_lines
    from nextham.train import TrainConfig, Trainer

    data = tmp_path / "data"
    for i in range(5):
        write_record(data / f"s{i:03d}.h5", random_record(300 + i, spinful=True))
    cfg = TrainConfig.from_dict({"data": {"path": str(data), "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
                                 "model": {"kind": "toy"}, "optim": {"epochs": 1, "batch_size": 1},
                                 "run": {"out_dir": str(tmp_path / "run"), "dtype": "float64", "progress": False}})
    Trainer(cfg, log=lambda m: None).fit()
    rep = evaluate(data, tmp_path / "run" / "model.pt", tmp_path / "report", split="test", k_mesh=(2, 2, 2),
                   band_plots=1, log=lambda m: None)
    assert rep["n_structures"] == 1
    assert json.loads((tmp_path / "report" / "report.json").read_text())["h0"]["gauge"]["mae_meV"] > 0
    for name in ("error_by_element.png", "parity.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    assert list((tmp_path / "report").glob("bands_*.png"))
    assert rep["timing"]["n_timed"] == 1 and rep["bands"]["model"]["ghost_checked_eigenvalues"] > 0
    assert any("gauge MAE" in l for l in summary_lines(rep))
