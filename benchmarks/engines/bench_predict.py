"""``nextham predict`` end to end against ``nextham generate`` (the SCF it replaces), same structure.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/engines/bench_predict.py \
        --model nextham-demo/run-24/model.pt [--sizes 8 16 64] [--material GaAs] [--json out.json]

For each cell (the material's 8-atom cubic cell and its (2,1,1) and (2,2,2) repetitions, atoms
displaced by 0.03 Å with seed 0 so that nothing is symmetric by accident), written as a POSCAR:

* ``nextham predict CELL --model MODEL --out pred.h5``: engine S + H0 (no SCF), model, Fermi level,
  write; the command's wall time from process start to exit, and the stage times it prints;
* ``nextham generate CELL --like DATASET --workers 0 --out scf.lmdb``: the same engine and settings
  (the model's training data), S, H0, SCF and H, write; wall time from process start to exit.

Both are separate processes run one after the other, so both pay Python's start-up and imports
(several seconds: torch, e3nn, GPAW). The table also compares like with like inside the processes:
predict's engine S + H0 and model stages against the engine run that generate stored for the same
structure (``timings.t_total``: S, H0, SCF, H and the eigenvalue check). Prints a markdown table and
optionally writes JSON. Timings are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = {8: (1, 1, 1), 16: (2, 1, 1), 32: (2, 2, 1), 64: (2, 2, 2)}
LATTICE = {"Si": ("diamond", 5.43), "GaAs": ("zincblende", 5.65), "AlP": ("zincblende", 5.47)}


def write_cell(material: str, n_atoms: int, path: Path) -> None:
    import numpy as np
    from ase.build import bulk
    from ase.io import write

    proto, a = LATTICE[material]
    atoms = bulk(material, proto, a=a, cubic=True).repeat(REPEATS[n_atoms])
    atoms.positions += np.random.default_rng(0).normal(scale=0.03, size=atoms.positions.shape)
    write(path, atoms, format="vasp")


def run(command: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout + done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="trained model (its data give engine and settings)")
    ap.add_argument("--dataset", type=Path, help="the model's training data (default: from the model's config)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64])
    ap.add_argument("--material", default="GaAs", choices=sorted(LATTICE))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    nextham = str(Path(sys.executable).with_name("nextham"))
    dataset = args.dataset
    if dataset is None:
        import yaml

        config = yaml.safe_load((args.model.parent / "config.yaml").read_text())
        dataset = Path(config["data"]["path"])
        if not dataset.exists():
            sys.exit(f"the model's training data {dataset} is not here (relative to the directory training ran "
                     "in); give --dataset")
    rows = []
    print("| cell | atoms | t predict (s) | engine S+H0 / model / write (s) | t generate (s) | predict / generate "
          "| engine run in generate (s) | (S+H0 + model) / engine run |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            cell = Path(tmp) / f"{args.material}{n}.vasp"
            write_cell(args.material, n, cell)
            t_pred, log = run([nextham, "predict", str(cell), "--model", str(args.model),
                               "--out", str(Path(tmp) / f"pred{n}.h5"), "--device", "cpu"])
            stages = {k: float(v) for k, v in re.findall(r"^(\w+)_s: ([\d.]+)$", log, flags=re.M)}
            t_gen, _ = run([nextham, "generate", str(cell), "--like", str(dataset), "--workers", "0",
                            "--no-progress", "--out", str(Path(tmp) / f"scf{n}.lmdb")])
            from nextham.data.access import open_dataset

            timings = open_dataset(Path(tmp) / f"scf{n}.lmdb")[0].metadata["timings"]
            compute_pred = stages.get("engine_S_H0", 0.0) + stages.get("model", 0.0)
            row = {"material": args.material, "atoms": n, "t_predict": t_pred, "t_generate": t_gen,
                   "ratio": t_pred / t_gen, "predict_stages": stages, "generate_engine_timings": timings,
                   "t_H0_plus_model": compute_pred, "t_engine_scf_run": timings["t_total"],
                   "compute_ratio": compute_pred / timings["t_total"]}
            rows.append(row)
            parts = " / ".join(f"{stages.get(k, float('nan')):.2f}" for k in ("engine_S_H0", "model", "write"))
            print(f"| {args.material}{n} | {n} | {t_pred:.2f} | {parts} | {t_gen:.2f} | {row['ratio']:.3f} "
                  f"| {timings['t_total']:.2f} | {row['compute_ratio']:.3f} |", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
