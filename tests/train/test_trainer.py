"""Trainer: config, checkpoints (weights_only), exact resume, NaN guard, metrics CSV (toy model, float64)."""

import math

import pytest
import torch

from nextham.checkpoint import load_checkpoint
from nextham.train import ConfigError, TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted, lr_at
from nextham.data.access import ListSource, load_or_create_splits
from nextham.testing.toy import random_record


def _records(n=6, spinful=True):
    return [random_record(100 + i, spinful=spinful) for i in range(n)]


def _cfg(tmp_path, name="run", **over):
    d = {"data": {"path": str(tmp_path / "data"), "split": {"train": 0.67, "val": 0.33, "test": 0.0}},
         "model": {"kind": "toy"},
         "optim": {"epochs": 3, "batch_size": 2, "lr": 1e-2, "warmup_epochs": 1},
         "run": {"out_dir": str(tmp_path / name), "dtype": "float64", "progress": False, "device": "cpu"}}
    return TrainConfig.from_dict(d).with_overrides([f"{k}={v}" for k, v in over.items()])


def _weights(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_config_rejects_unknown_keys_and_parses_overrides(tmp_path):
    c = _cfg(tmp_path)
    assert c.with_overrides(["optim.lr=3e-4"]).optim.lr == 3e-4
    assert c.with_overrides(["loss.reciprocal.k_mesh=[2,2,2]"]).loss.reciprocal.k_mesh == (2, 2, 2)
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
        c.with_overrides(["optim.lrr=1"])
    with pytest.raises(ConfigError, match="version"):
        TrainConfig.from_dict({"version": 99, "data": {"path": "x"}})
    with pytest.raises(ConfigError, match=r"unknown model kind 'tyo' \(known: nextham, toy\)"):
        TrainConfig.from_dict({"data": {"path": "x"}, "model": {"kind": "tyo"}})
    p = tmp_path / "c.yaml"
    p.write_text("data: {path: x}\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        TrainConfig.from_yaml(p)


def test_lr_schedule():
    lrs = [lr_at(s, 100, 10, 1e-3, 1e-5) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[100] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_splits_are_stored_and_reused(tmp_path):
    src = ListSource(_records(5, False), tmp_path / "ds.h5")
    s1 = load_or_create_splits(src, 0.6, 0.2, 0.2, seed=3)
    assert (tmp_path / "ds.h5.splits.json").exists()
    assert sorted(s1["train"] + s1["val"] + s1["test"]) == list(range(5))
    assert load_or_create_splits(src, 0.2, 0.4, 0.4, seed=9) == s1  # the stored one wins


def test_train_checkpoint_weights_only_and_metrics(tmp_path):
    recs = _records()
    t = Trainer(_cfg(tmp_path), source=ListSource(recs, tmp_path / "ds.h5"))
    m = t.fit()
    assert m["epoch"] == 3 and math.isfinite(m["train_loss"]) and "val_gauge_mae_meV" in m
    for name in ("last.pt", "best.pt", "model.pt"):
        ck = torch.load(tmp_path / "run" / name, weights_only=True)
        assert ck["format"] == "nextham-checkpoint" and ck["config"]["model"]["kind"] == "toy"
        assert set(ck["split"]) == {"train", "val", "test"} and "torch" in ck["versions"]
    assert "optimizer" in load_checkpoint(tmp_path / "run" / "last.pt")
    lines = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,step")
    if _cfg(tmp_path).run.tensorboard:
        assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    # a finished run is not retrained
    assert Trainer(_cfg(tmp_path), source=ListSource(recs, tmp_path / "ds.h5")).fit() == {}


def test_resume_after_interruption_is_exact(tmp_path):
    recs = _records()
    src = ListSource(recs, tmp_path / "ds.h5")
    ref = Trainer(_cfg(tmp_path, "full"), source=src)
    ref.fit()
    # interrupted mid-epoch twice, resumed each time by a fresh Trainer (as a rerun of the command would)
    t = Trainer(_cfg(tmp_path, "cut"), source=src)
    with pytest.raises(TrainingInterrupted):
        t.fit(stop_after_steps=1)
    t = Trainer(_cfg(tmp_path, "cut"), source=src)
    assert (t.epoch, t.step_in_epoch) == (0, 1)
    with pytest.raises(TrainingInterrupted):
        t.fit(stop_after_steps=3)
    t = Trainer(_cfg(tmp_path, "cut"), source=src)
    t.fit()
    assert torch.equal(_weights(t.model), _weights(ref.model))
    assert t.global_step == ref.global_step == 6


def test_nan_guard_stops_with_clear_message(tmp_path):
    recs = _records(6, False)
    for r in recs:
        r.blocks["H"][0] = float("nan")
    t = Trainer(_cfg(tmp_path), source=ListSource(recs, tmp_path / "ds.h5"))
    with pytest.raises(TrainingDiverged, match="NaN/inf .*structures"):
        t.fit()


def test_example_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    for f in sorted(root.glob("train_*.yaml")):
        TrainConfig.from_yaml(f)


def test_open_dataset_store_and_splits_beside_it(tmp_path):
    from ase.build import bulk

    from nextham.data.generate import generate
    from nextham.data.structures import StructureInput
    from nextham.structure.identity import structure_key
    from nextham.data.access import open_dataset, splits_path

    items = []
    for i in range(4):
        at = bulk("Si", "diamond", a=5.3 + 0.05 * i)
        items.append(StructureInput(structure_key(at), f"si{i}", at))
    generate(items, tmp_path / "ds.lmdb", engine_name="toy", workers=0, progress=False, echo=lambda m: None)
    src = open_dataset(tmp_path / "ds.lmdb")
    assert len(src) == 4 and src[2].n_atoms == 2
    sp = load_or_create_splits(src, 0.5, 0.25, 0.25)
    assert splits_path(src) == tmp_path / "ds.lmdb.splits.json" and splits_path(src).exists()
    assert sorted(sum(sp.values(), [])) == [0, 1, 2, 3]


def test_split_follows_structures_not_storage_order(tmp_path):
    """Parallel generation stores records in the order they finish: the same structures stored in
    another order get the same split (by structure key), index for index where they now sit."""
    from ase.build import bulk

    from nextham.data.access import open_dataset
    from nextham.data.generate import generate
    from nextham.data.structures import StructureInput
    from nextham.structure.identity import structure_key

    items = []
    for i in range(10):
        at = bulk("Si", "diamond", a=5.2 + 0.03 * i)
        items.append(StructureInput(structure_key(at), f"si{i}", at))
    parts = {}
    for name, order in (("forward", items), ("backward", items[::-1])):
        generate(order, tmp_path / f"{name}.lmdb", engine_name="toy", workers=0, progress=False, echo=lambda m: None)
        src = open_dataset(tmp_path / f"{name}.lmdb")
        split = load_or_create_splits(src, 0.6, 0.2, 0.2, seed=3)
        keys = src.identities()
        parts[name] = {k: sorted(keys[i] for i in v) for k, v in split.items()}
    assert parts["forward"] == parts["backward"]
    assert all(parts["forward"].values())


def test_split_grows_with_the_dataset(tmp_path):
    recs = _records(6, False)
    s1 = load_or_create_splits(ListSource(recs[:4], tmp_path / "ds.h5"), 0.5, 0.25, 0.25, seed=1)
    s2 = load_or_create_splits(ListSource(recs, tmp_path / "ds.h5"), 0.5, 0.25, 0.25, seed=1)
    for k in s1:
        assert s2[k][: len(s1[k])] == s1[k]
    assert sorted(sum(s2.values(), [])) == list(range(6))


class _CountingSource(ListSource):
    def __init__(self, records, path):
        super().__init__(records, path)
        self.reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def test_record_cache_decodes_each_record_once_and_gives_identical_batches(tmp_path):
    recs = _records()
    cached, plain = _CountingSource(recs, tmp_path / "ds.h5"), _CountingSource(recs, tmp_path / "ds.h5")
    a = Trainer(_cfg(tmp_path, "a"), source=cached)
    b = Trainer(_cfg(tmp_path, "b", **{"data.cache_mb": 0}), source=plain)
    for epoch in range(2):
        a.sampler.set_epoch(epoch)
        b.sampler.set_epoch(epoch)
        for (ka, ba), (kb, bb) in zip(a.loader, b.loader):
            assert ka == kb
            tensors = {k for k, v in vars(ba).items() if isinstance(v, torch.Tensor)}
            assert tensors and tensors == {k for k, v in vars(bb).items() if isinstance(v, torch.Tensor)}
            for name in tensors:
                assert torch.equal(getattr(ba, name), getattr(bb, name))
    n_train = len(a.split["train"])
    assert cached.reads - 1 == n_train  # + the one read of the engine's name at start-up
    assert plain.reads - 1 == 2 * n_train
    assert a.items.hits == n_train and a.items.used > 0
    a.fit()
    b.fit()
    assert torch.equal(_weights(a.model), _weights(b.model))


class _FakeClock:
    """One second per call: the trainer calls its clock once per step and once per epoch end."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def test_time_budget_stops_cleanly_with_the_schedule_over_the_budget(tmp_path):
    recs = _records()
    cfg = _cfg(tmp_path, "budget", **{"optim.epochs": 50, "optim.max_minutes": 5 / 60})
    t = Trainer(cfg, source=ListSource(recs, tmp_path / "ds.h5"), clock=_FakeClock())
    lrs = []
    step = t._train_step
    t._train_step = lambda k, b: lrs.append(t._lr()) or step(k, b)
    m = t.fit()
    # 2 steps per epoch: steps at 1 s, 2 s, epoch end 3 s, steps 4 s, 5 s: budget spent mid-epoch 2
    assert t.finished and t.global_step == 4 and (t.epoch, t.step_in_epoch) == (2, 0)
    assert m["train_minutes"] == pytest.approx(6 / 60) and "val_gauge_mae_meV" in m
    assert (tmp_path / "budget" / "model.pt").exists()
    o = cfg.optim
    # warm-up over the first epoch (2 steps), then cosine in the spent fraction of the budget (3 s of 5 s)
    assert lrs[:2] == pytest.approx([o.lr / 2, o.lr])
    assert lrs[2] == pytest.approx(o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * 3 / 5)))
    assert lrs[3] < lrs[2]
    ck = load_checkpoint(tmp_path / "budget" / "last.pt")
    assert ck["progress"]["finished"] and ck["progress"]["train_seconds"] == 6.0
    # finished: not retrained; a larger budget continues
    assert Trainer(cfg, source=ListSource(recs, tmp_path / "ds.h5"), clock=_FakeClock()).fit() == {}
    more = Trainer(cfg.with_overrides(["optim.max_minutes=0.15"]), source=ListSource(recs, tmp_path / "ds.h5"),
                   clock=_FakeClock())
    more.fit()
    assert more.global_step > 4 and more.train_seconds >= 9.0


def test_time_budget_resume_after_interruption_is_exact(tmp_path):
    recs = _records()
    src = ListSource(recs, tmp_path / "ds.h5")
    over = {"optim.epochs": 50, "optim.max_minutes": 5 / 60}
    ref = Trainer(_cfg(tmp_path, "full", **over), source=src, clock=_FakeClock())
    ref.fit()
    t = Trainer(_cfg(tmp_path, "cut", **over), source=src, clock=_FakeClock())
    with pytest.raises(TrainingInterrupted):
        t.fit(stop_after_steps=3)
    t = Trainer(_cfg(tmp_path, "cut", **over), source=src, clock=_FakeClock())
    assert (t.epoch, t.step_in_epoch, t.train_seconds) == (1, 1, 4.0)
    t.fit()
    assert t.finished and t.global_step == ref.global_step == 4
    assert torch.equal(_weights(t.model), _weights(ref.model))
