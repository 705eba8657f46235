"""A 2-process DDP run (gloo, CPU) equals the single-process run with the same global batch."""

import os
import socket

import torch
import torch.multiprocessing as mp

from nextham.train import TrainConfig, Trainer
from nextham.train.data import ListSource
from nextham.testing.toy import random_record


def _cfg(tmp, name):
    return TrainConfig.from_dict({
        "data": {"path": str(tmp / "ds.h5"), "split": {"train": 0.75, "val": 0.25, "test": 0.0}},
        "model": {"kind": "toy"},
        "loss": {"trace": {"enabled": False}},
        "optim": {"epochs": 2, "batch_size": 2, "lr": 1e-2, "warmup_epochs": 0.5},
        "run": {"out_dir": str(tmp / name), "dtype": "float64", "progress": False, "device": "cpu",
                "num_threads": 1}})


def _records():
    return [random_record(200 + i, spinful=True) for i in range(8)]


def _worker(rank, world, port, tmp):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from nextham.train.distributed import cleanup_distributed

    t = Trainer(_cfg(tmp, "ddp"), source=ListSource(_records(), tmp / "ds.h5"), log=lambda m: None)
    m = t.fit()
    if rank == 0:
        torch.save({"w": [p.detach() for p in t.model.parameters()], "m": m}, tmp / "ddp_weights.pt")
    cleanup_distributed()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_single_process(tmp_path):
    # the spawned workers start with torch's float32 default dtype; other tests in this process may have
    # changed it, and Python scalars in the loss follow it (a 1e-7 difference), so match the workers
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        _check_ddp_equals_single(tmp_path)
    finally:
        torch.set_default_dtype(old)


def _check_ddp_equals_single(tmp_path):
    single = Trainer(_cfg(tmp_path, "single"), source=ListSource(_records(), tmp_path / "ds.h5"), log=lambda m: None)
    ms = single.fit()
    assert single.steps_per_epoch == 3  # 6 training structures, global batch 2
    mp.spawn(_worker, args=(2, _free_port(), tmp_path), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp_weights.pt", weights_only=True)
    for a, b in zip(single.model.parameters(), ddp["w"]):
        torch.testing.assert_close(a.detach(), b, rtol=1e-10, atol=1e-12)
    assert abs(ms["train_loss"] - ddp["m"]["train_loss"]) < 1e-10
    assert abs(ms["val_gauge_mae_meV"] - ddp["m"]["val_gauge_mae_meV"]) < 1e-8
