"""The end-to-end demo: seeded dataset with the embedded engine -> training -> held-out evaluation.

Every stage reuses what an earlier run finished: the dataset store resumes (structures already
computed are skipped), the trainer resumes from ``last.pt`` (or skips a finished run), and the
evaluation is redone only when the model is newer than the report.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

DEMO_MATERIALS = (("Si", "diamond", 5.43), ("GaAs", "zincblende", 5.65), ("AlP", "zincblende", 5.47))


@dataclass
class DemoSettings:
    """Sizes of the demo (defaults sized for 2 CPU cores)."""

    per_material: int = 8
    materials: tuple = DEMO_MATERIALS
    strain: float = 0.02
    displacement: float = 0.04
    soc: bool = True
    seed: int = 0
    engine: str = "gpaw"
    # szp reduction of GPAW's dzp set: 9 orbitals per atom and a well-conditioned S (min eigenvalue of
    # S(k) ~0.09 for Si, against ~4e-5 with dzp); ~23 s per SOC cell on one core
    engine_settings: dict = field(default_factory=lambda: {"basis": "szp(dzp)", "h": 0.3, "kpt_density": 1.5,
                                                           "check_kpoints": 1,
                                                           # edges below 1e-7 everywhere: bands move < 1e-4 meV
                                                           "drop_below": 1e-7})
    workers: int = 2
    preset: str = "tiny"
    # H0 of the GPAW data is already within ~0.1 meV of H on the many long-range edges: the model corrects
    # bonds up to 6 Å and keeps H0 beyond (distance window), so it adds no noise where H0 is exact.
    # output_scale multiplies the fitted per-channel scales (statistics init; ~4 meV on this data):
    # 3 and lr 4e-2 were best of the 3.5-minute runs measured on this data (output_scale 1, 3, 10; lr 5e-3 ..
    # 4e-2). On the accuracy benchmark's 8 chemistries 4e-2 is unstable (held-out ratio 0.563 against 0.398
    # with 1e-2 after 10 min), so benchmarks/accuracy/run.py trains with BENCHMARK_LR = 1e-2; on the demo's
    # data 1e-2 gave on-site ratios of 0.17-0.20 against 0.17 with 4e-2
    model_overrides: dict = field(default_factory=lambda: {"output_scale": 3.0, "cutoff": 5.0,
                                                           "distance_windows": [[0.0, 6.0]]})
    cutoff: float = 5.0
    # training ends after ``minutes`` (the cosine schedule runs over them) or ``epochs``, what comes first
    minutes: float | None = 4.0
    epochs: int = 1000
    lr: float = 4e-2
    k_mesh: tuple = (3, 3, 3)


def demo_structures(s: DemoSettings):
    """Seeded strained/displaced cells of a few semiconductors (``StructureInput`` list)."""
    from ase.build import bulk

    from ..data.structures import StructureInput, perturb
    from ..structure.identity import structure_key

    rng = np.random.default_rng(s.seed)
    out = []
    for formula, proto, a in s.materials:
        base = bulk(formula, proto, a=a)
        for n in range(s.per_material):
            at = perturb(base, rng, s.strain, s.displacement)
            name = f"demo-{formula}-{n:02d}"
            out.append(StructureInput(structure_key(at), name, at, source=f"nextham demo (seed {s.seed})"))
    return out


def demo_train_config(data: Path, run_dir: Path, s: DemoSettings, device: str = "auto", overrides=()):
    """The demo's training config for the dataset ``data`` (``overrides``: dotted ``key=value``)."""
    from ..train.config import TrainConfig

    cfg = TrainConfig.from_dict({
        "data": {"path": str(data), "cutoff": s.cutoff, "split": {"train": 0.7, "val": 0.1, "test": 0.2, "seed": s.seed}},
        "model": {"kind": "nextham", "preset": s.preset, "overrides": dict(s.model_overrides)},
        "loss": {"reciprocal": {"k_mesh": [4, 4, 4]}},
        "optim": {"epochs": s.epochs, "max_minutes": s.minutes, "batch_size": 1, "lr": s.lr, "min_lr": s.lr / 100,
                  "warmup_epochs": 1},
        # one intra-op thread: the tiny model's kernels are too small to gain from two, and on a busy
        # 2-core machine two threads were measured 4-13x slower per epoch (52-190 s against 14 s)
        "run": {"out_dir": str(run_dir), "seed": s.seed, "device": device, "dtype": "float32",
                "num_threads": 1 if device in ("auto", "cpu") else None}})
    return cfg.with_overrides(list(overrides)) if overrides else cfg


def run_demo(out: Path, s: DemoSettings | None = None, log: Callable[[str], None] = print,
             device: str = "auto") -> dict:
    from ..analysis.evaluate import evaluate, summary_lines
    from ..data.access import open_dataset
    from ..data.generate import generate
    from ..train.loop import Trainer

    s = s or DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stages = {}

    # 1. dataset ------------------------------------------------------------------------------
    data = out / "dataset.lmdb"
    inputs = demo_structures(s)
    log(f"[1/4] dataset: {len(inputs)} structures ({', '.join(m[0] for m in s.materials)}; strain "
        f"{s.strain}, displacements {s.displacement} Å; SOC={s.soc}) with the {s.engine} engine -> {data}")
    t = time.perf_counter()
    summ = generate(inputs, data, engine_name=s.engine, engine_settings=dict(s.engine_settings), soc=s.soc,
                    workers=s.workers, progress=True, echo=log, command="nextham demo")
    stages["dataset_s"] = time.perf_counter() - t
    log(f"      computed {summ.computed}, reused {summ.skipped_done}, failed {summ.failed + summ.skipped_failed}")

    # 2. training -----------------------------------------------------------------------------
    n_data = len(open_dataset(data))
    run_dir = out / f"run-{n_data}"  # a grown dataset (larger --per-material) trains a new model
    cfg = demo_train_config(data, run_dir, s, device)
    length = f"{s.minutes:g} minutes (at most {s.epochs} epochs)" if s.minutes else f"{s.epochs} epochs"
    log(f"[2/4] training a {s.preset} model for {length} -> {run_dir}")
    t = time.perf_counter()
    trainer = Trainer(cfg, log=log)
    log(f"      {sum(p.numel() for p in trainer.model.parameters()):,} parameters; split "
        + ", ".join(f"{k} {len(v)}" for k, v in trainer.split.items()))
    trainer.fit()
    stages["training_s"] = time.perf_counter() - t

    # 3 + 4. prediction of the held-out structures and the report --------------------------------
    model = run_dir / "model.pt"
    report_dir = out / "report"
    rep_file = report_dir / "report.json"
    t = time.perf_counter()
    report = None
    if rep_file.exists() and rep_file.stat().st_mtime > model.stat().st_mtime:
        report = json.loads(rep_file.read_text())
        if "headline" not in report.get("ratio_model_over_h0", {}):
            report = None  # written by an older nextham: redo
        else:
            log(f"[3/4] report up to date: {rep_file}")
    if report is None:
        log(f"[3/4] predicting the held-out test structures and evaluating -> {report_dir}")
        report = evaluate(data, model, report_dir, split="test", device=device, k_mesh=tuple(s.k_mesh),
                          band_plots=1, log=log)
    stages["evaluation_s"] = time.perf_counter() - t
    bands = sorted(report_dir.glob("bands_*.png"))
    if bands:
        shutil.copyfile(bands[0], out / "bands_DFT_H0_predicted.png")
    log("[4/4] results on held-out structures:")
    for line in summary_lines(report):
        log("      " + line)
    ratio = report["ratio_model_over_h0"]["headline"]
    beats = ratio is not None and ratio < 1
    total = time.perf_counter() - t0
    log(f"model {'BEATS' if beats else 'does NOT beat'} the H0 baseline: headline gauge MAE "
        f"{report['model']['headline']['mae_meV']:.3f} meV vs {report['h0']['headline']['mae_meV']:.3f} meV "
        f"({1 / ratio if ratio else float('nan'):.1f}x lower)")
    log(f"demo wall time {total / 60:.1f} min (" + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items()) +
        f"); band plot: {out / 'bands_DFT_H0_predicted.png'}")
    summary = {"beats_h0": beats, "ratio": ratio, "wall_s": total, "stages_s": stages,
               "report": str(rep_file)}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
