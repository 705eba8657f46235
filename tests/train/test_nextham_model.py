"""The trainer with the equivariant model: one epoch on spinful two-centre records, reload, predict."""

import math

import numpy as np

from nextham.train import TrainConfig, Trainer
from nextham.data.access import ListSource
from nextham.inference import load_trained_model, predict_records
from nextham.testing.equivariance import assert_model_equivariant
from nextham.testing.toy import two_centre_record


def test_one_epoch_with_nextham_model_and_reload(tmp_path):
    recs = [two_centre_record(s, spinful=True) for s in range(3)]
    cfg = TrainConfig.from_dict({
        "data": {"path": str(tmp_path / "ds"), "cutoff": 4.2, "split": {"train": 0.34, "val": 0.33, "test": 0.33}},
        "model": {"kind": "nextham", "preset": "tiny", "overrides": {"cutoff": 4.2, "output_scale": 0.01}},
        "loss": {"reciprocal": {"k_mesh": [2, 2, 2]}},
        "optim": {"epochs": 1, "batch_size": 1},
        "run": {"out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})
    t = Trainer(cfg, source=ListSource(recs, tmp_path / "ds.h5"), log=lambda m: None)
    m = t.fit()
    assert math.isfinite(m["train_loss"]) and "train_loss_trace" in m and math.isfinite(m["val_gauge_mae_meV"])
    trained = load_trained_model(tmp_path / "run" / "model.pt")
    assert trained.checkpoint["spinful"] is True and trained.spinful
    pred = predict_records(trained, [recs[2]])[0]
    assert pred.blocks["H"].dtype == np.complex128 and pred.blocks["H"].shape == recs[2].blocks["H"].shape
    pred.validate(hermitian_tol=1e-6)

    def predict_delta(rec):  # through the same path as `nextham predict`
        return predict_records(trained, [rec])[0].blocks["H"] - rec.blocks["H0"]

    assert_model_equivariant(trained.model, recs[2], predict=predict_delta, rotations=1)
