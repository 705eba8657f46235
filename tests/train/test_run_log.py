"""The run's logs and its stop on SIGINT/SIGTERM (toy model, float64)."""

import os
import signal

import pytest

from nextham.checkpoint import load_checkpoint
from nextham.data.access import ListSource
from nextham.testing.toy import random_record
from nextham.train import TrainConfig, Trainer, TrainingInterrupted
from nextham.train.run_log import on_stop_signals


def test_stop_signals_call_the_handler_and_restore_the_old_ones():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with on_stop_signals(seen.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert seen == [signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_training_saves_last_and_a_rerun_resumes(tmp_path):
    cfg = TrainConfig.from_dict({
        "data": {"path": str(tmp_path / "data"), "split": {"train": 0.75, "val": 0.25, "test": 0.0}},
        "model": {"kind": "toy"}, "loss": {"reciprocal": {"k_mesh": [2, 2, 2]}},
        "optim": {"epochs": 2, "batch_size": 1},
        "run": {"out_dir": str(tmp_path / "run"), "dtype": "float64", "progress": False, "device": "cpu",
                "tensorboard": False}})
    source = ListSource([random_record(400 + i) for i in range(4)], tmp_path / "ds.h5")
    t = Trainer(cfg, source=source, log=lambda m: None)
    step = t._train_step

    def step_then_signal(keys, batch):
        out = step(keys, batch)
        if t.global_step == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    t._train_step = step_then_signal
    with pytest.raises(TrainingInterrupted):
        t.fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["global_step"] == 1
    assert (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "metrics.csv").exists()
    m = Trainer(cfg, source=source, log=lambda m: None).fit()
    assert m["epoch"] == 2 and m["step"] == 6
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 3
