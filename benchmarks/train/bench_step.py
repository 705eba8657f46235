"""Training-step profile and throughput on a dataset, with the demo's model and training config.

Runs the real :class:`nextham.train.loop.Trainer` (its data loader, model, objective and optimiser) and
times each phase of a training step separately:

* ``data``: the loader's next batch (read + decode the record, build the graph, collate, to device);
* ``forward``: ``model(batch)`` and the packed predicted H;
* ``loss``: the objective (real-space gauge loss, k-space loss, trace loss);
* ``backward``: ``loss.backward()``, gradient clipping and the optimiser step.

Two passes over the training split: the first (``epoch 1``) pays for every first decode, the second
(``epoch 2``) shows steady state (with a record cache, no decode at all). Works on any checkout whose
``Trainer`` has ``loader``, ``ddp_model``, ``objective`` and ``optimizer`` (so the same script measures
before and after)::

    PYTHONPATH=$PWD python benchmarks/train/bench_step.py --data /tmp/acc/dataset.lmdb [--device cuda]

Prints a table per epoch and one JSON line (``--json``) with the means (ms) and it/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def demo_config(data: str, out_dir: str, device: str, extra: list[str]):
    """The demo's training config (:func:`nextham.workflows.demo.demo_train_config`, default settings) on
    ``data``, without its time budget (the epochs are counted here); a fixed copy of the demo's config
    of the time for checkouts that predate ``demo_train_config``."""
    from nextham.train.config import TrainConfig

    import nextham

    try:
        from nextham.workflows import demo
        from nextham.workflows.demo import DemoSettings, demo_train_config
        # an editable install can serve a module the measured checkout lacks from another tree
        if Path(nextham.__file__).parent not in Path(demo.__file__).parents:
            demo_train_config = None
    except ImportError:
        demo_train_config = None
    if demo_train_config is not None:
        cfg = demo_train_config(Path(data), Path(out_dir), DemoSettings(), device,
                                ["optim.max_minutes=null", "run.progress=false", "run.tensorboard=false"])
        if device != "cpu":
            cfg = cfg.with_overrides(["run.num_threads=null"])
    else:
        cfg = TrainConfig.from_dict({
            "data": {"path": data, "cutoff": 5.0, "split": {"train": 0.7, "val": 0.1, "test": 0.2, "seed": 0}},
            "model": {"kind": "nextham", "preset": "tiny",
                      "overrides": {"output_scale": 3.0, "cutoff": 5.0, "distance_windows": [[0.0, 6.0]]}},
            "loss": {"reciprocal": {"k_mesh": [4, 4, 4]}},
            "optim": {"epochs": 1000, "batch_size": 1, "lr": 4e-2, "min_lr": 4e-4, "warmup_epochs": 1},
            "run": {"out_dir": out_dir, "seed": 0, "device": device, "dtype": "float32",
                    "num_threads": 1 if device == "cpu" else None, "progress": False, "tensorboard": False}})
    return cfg.with_overrides(extra) if extra else cfg


def _hamiltonian(out, batch):
    try:
        from nextham.models import model_hamiltonian
    except ImportError:  # checkouts before the issue-10 refactor
        from nextham.train.factory import model_hamiltonian
    return model_hamiltonian(out, batch)


def profile(trainer, epochs: int) -> list[dict]:
    dev = trainer.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    rows = []
    for epoch in range(epochs):
        trainer.sampler.set_epoch(epoch)
        times = {"data": [], "forward": [], "loss": [], "backward": [], "step": []}
        it = iter(trainer.loader)
        while True:
            t0 = time.perf_counter()
            try:
                keys, batch = next(it)
            except StopIteration:
                break
            batch = batch.to(dev)
            sync()
            t1 = time.perf_counter()
            trainer.ddp_model.train()
            trainer.optimizer.zero_grad(set_to_none=True)
            out = trainer.ddp_model(batch)
            h = _hamiltonian(out, batch)
            sync()
            t2 = time.perf_counter()
            res = trainer.objective(h, batch, keys, epoch=epoch, output=out)
            float(res.total.detach())  # the loop's finite check syncs here too
            sync()
            t3 = time.perf_counter()
            res.total.backward()
            params = [p for p in trainer.model.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, float("inf"))
            trainer.optimizer.step()
            sync()
            t4 = time.perf_counter()
            for k, v in zip(("data", "forward", "loss", "backward", "step"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                times[k].append(v)
        n = len(times["step"])
        row = {"epoch": epoch + 1, "steps": n, **{f"{k}_ms": 1e3 * statistics.mean(v) for k, v in times.items()}}
        row["it_per_s"] = n / sum(times["step"])
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset store (a splits file is written beside it if absent)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. optim.lr=1e-3)")
    a = ap.parse_args(argv)

    from nextham.train.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        trainer = Trainer(demo_config(a.data, tmp, a.device, a.overrides), resume="never", log=lambda m: None)
        setup_s = time.perf_counter() - t
        rows = profile(trainer, a.epochs)
        items = getattr(trainer, "items", None)  # the record cache (absent before it existed)
        cache = f"; record cache {items.used / 2**20:.0f} MiB" if items is not None else "; no record cache"
    import nextham

    print(f"nextham at {Path(nextham.__file__).parent}; device {trainer.device}; torch threads "
          f"{torch.get_num_threads()}; {len(trainer.split['train'])} training structures; setup {setup_s:.1f} s{cache}")
    print(f"{'epoch':>5} {'steps':>5} {'data ms':>9} {'forward ms':>10} {'loss ms':>9} {'backward ms':>11} "
          f"{'step ms':>9} {'it/s':>7}")
    for r in rows:
        print(f"{r['epoch']:>5} {r['steps']:>5} {r['data_ms']:>9.1f} {r['forward_ms']:>10.1f} {r['loss_ms']:>9.1f} "
              f"{r['backward_ms']:>11.1f} {r['step_ms']:>9.1f} {r['it_per_s']:>7.2f}")
    if a.json:
        print(json.dumps({"setup_s": setup_s, "epochs": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
