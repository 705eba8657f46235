"""The training loop: Adam + warm-up + cosine, exact resume, NaN guard, CSV/TensorBoard, DDP.

One :class:`Trainer` runs on every process of a ``torchrun`` job; rank 0 logs and writes checkpoints.

Reproducibility and exact resume
--------------------------------
* The model is initialised from ``run.seed`` (the same on every rank; DDP also broadcasts rank 0).
* The training order of epoch ``e`` is the permutation of a ``DistributedSampler`` seeded by
  ``(run.seed, e)``; k-points are drawn from ``(run.seed, e, structure index)``; the learning rate is a
  pure function of the global step. So the state to restore is: weights, Adam moments, the step
  counters and the torch RNG (dropout, if any). ``last.pt`` is written at the end of every
  ``run.checkpoint_every`` epochs and when the run is interrupted (SIGINT/SIGTERM, or
  ``stop_after_steps``); a resumed run skips the batches of the interrupted epoch already done.
* A global batch of ``B`` structures on ``W`` processes is ``B / W`` per process; losses are means
  over structures, so ``W`` processes give the same gradients as one process with batch ``B``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state, versions
from ..data.access import BuiltItems, RecordSource, load_or_create_splits, open_dataset
from ..losses import Objective, overlap_like_h, packed_layout
from ..losses.gauge import gauge_mae, gauge_shift
from ..models import DTYPES, batch_functions, build_model, model_hamiltonian, model_kind
from .config import TrainConfig
from .distributed import all_reduce_mean, all_reduce_sum, init_distributed
from .run_log import RunLog, on_stop_signals


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf."""


class TrainingInterrupted(RuntimeError):
    """The run stopped early (signal or ``stop_after_steps``); ``last.pt`` holds the state to resume."""


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``."""
    fraction = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr_at_fraction(step, fraction, warmup_steps, lr, min_lr)


def lr_at_fraction(step: int, fraction: float, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr`` at ``fraction`` = 1 (of the
    steps after the warm-up, or of a time budget ``optim.max_minutes``)."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = min(1.0, max(0.0, fraction))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


class _Indexed(Dataset):
    def __init__(self, items: BuiltItems, indices: Sequence[int]):
        self.items, self.indices = items, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, n: int):
        key = self.indices[n]
        return key, self.items[key]


def _make_collate(collate: Callable):
    def fn(items):
        return [k for k, _ in items], collate([it for _, it in items])
    return fn


def source_commit() -> str | None:
    """The git commit of the nextham source tree (with ``+dirty`` for local changes), or None."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "nextham"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def exclude_elements(source, split: dict, elements, log) -> dict:
    """``split`` without the structures (train and val) that contain any of ``elements``; the test split
    is kept whole (it is where a zero-shot model meets them)."""
    from ase.data import atomic_numbers

    bad = {atomic_numbers[e] for e in elements}
    out = dict(split)
    for name in ("train", "val"):
        keep = [k for k in split[name] if not bad & set(int(z) for z in source[k].numbers)]
        log(f"exclude_elements {','.join(elements)}: {name} {len(split[name])} -> {len(keep)} structures")
        out[name] = keep
    return out


def engine_of(record) -> dict:
    """The engine name and settings that produced a record (for prediction with the same settings)."""
    md = record.metadata or {}
    name = md.get("engine")
    if isinstance(name, dict):
        return {"name": str(name.get("name", "")), "settings_json": json.dumps(name.get("settings", {}))}
    return {"name": str(name or ""), "settings_json": json.dumps(md.get("settings", {}) or {})}


@dataclass
class _Meter:
    sums: dict
    n: int = 0

    def add(self, parts: dict) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1

    def means(self) -> dict:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


class Trainer:
    """Train a model on a dataset according to a :class:`TrainConfig`.

    ``source`` overrides ``config.data.path`` (records in memory for tests); ``resume``: "auto" resumes
    from ``<out_dir>/last.pt`` when present, a path resumes from that file, "never" starts afresh.
    """

    def __init__(self, config: TrainConfig, source: RecordSource | None = None, resume: str = "auto",
                 log: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.cfg = config
        self.clock = clock  # seconds; the time budget's clock (tests pass a fake one)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.out = Path(config.run.out_dir)
        self.dist, self.device = init_distributed(config.run.device)
        if config.run.num_threads:
            torch.set_num_threads(config.run.num_threads)
        self.dtype = DTYPES[config.run.dtype]
        self._init_data(source)
        self._init_model()
        self._init_optimiser()
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_val = math.inf
        self.train_seconds = 0.0  # training time spent so far (all calls of fit), for optim.max_minutes
        self.finished = False
        self._stop = False
        self._init_restore(resume)

    def _init_data(self, source: RecordSource | None) -> None:
        """The dataset, its split (created beside it once), its basis and spin flag (from the manifest)
        and the engine that produced it."""
        self.source = source if source is not None else open_dataset(self.cfg.data.path)
        sp = self.cfg.data.split
        self.split = load_or_create_splits(self.source, sp.train, sp.val, sp.test, sp.seed, write=self.dist.is_main)
        if self.cfg.data.limit:
            self.split = {k: v[: self.cfg.data.limit] for k, v in self.split.items()}
        self.basis, self.spinful = self.source.content()
        if self.cfg.data.exclude_elements:
            self.split = exclude_elements(self.source, self.split, self.cfg.data.exclude_elements, self.log)
        self.engine = engine_of(self.source[self.split["train"][0]]) if self.split["train"] else {}

    def _init_model(self) -> None:
        """The model (seeded: the same weights on every rank), its batch functions, the objective and
        the DDP wrapper."""
        torch.manual_seed(self.cfg.run.seed)
        m = self.cfg.model
        self.init_from = None
        if m.init_from:
            self.model, self.init_from = self._pretrained(m.init_from)
        else:
            self.model = build_model(m.kind, m.preset, m.overrides, self.basis, self.spinful, self.dtype).to(self.device)
        self.build, self.collate = batch_functions(m.kind, self.cfg.data.cutoff, self.dtype,
                                                   getattr(self.model, "output_radius", None))
        # each record is read, decoded and turned into a graph once per run (training and validation)
        self.items = BuiltItems(self.source, self.build, self.cfg.data.cache_mb)
        if m.statistics_init and not m.init_from and hasattr(self.model, "fit_output_statistics") \
                and self.split["train"]:
            # from the training split only; a resumed run then loads the fitted buffers from its checkpoint
            t = time.perf_counter()
            info = self.model.fit_output_statistics(
                _with_aligned_target(self.collate([self.items[k]])) for k in self.split["train"])
            if self.dist.is_main:
                self.log(f"output statistics from {info['structures']} training structures ({info['edges']} edges): "
                         f"mean scale {1e3 * info['mean_scale_eV']:.3g} meV, largest shift "
                         f"{1e3 * info['max_abs_shift_eV']:.3g} meV ({time.perf_counter() - t:.1f} s)")
        codec = getattr(self.model, "codec", None)
        trace_fn = codec.pair_sums if codec is not None and hasattr(codec, "pair_sums") else None
        self.objective = Objective(self.cfg.loss, seed=self.cfg.run.seed,
                                   trace_target_fn=trace_fn)
        self.ddp_model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # the trace head gets no gradient when the trace loss is off
            unused = model_kind(m.kind).trace_head and not self.cfg.loss.trace.enabled
            self.ddp_model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                 find_unused_parameters=unused)

    def _pretrained(self, name: str):
        """``(model with the weights of model ``name``, its description)`` for fine-tuning; the dataset's
        elements must have the model's bases (or fit its layout, for a factorized model)."""
        from ..inference import load_trained_model
        from ..models import resolve_model

        trained = load_trained_model(resolve_model(name), device=self.device)
        if trained.spinful != self.spinful:
            raise CheckpointError(f"init_from {name}: the model is {'spinful' if trained.spinful else 'spinless'}, "
                                  f"the dataset is not")
        model = trained.model
        for e in self.basis.elements:
            if e.symbol in trained.basis and trained.basis[e.symbol].ls != e.ls:
                raise CheckpointError(f"init_from {name}: element {e.symbol} has basis {e.spec()} in the dataset "
                                      f"and {trained.basis[e.symbol].spec()} in the model")
        layout = getattr(model, "layout", None)
        if layout is not None:
            layout.check_basis(self.basis)
        self.basis = trained.basis  # checkpoints of the fine-tuned model keep the pretrained basis
        # the checkpoints describe the pretrained architecture and its graph cutoff
        pm, pd = trained.checkpoint["config"]["model"], trained.checkpoint["config"]["data"]
        d = self.cfg.to_dict()
        d["model"].update(kind=pm["kind"], preset=pm["preset"], overrides=dict(pm["overrides"]))
        d["data"]["cutoff"] = pd["cutoff"]
        self.cfg = TrainConfig.from_dict(d)
        self.log(f"fine-tuning {name} ({trained.path}): its architecture, basis and output statistics")
        model.to(self.dtype).train()
        return model, {"model": name, "path": str(trained.path),
                       "provenance": trained.checkpoint.get("provenance", {})}

    def provenance(self) -> dict:
        """Where the model comes from: the nextham source commit (when run from a git checkout), the
        dataset's recipe (``generate --recipe``), the excluded elements and the fine-tuning start."""
        manifest = {}
        store = getattr(self.source, "_open", None)
        if store is not None:
            try:
                manifest = store().manifest
            except Exception:  # noqa: BLE001 - provenance never stops training
                manifest = {}
        return {"commit": source_commit(), "recipe": manifest.get("recipe"),
                "dataset_command": (manifest.get("run") or {}).get("command"),
                "exclude_elements": list(self.cfg.data.exclude_elements), "init_from": self.init_from}

    def _init_optimiser(self) -> None:
        """Adam, the per-process batches of the training split and the schedule's lengths (steps)."""
        o = self.cfg.optim
        # foreach: one multi-tensor kernel per Adam operation instead of ~10 kernels per parameter tensor
        # (the model has ~300 small tensors: 10 -> 2 ms per step on one CPU core), the same arithmetic
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=tuple(o.betas),
                                          weight_decay=o.weight_decay, foreach=True)
        if o.batch_size % self.dist.world_size:
            raise ValueError(f"optim.batch_size={o.batch_size} is not divisible by the {self.dist.world_size} processes")
        self.local_batch = o.batch_size // self.dist.world_size
        self.train_set = _Indexed(self.items, self.split["train"])
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=self.cfg.run.seed, drop_last=False)
        self.loader = DataLoader(self.train_set, batch_size=self.local_batch, sampler=self.sampler,
                                 collate_fn=_make_collate(self.collate), num_workers=0)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * o.epochs
        self.warmup_steps = int(round(o.warmup_epochs * self.steps_per_epoch))

    def _init_restore(self, resume: str) -> None:
        """``auto``: resume from ``<out_dir>/last.pt`` when present; a path: from that file; ``never``."""
        if resume == "never":
            return
        path = self.out / "last.pt" if resume == "auto" else Path(resume)
        if path.exists():
            self._restore(path)
        elif resume != "auto":
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, with_optimizer: bool = True, metrics: dict | None = None) -> dict:
        p = {"config": self.cfg.to_dict(), "basis": self.basis.to_json(), "spinful": self.spinful,
             "versions": versions(), "split": {k: list(v) for k, v in self.split.items()},
             "dataset": str(self.cfg.data.path), "engine": self.engine, "model": self.model.state_dict(),
             "provenance": self.provenance(),
             "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                          "best_val": self.best_val, "finished": self.finished,
                          "train_seconds": self.train_seconds},
             "metrics": dict(metrics or {})}
        if with_optimizer:
            p["optimizer"] = self.optimizer.state_dict()
            p["rng"] = rng_state()
        return p

    def save(self, name: str = "last.pt", metrics: dict | None = None, with_optimizer: bool = True) -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.out / name, self._payload(with_optimizer, metrics))

    def _restore(self, path: Path) -> None:
        ck = load_checkpoint(path, map_location="cpu")
        if ck["basis"] != self.basis.to_json() or bool(ck["spinful"]) != self.spinful:
            raise CheckpointError(f"{path}: checkpoint basis/spin does not match the dataset")
        if {k: list(v) for k, v in ck["split"].items()} != {k: list(v) for k, v in self.split.items()}:
            raise CheckpointError(f"{path}: checkpoint was trained on a different split of the dataset")
        changed = _diff(ck["config"], self.cfg.to_dict())
        if changed and self.dist.is_main:
            self.log(f"resuming with a changed config: {', '.join(changed)}")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        for g in self.optimizer.param_groups:  # checkpoints of older versions stored foreach=None
            g["foreach"] = True
        pr = ck["progress"]
        self.epoch, self.step_in_epoch, self.global_step = int(pr["epoch"]), int(pr["step_in_epoch"]), int(pr["global_step"])
        self.best_val = float(pr["best_val"])
        self.train_seconds = float(pr.get("train_seconds", 0.0))
        # a finished run given more epochs (or minutes) continues (the cosine schedule is stretched to the new length)
        self.finished = self.epoch >= self.cfg.optim.epochs or self._out_of_time()
        set_rng_state(ck["rng"])
        if self.dist.is_main:
            self.log(f"resumed from {path}: epoch {self.epoch}, step {self.step_in_epoch}/{self.steps_per_epoch}")

    # ------------------------------------------------------------------ one step
    def _forward_loss(self, model, batch, keys, epoch, sync: bool = True):
        out = model(batch)
        h = model_hamiltonian(out, batch)
        # sync: every rank runs this call (training steps), so collectives are safe
        allreduce = (lambda t: all_reduce_mean(t, self.dist)) if self.dist.enabled and sync else None
        return self.objective(h, batch, keys, epoch=epoch, output=out, allreduce=allreduce), h

    def _check_finite(self, value: torch.Tensor, what: str, keys) -> None:
        bad = torch.tensor([0.0 if bool(torch.isfinite(value).all()) else 1.0])
        bad = all_reduce_sum(bad, self.dist)
        if float(bad) > 0:
            lr = self.optimizer.param_groups[0]["lr"]
            raise TrainingDiverged(
                f"{what} became NaN/inf at epoch {self.epoch}, step {self.step_in_epoch} (global {self.global_step}), "
                f"structures {list(keys)} on rank {self.dist.rank}, lr {lr:.3g}. The last good state is in "
                f"{self.out / 'last.pt'}. Lower optim.lr, set optim.clip_grad_norm, use run.dtype=float64, or check "
                f"those structures (non-finite or huge H/H0 values).")

    def _budget_s(self) -> float | None:
        m = self.cfg.optim.max_minutes
        return None if m is None else 60.0 * m

    def _out_of_time(self) -> bool:
        budget = self._budget_s()
        return budget is not None and self.train_seconds >= budget

    def _lr(self) -> float:
        o, budget = self.cfg.optim, self._budget_s()
        if budget is None:
            return lr_at(self.global_step, self.total_steps, self.warmup_steps, o.lr, o.min_lr)
        return lr_at_fraction(self.global_step, self.train_seconds / budget, self.warmup_steps, o.lr, o.min_lr)

    def _train_step(self, keys, batch) -> dict:
        lr = self._lr()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.ddp_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        res, _ = self._forward_loss(self.ddp_model, batch, keys, self.epoch)
        self._check_finite(res.total.detach(), "the loss", keys)
        res.total.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.optim.clip_grad_norm
        gnorm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        self._check_finite(gnorm.detach().cpu(), "the gradient norm", keys)
        self.optimizer.step()
        return {**res.parts, "grad_norm": float(gnorm), "lr": lr}

    # ------------------------------------------------------------------ validation
    def evaluate_split(self, name: str = "val") -> dict:
        """Mean loss and gauge MAE (meV) of the model and of H0 on a split (distributed over ranks)."""
        idx = self.split[name][self.dist.rank::self.dist.world_size]
        sums = torch.zeros(4, dtype=torch.float64)
        self.model.eval()
        for key in idx:
            batch = self.collate([self.items[key]]).to(self.device)
            res, h = self._forward_loss(self.model, batch, [key], epoch=0, sync=False)
            rec = batch.records[0]
            s_h = overlap_like_h(packed_layout(rec), batch.overlap).to(h.dtype)
            sums += torch.tensor([res.parts["loss"], float(gauge_mae(h, batch.h_target, s_h)),
                                  float(gauge_mae(batch.h0, batch.h_target, s_h)), 1.0], dtype=torch.float64)
        sums = all_reduce_sum(sums, self.dist)
        n = max(float(sums[3]), 1.0)
        return {f"{name}_loss": float(sums[0]) / n, f"{name}_gauge_mae_meV": 1e3 * float(sums[1]) / n,
                f"{name}_h0_gauge_mae_meV": 1e3 * float(sums[2]) / n, f"{name}_count": int(sums[3])}

    # ------------------------------------------------------------------ the loop
    def fit(self, stop_after_steps: int | None = None) -> dict:
        """Train to ``optim.epochs`` (or until ``optim.max_minutes`` of training are spent); returns the
        last epoch's metrics. ``stop_after_steps`` simulates an interruption after that many steps of this
        call (state saved, :class:`TrainingInterrupted` raised)."""
        if self.finished:
            what = (f"{self.train_seconds / 60:.1f} of {self.cfg.optim.max_minutes:g} minutes" if self._out_of_time()
                    else f"{self.epoch} epochs")
            self.log(f"training already finished ({what} in {self.out / 'last.pt'}); raise optim.epochs "
                     f"(or optim.max_minutes) to continue, or change run.out_dir to start afresh")
            return {}
        cfg = self.cfg
        run_log = RunLog(self.out, cfg.to_yaml(), self.dist.is_main, cfg.run.tensorboard, self.log)
        steps_this_call = 0
        metrics: dict = {}
        tick = self.clock()

        def spend() -> None:  # the time since the last tick counts against the budget (same on every rank)
            nonlocal tick
            now = self.clock()
            dt = torch.tensor(now - tick, dtype=torch.float64)
            self.train_seconds += float(all_reduce_mean(dt, self.dist)) if self.dist.enabled else float(dt)
            tick = now

        with on_stop_signals(self._on_signal), contextlib.closing(run_log):
            while self.epoch < cfg.optim.epochs and not self._out_of_time():
                self.sampler.set_epoch(self.epoch)
                meter = _Meter({})
                t0 = time.perf_counter()
                skip = self.step_in_epoch
                bar = self._progress(skip)
                for n, (keys, batch) in enumerate(self.loader):
                    if n < skip:
                        continue
                    batch = batch.to(self.device)
                    parts = self._train_step(keys, batch)
                    meter.add(parts)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    steps_this_call += 1
                    spend()
                    bar.update(1)
                    bar.set_postfix(loss=f"{parts['loss']:.4g}", lr=f"{parts['lr']:.2e}")
                    if self._stop or (stop_after_steps is not None and steps_this_call >= stop_after_steps):
                        bar.close()
                        self.save("last.pt")
                        raise TrainingInterrupted(f"interrupted at epoch {self.epoch}, step {self.step_in_epoch}; "
                                                  f"rerun the same command to resume from {self.out / 'last.pt'}")
                    if self._out_of_time():
                        break
                bar.close()
                out_of_time = self._out_of_time()
                train = {f"train_{k}": v for k, v in meter.means().items()}
                train = {k: float(all_reduce_mean(torch.tensor(v, dtype=torch.float64), self.dist)) for k, v in train.items()}
                metrics = {"epoch": self.epoch + 1, "step": self.global_step, **train,
                           "epoch_time_s": time.perf_counter() - t0}
                last_epoch = self.epoch + 1 == cfg.optim.epochs or out_of_time
                if self.split["val"] and ((self.epoch + 1) % cfg.run.val_every == 0 or last_epoch):
                    metrics.update(self.evaluate_split("val"))
                spend()
                metrics["train_minutes"] = self.train_seconds / 60
                if self.step_in_epoch >= self.steps_per_epoch:  # a budget may end an epoch early
                    self.epoch += 1
                    self.step_in_epoch = 0
                self.finished = self.epoch >= cfg.optim.epochs or self._out_of_time()
                val = metrics.get("val_gauge_mae_meV")
                if val is not None and val < self.best_val:
                    self.best_val = val
                    self.save("best.pt", metrics, with_optimizer=False)
                if self.epoch % cfg.run.checkpoint_every == 0 or self.finished:
                    self.save("last.pt", metrics)
                run_log.write(metrics)
            if self._out_of_time() and self.dist.is_main:
                self.log(f"time budget of {cfg.optim.max_minutes:g} min spent after {self.global_step} steps "
                         f"({self.epoch} full epochs)")
            self.save("model.pt", metrics, with_optimizer=False)
            return metrics

    # ------------------------------------------------------------------ helpers
    def _progress(self, initial: int):
        from tqdm.auto import tqdm

        return tqdm(total=self.steps_per_epoch, initial=initial, desc=f"epoch {self.epoch + 1}/{self.cfg.optim.epochs}",
                    leave=False, dynamic_ncols=True, file=sys.stderr,
                    disable=not (self.cfg.run.progress and self.dist.is_main))

    def _on_signal(self, signum: int) -> None:
        self._stop = True
        if self.dist.is_main:
            self.log(f"signal {signum}: stopping after this step and saving last.pt")


def _with_aligned_target(batch) -> tuple:
    """``(batch, H + mu S - H0)`` with ``mu`` the least-squares gauge shift of each structure (packed)."""
    parts = []
    for b, rec in enumerate(batch.records):
        sl = slice(int(batch.packed_ptr[b]), int(batch.packed_ptr[b + 1]))
        so = slice(int(batch.overlap_ptr[b]), int(batch.overlap_ptr[b + 1]))
        s_h = overlap_like_h(packed_layout(rec), batch.overlap[so]).to(batch.h0.dtype)
        mu = gauge_shift(batch.h0[sl] - batch.h_target[sl], s_h, "lsq")
        parts.append(batch.h_target[sl] + mu * s_h - batch.h0[sl])
    return batch, torch.cat(parts)


def _diff(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


def train(config: TrainConfig, **kwargs: Any) -> dict:
    """Convenience: build a :class:`Trainer` and fit."""
    return Trainer(config, **kwargs).fit()
