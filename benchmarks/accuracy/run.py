"""Accuracy per CPU-minute: train for fixed time budgets, with ablations, and report held-out errors.

Full run (several hours on 2 CPU cores: ~150 SOC structures with GPAW, then 10 + 30 + 60 minutes of
training and five 30-minute ablations)::

    PYTHONPATH=$PWD python benchmarks/accuracy/run.py --out bench-accuracy

Quick run (on an existing dataset, e.g. the demo's; 2-minute budgets; ~15 minutes)::

    PYTHONPATH=$PWD python benchmarks/accuracy/run.py --out /tmp/acc-quick --quick --dataset nextham-demo/dataset.lmdb

Dataset (full run): seeded strained (2 %) and displaced (0.04 Å) cells of 8 chemistries, 2 to 8 atoms
(Si, Ge, GaAs, AlP, InP, MgO rock salt, ZnO wurtzite, conventional 8-atom Si), 19 each (152), GPAW
``szp(dzp)`` with spin-orbit coupling (the demo's engine settings); split 70/10/20 with seed 0, stored
beside the dataset (``<dataset>.splits.json``) so every run sees the same held-out structures.

Every run trains the demo's model and training config (``nextham.workflows.demo.demo_train_config``) at
the peak learning rate ``--lr`` (:data:`BENCHMARK_LR`), with ``optim.max_minutes`` = the budget (the cosine schedule runs over it) and evaluates the test split
(``nextham.analysis.evaluate``): headline gauge MAE (blocks within 8 Å) of model and H0 and their ratio,
on-site ratio, band MAE within +-1 eV of E_F, ghost states. The learning curve is the headline MAE
against the budget (one run per budget, each with its schedule over its budget). Ablations, same
budget (the middle one): no H0 input (element embedding), no k-space loss, no TraceGrad, no statistics
init, and outputs on every record edge (the graph before the output radius: windows to 1000 Å).
Prints a table; writes ``<out>/results.json`` and one run folder per case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

MATERIALS = (("Si", "diamond", 5.43, False), ("Ge", "diamond", 5.66, False), ("GaAs", "zincblende", 5.65, False),
             ("AlP", "zincblende", 5.47, False), ("InP", "zincblende", 5.87, False), ("MgO", "rocksalt", 4.21, False),
             ("ZnO", "wurtzite", 3.25, False), ("Si", "diamond", 5.43, True))
"""(formula, prototype, a in Å, cubic cell): 2, 2, 2, 2, 2, 2, 4 and 8 atoms."""

BENCHMARK_LR = 1e-2
"""Peak learning rate of every case: the demo's 4e-2, tuned on its three homogeneous chemistries, is
unstable on these eight (10-minute held-out headline ratio 0.563 against 0.398; docs/benchmarks.md)."""

ABLATIONS = {
    "no H0 input (element embedding)": ["model.overrides.input=element"],
    "no k-space loss": ["loss.reciprocal.enabled=false"],
    "no TraceGrad": ["model.overrides.tracegrad=false"],
    "no statistics init": ["model.statistics_init=false"],
    "outputs on all record edges": ["model.overrides.distance_windows=[[0.0,1000.0]]"],
}


def benchmark_structures(per_material: int, seed: int = 0):
    from ase.build import bulk

    from nextham.data.structures import StructureInput, perturb
    from nextham.structure.identity import structure_key

    rng = np.random.default_rng(seed)
    out = []
    for formula, proto, a, cubic in MATERIALS:
        kw = {"c": 5.21} if proto == "wurtzite" else {}
        base = bulk(formula, proto, a=a, cubic=cubic, **kw)
        for n in range(per_material):
            at = perturb(base, rng, 0.02, 0.04)
            name = f"acc-{formula}{len(base)}-{n:02d}"
            out.append(StructureInput(structure_key(at), name, at, source=f"benchmarks/accuracy (seed {seed})"))
    return out


def run_case(data: Path, run_dir: Path, minutes: float, overrides: list[str], device: str, log,
             lr: float | None = None) -> dict:
    """Train one case for ``minutes`` and evaluate its test split; returns the table row."""
    from nextham.analysis.evaluate import evaluate
    from nextham.train.loop import Trainer
    from nextham.workflows.demo import DemoSettings, demo_train_config

    s = DemoSettings(minutes=minutes) if lr is None else DemoSettings(minutes=minutes, lr=lr)
    cfg = demo_train_config(data, run_dir, s, device, list(overrides) + ["run.progress=false"])
    t = time.perf_counter()
    trainer = Trainer(cfg, resume="auto", log=log)
    trainer.fit()
    train_s = time.perf_counter() - t
    rep = evaluate(data, run_dir / "model.pt", run_dir / "report", split="test", device=device, k_mesh=(3, 3, 3),
                   band_plots=0, log=log)
    m, h, r = rep["model"], rep["h0"], rep["ratio_model_over_h0"]
    bm, bh = rep["bands"]["model"], rep["bands"]["h0"]
    return {"minutes": minutes, "steps": trainer.global_step, "train_s": train_s,
            "headline_model_meV": m["headline"]["mae_meV"], "headline_h0_meV": h["headline"]["mae_meV"],
            "headline_ratio": r["headline"], "onsite_ratio": r["distance"].get("onsite"),
            "all_pairs_ratio": r["gauge"], "band_pm1_model_meV": bm.get("band_mae_meV_pm1eV"),
            "band_pm1_h0_meV": bh.get("band_mae_meV_pm1eV"), "ghosts_model": bm["ghost_states"],
            "ghosts_h0": bh["ghost_states"]}


def _slug(case: str) -> str:
    """``"no H0 input (element embedding)"`` -> ``"no-H0-input"`` (run folders, ``--cases``)."""
    return case.split(" (")[0].replace(" ", "-")


def _fmt(v, f="{:.3f}"):
    return "-" if v is None else f.format(v)


def table(rows: list[dict]) -> list[str]:
    full = {r["minutes"]: r for r in rows if r["case"] == "full"}
    out = [f"| case | budget (min) | steps | headline model / H0 (meV) | ratio | vs full | on-site ratio | "
           f"band ±1 eV model / H0 (meV) | ghosts model / H0 |", "|" + "---|" * 9]
    for r in rows:
        ref = full.get(r["minutes"])
        rel = r["headline_ratio"] / ref["headline_ratio"] if ref and r["case"] != "full" and ref["headline_ratio"] else None
        out.append(f"| {r['case']} | {r['minutes']:g} | {r['steps']} | {_fmt(r['headline_model_meV'])} / "
                   f"{_fmt(r['headline_h0_meV'])} | {_fmt(r['headline_ratio'])} | {_fmt(rel, '{:.2f}x')} | "
                   f"{_fmt(r['onsite_ratio'])} | {_fmt(r['band_pm1_model_meV'], '{:.1f}')} / "
                   f"{_fmt(r['band_pm1_h0_meV'], '{:.1f}')} | {r['ghosts_model']} / {r['ghosts_h0']} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, help="use this dataset instead of generating the benchmark's")
    ap.add_argument("--quick", action="store_true", help="2-minute budgets (needs --dataset, e.g. the demo's)")
    ap.add_argument("--budgets", type=float, nargs="+", help="minutes (default 10 30 60; quick: 2)")
    ap.add_argument("--per-material", type=int, default=19)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--ablation-budget", type=float,
                    help="minutes of every ablation (default: the middle budget)")
    ap.add_argument("--cases", nargs="+", metavar="SLUG",
                    help="run only these cases (slugs: full, no-H0-input, no-k-space-loss, no-TraceGrad, "
                         "no-statistics-init, outputs-on-all-record-edges); two processes with disjoint "
                         "cases and --threads 1 share one dataset")
    ap.add_argument("--threads", type=int, help="torch intra-op threads per training run")
    ap.add_argument("--lr", type=float, default=BENCHMARK_LR,
                    help=f"peak learning rate (default {BENCHMARK_LR:g}; the demo's 4e-2 is unstable on this data)")
    ap.add_argument("--generate-only", action="store_true", help="build (or finish) the dataset and stop")
    a = ap.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.quick and a.dataset is None:
        ap.error("--quick needs --dataset (e.g. the demo's nextham-demo/dataset.lmdb)")
    budgets = a.budgets or ([2.0] if a.quick else [10.0, 30.0, 60.0])
    a.out.mkdir(parents=True, exist_ok=True)
    log_file = (a.out / "log.txt").open("a")

    def log(msg: str) -> None:
        print(msg, file=log_file, flush=True)

    data = a.dataset
    if data is None:
        from nextham.data.generate import generate
        from nextham.workflows.demo import DemoSettings

        data = a.out / "dataset.lmdb"
        inputs = benchmark_structures(a.per_material)
        print(f"dataset: {len(inputs)} structures -> {data}", flush=True)
        generate(inputs, data, engine_name="gpaw", engine_settings=dict(DemoSettings().engine_settings), soc=True,
                 workers=a.workers, progress=True, echo=log, command="benchmarks/accuracy/run.py")
    if a.generate_only:
        return 0
    cases = [("full", b, []) for b in budgets]
    if not a.no_ablations:
        ablation_budget = a.ablation_budget or budgets[len(budgets) // 2]
        cases += [(name, ablation_budget, over) for name, over in ABLATIONS.items()]
    if a.cases:
        cases = [c for c in cases if _slug(c[0]) in a.cases]
    results = a.out / ("results.json" if not a.cases else f"results-{'-'.join(a.cases)}.json")
    rows = []
    for name, minutes, over in cases:
        slug = _slug(name)
        t = time.perf_counter()
        row = {"case": name, "overrides": over,
               **run_case(data, a.out / f"{slug}-{minutes:g}min", minutes, over, a.device, log, a.lr)}
        rows.append(row)
        print(f"{name} ({minutes:g} min): headline ratio {_fmt(row['headline_ratio'])}, "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        results.write_text(json.dumps({"dataset": str(data), "rows": rows}, indent=1))
    print("\nlearning curve (held-out headline gauge MAE, meV, against the budget):")
    for r in rows:
        if r["case"] == "full":
            print(f"  {r['minutes']:g} min: model {r['headline_model_meV']:.4f} | H0 {r['headline_h0_meV']:.4f}")
    print()
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
