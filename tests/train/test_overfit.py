"""A tiny NextHAM model overfits one structure to below 0.1 meV gauge MAE (slow: minutes on 2 cores)."""

import time

import pytest

from nextham.train import TrainConfig, Trainer
from nextham.train.data import ListSource
from nextham.train.toy import two_centre_record


@pytest.mark.slow
def test_tiny_model_overfits_one_structure(tmp_path):
    rec = two_centre_record(0, spinful=False)  # H0 is ~8 meV (gauge MAE) away from H
    cfg = TrainConfig.from_dict({
        "data": {"path": str(tmp_path / "ds"), "cutoff": 4.2, "split": {"train": 1.0, "val": 0.0, "test": 0.0}},
        "model": {"kind": "nextham", "preset": "tiny", "overrides": {"cutoff": 4.2, "output_scale": 0.01}},
        "loss": {"kind": "mse", "reciprocal": {"k_mesh": [2, 2, 2]}, "trace": {"enabled": False}},
        "optim": {"epochs": 400, "batch_size": 1, "lr": 1e-2, "min_lr": 1e-6, "warmup_epochs": 10},
        "run": {"out_dir": str(tmp_path / "run"), "dtype": "float64", "progress": False,
                "checkpoint_every": 10000, "tensorboard": False, "val_every": 50}})
    t0 = time.perf_counter()
    trainer = Trainer(cfg, source=ListSource([rec], tmp_path / "ds.h5"), log=lambda m: None)
    trainer.split["val"] = [0]  # report the gauge MAE of the training structure itself
    m = trainer.fit()
    print(f"overfit: {m['val_gauge_mae_meV']:.4f} meV (H0 {m['val_h0_gauge_mae_meV']:.3f} meV) "
          f"in {time.perf_counter() - t0:.0f} s")
    assert m["val_h0_gauge_mae_meV"] > 5
    assert m["val_gauge_mae_meV"] < 0.1
