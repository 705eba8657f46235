"""A tiny NextHAM model overfits one structure to below 0.1 meV gauge MAE (slow: about a minute on 2 cores).

What makes it converge (measured, 400 epochs, float64): the readout starts at zero (the model default
``zero_init_output``), so training starts exactly at H0 and ``output_scale`` can stay at its default
1 eV per unit. With ``output_scale=0.01`` the ~90 meV on-site corrections need network outputs ~10 and
training crawls (MSE: 0.17 meV at best over peak lr 3e-3..3e-2, L1: 2.6 meV). At ``output_scale=1`` MSE still
stalls at ~0.08 meV (its gradient fades with the error, and the cosine decay ends the run), while L1
optimises the reported MAE directly and settles to ~0.01 meV as the learning rate decays.
"""

import time

import pytest

from nextham.testing.equivariance import assert_model_equivariant
from nextham.train import TrainConfig, Trainer
from nextham.data.access import ListSource
from nextham.testing.toy import two_centre_record


@pytest.mark.slow
def test_tiny_model_overfits_one_structure(tmp_path):
    rec = two_centre_record(0, spinful=False)  # H0 is ~8 meV (gauge MAE) away from H
    cfg = TrainConfig.from_dict({
        "data": {"path": str(tmp_path / "ds"), "cutoff": 4.2, "split": {"train": 1.0, "val": 0.0, "test": 0.0}},
        "model": {"kind": "nextham", "preset": "tiny", "overrides": {"cutoff": 4.2}},
        "loss": {"kind": "l1", "reciprocal": {"k_mesh": [2, 2, 2]}, "trace": {"enabled": False}},
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
    # the trainer builds every model under a float32 default dtype and casts it (same weights in every
    # process), so e3nn's Clebsch-Gordan constants carry float32 rounding: ~1e-9 relative in float64
    assert_model_equivariant(trainer.model, rec, rotations=1, rtol=1e-8)
