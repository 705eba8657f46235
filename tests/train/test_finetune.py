"""Fine-tuning (model.init_from) and zero-shot exclusion (data.exclude_elements), float64."""

import torch

from nextham.checkpoint import load_checkpoint
from nextham.data.access import ListSource
from nextham.testing.toy import random_record
from nextham.train import TrainConfig, Trainer


def _cfg(tmp_path, name, **over):
    d = {"data": {"path": str(tmp_path / f"{name}.h5"), "cutoff": 4.2,
                  "split": {"train": 0.67, "val": 0.33, "test": 0.0}},
         "model": {"kind": "nextham", "preset": "tiny",
                   "overrides": {"cutoff": 4.2, "statistics": "factorized"}},
         "loss": {"reciprocal": {"enabled": False}},
         "optim": {"epochs": 1, "batch_size": 1, "lr": 1e-2, "warmup_epochs": 0},
         "run": {"out_dir": str(tmp_path / name), "dtype": "float64", "progress": False, "device": "cpu",
                 "tensorboard": False}}
    return TrainConfig.from_dict(d).with_overrides([f"{k}={v}" for k, v in over.items()])


def _weights(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_init_from_starts_at_the_pretrained_weights_and_keeps_its_architecture(tmp_path):
    recs = [random_record(400 + i, spinful=True, symbols=("Ga", "As", "As")) for i in range(3)]
    base = Trainer(_cfg(tmp_path, "base"), source=ListSource(recs, tmp_path / "base.h5"), log=lambda m: None)
    base.fit()
    pretrained = tmp_path / "base" / "model.pt"
    # the fine-tuning config names another preset and cutoff: the pretrained model's win
    cfg = _cfg(tmp_path, "fine", **{"model.init_from": str(pretrained), "model.preset": "small",
                                    "data.cutoff": 3.0, "model.overrides": "{}"})
    own = [random_record(500 + i, spinful=True, symbols=("Ga", "As")) for i in range(3)]
    fine = Trainer(cfg, source=ListSource(own, tmp_path / "fine.h5"), log=lambda m: None)
    assert torch.equal(_weights(fine.model), _weights(base.model))
    assert torch.equal(fine.model.statistics.pair_scale, base.model.statistics.pair_scale)  # not refitted
    assert fine.cfg.model.preset == "tiny" and fine.cfg.data.cutoff == 4.2
    fine.fit()
    ck = load_checkpoint(tmp_path / "fine" / "model.pt")
    assert ck["config"]["model"]["preset"] == "tiny" and ck["config"]["model"]["overrides"]["statistics"] == "factorized"
    assert ck["provenance"]["init_from"]["model"] == str(pretrained)
    assert not torch.equal(_weights(fine.model), _weights(base.model))


def test_exclude_elements_leaves_them_out_of_training_but_in_the_basis(tmp_path):
    recs = [random_record(600 + i, spinful=False, symbols=("Ga", "As") if i % 2 else ("Ga", "P")) for i in range(6)]
    cfg = _cfg(tmp_path, "zs", **{"data.exclude_elements": "[P]"})
    logs = []
    tr = Trainer(cfg, source=ListSource(recs, tmp_path / "zs.h5"), log=logs.append)
    for name in ("train", "val"):
        assert all(15 not in recs[k].numbers for k in tr.split[name])
    assert "P" in tr.basis.symbols
    assert any("exclude_elements P" in m for m in logs)


def test_a_trained_checkpoint_loads_with_its_fitted_statistics(tmp_path):
    """``load_trained_model`` gives back the saved state (fitted output statistics included), in the
    training dtype and in float64 (where only e3nn's Wigner-3j constants are the build's own)."""
    from nextham.inference import load_trained_model
    from nextham.models import is_derived_constant

    recs = [random_record(700 + i, spinful=True, symbols=("Ga", "As")) for i in range(3)]
    cfg = _cfg(tmp_path, "stats", **{"run.dtype": "float32", "model.overrides": "{}"})
    Trainer(cfg, source=ListSource(recs, tmp_path / "stats.h5"), log=lambda m: None).fit()
    saved = load_checkpoint(tmp_path / "stats" / "model.pt")["model"]
    assert any("statistics" in k and not torch.all(v == 1) for k, v in saved.items() if v.is_floating_point())
    for dtype in (None, torch.float64):
        state = load_trained_model(tmp_path / "stats" / "model.pt", dtype=dtype).model.state_dict()
        for k, v in saved.items():
            if is_derived_constant(k) or not v.is_floating_point():
                continue
            assert torch.allclose(state[k].double(), v.double(), rtol=0, atol=1e-7), k
