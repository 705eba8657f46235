"""Dataset-generation throughput (structures per hour) of ``nextham generate`` at the demo's settings,
for one or more checkouts, run back to back on the same structures.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/engines/bench_generate.py --checkouts /path/old /path/new \
        [--n 6] [--json out.json]

The structures are the first ``n // 3`` of each material of the demo's seeded set (2-atom Si, GaAs,
AlP, strained and displaced), written as POSCARs. Each checkout runs
``nextham generate POSCARS --out DATA --soc --workers 0 --set ...`` (the demo's engine settings:
szp(dzp), h = 0.3 Å, k-point density 1.5, one check k-point; ``drop_below`` where the checkout has it)
in a fresh process with ``PYTHONPATH`` at the checkout, so each measures its own code with this
machine's environment. Wall time from process start to exit; structures per hour = n / wall * 3600.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ["basis=szp(dzp)", "h=0.3", "kpt_density=1.5", "check_kpoints=1"]


def write_inputs(folder: Path, n: int) -> list[Path]:
    from ase.io import write

    from nextham.workflows.demo import DemoSettings, demo_structures

    items = demo_structures(DemoSettings())
    per = max(1, n // 3)
    chosen = [it for m in ("Si", "GaAs", "AlP") for it in [x for x in items if x.name.startswith(f"demo-{m}-")][:per]]
    paths = []
    for it in chosen[:n]:
        path = folder / f"{it.name}.vasp"
        write(path, it.atoms, format="vasp")
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkouts", type=Path, nargs="+", required=True)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    nextham = str(Path(sys.executable).with_name("nextham"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp), args.n)
        print("| checkout | structures | wall (s) | structures / hour |")
        print("|---|---|---|---|")
        for n, checkout in enumerate(args.checkouts):
            settings = list(SETTINGS)
            if "drop_below" in (checkout / "nextham/engines/gpaw.py").read_text():
                settings.append("drop_below=1e-7")
            command = [nextham, "generate", *map(str, inputs), "--out", str(Path(tmp) / f"data{n}.lmdb"), "--soc",
                       "--workers", "0", "--no-progress"] + [x for s in settings for x in ("--set", s)]
            env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
            t = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp)
            wall = time.perf_counter() - t
            if done.returncode != 0:
                sys.exit(f"{checkout}: generate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
            row = {"checkout": str(checkout), "structures": len(inputs), "wall_s": wall,
                   "per_hour": len(inputs) / wall * 3600, "settings": settings}
            rows.append(row)
            print(f"| {checkout} | {len(inputs)} | {wall:.1f} | {row['per_hour']:.0f} |", flush=True)
    if len(rows) > 1:
        print(f"throughput ratio last / first: {rows[-1]['per_hour'] / rows[0]['per_hour']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
