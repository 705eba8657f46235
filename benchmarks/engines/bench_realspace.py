"""S + H0 by direct real-space assembly against the Born-von Karman path and the SCF it replaces.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/engines/bench_realspace.py \
        [--sizes 2 8 16 32 64] [--materials Si GaAs] [--bvk-max-atoms 32] [--json out.json]

Cells: Si (no SOC) and GaAs (with SOC) as the 2-atom primitive cell, the 8-atom cubic cell and its
(2,1,1), (2,2,1), (2,2,2) repetitions (16, 32, 64 atoms), engine at the demo settings
(``szp(dzp)``, h = 0.3 Å, kpt_density = 1.5, no eigenvalue check) unless ``--settings`` is given.
Per cell, in one process and one after the other:

* ``t_new``: wall time of ``compute(h0_only=True)`` with ``method="realspace"`` (S + H0, what
  ``nextham predict`` needs), ``t_old`` the same with ``method="bvk"``;
* ``t_SCF``: wall time of the full ``compute()`` (``method="realspace"``: S, H0, SCF, H) as
  ``nextham generate`` runs it (``scf_grid_kernel="auto"``), and ``t_H_extraction`` (H(R) from the
  converged SCF object); ``t_SCF_gpaw`` the same with GPAW's own grid loops in the SCF
  (``scf_grid_kernel="gpaw"``: the SCF as GPAW itself runs it, the calculation the model replaces
  for a GPAW user). Ratios are given against both;
* bytes per structure: the record written with ``nextham.blocks.h5io.write_record`` (float64),
  in full and with the edges below 1e-7 dropped (``drop_below``, what the demo stores).

Each material starts with an untimed warm-up (setups and two-centre expansions are cached per
process). Prints a markdown table and optionally writes JSON. Timings are wall-clock on whatever machine
runs it; run with OMP_NUM_THREADS=1 for single-core numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DEMO = {"basis": "szp(dzp)", "h": 0.3, "kpt_density": 1.5, "check_kpoints": 0}
REPEATS = {2: None, 8: (1, 1, 1), 16: (2, 1, 1), 32: (2, 2, 1), 64: (2, 2, 2)}
LATTICE = {"Si": ("diamond", 5.43, False), "GaAs": ("zincblende", 5.65, True)}


def cell(material: str, n_atoms: int):
    from ase.build import bulk

    proto, a, _ = LATTICE[material]
    if n_atoms == 2:
        return bulk(material, proto, a=a)
    return bulk(material, proto, a=a, cubic=True).repeat(REPEATS[n_atoms])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def record_bytes(record) -> int:
    from nextham.blocks.h5io import write_record

    with tempfile.TemporaryDirectory() as d:
        path = write_record(Path(d) / "r.h5", record)
        return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 8, 16, 32, 64])
    ap.add_argument("--materials", nargs="+", default=["Si", "GaAs"])
    ap.add_argument("--bvk-max-atoms", type=int, default=64, help="skip the BvK path above this size")
    ap.add_argument("--scf-max-atoms", type=int, default=64, help="skip the SCF above this size")
    ap.add_argument("--settings", type=json.loads, default=DEMO, help="engine settings as JSON")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()

    from nextham.engines.gpaw import GPAWEngine, drop_negligible_edges

    new_engine = GPAWEngine(**args.settings)
    old_engine = GPAWEngine(**args.settings, method="bvk")
    gpaw_scf_engine = GPAWEngine(**args.settings, scf_grid_kernel="gpaw")
    rows = []
    print("| cell | atoms | orbitals | SOC | t_S+H0 new (s) | t_S+H0 BvK (s) | t_SCF nextham (s) | t_SCF GPAW loops (s) "
          "| new/SCF nextham | new/SCF GPAW | BvK/SCF GPAW | t_H extraction / t_SCF nextham | bytes/structure "
          "| bytes, drop_below=1e-7 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for material in args.materials:
        soc = LATTICE[material][2]
        # warm-up, not timed: PAW setups and two-centre expansions are built once per process and
        # species (a dataset worker or a predict of many structures pays them once), and every
        # timed call below, SCF included, finds them built
        for engine in (new_engine, old_engine, gpaw_scf_engine):
            engine.compute(cell(material, 2), soc=soc, h0_only=True)
        for n in args.sizes:
            atoms = cell(material, n)
            rec0, t_new = timed(lambda: new_engine.compute(atoms, soc=soc, h0_only=True))
            row = {"material": material, "atoms": len(atoms), "orbitals": int(rec0.n_orbitals), "soc": soc,
                   "t_new": t_new, "t_new_gpaw_setup": rec0.metadata["timings"]["t_H0_gpaw_setup"],
                   "edges": int(rec0.n_edges)}
            if len(atoms) <= args.bvk_max_atoms:
                _, row["t_old"] = timed(lambda: old_engine.compute(atoms, soc=soc, h0_only=True))
            if len(atoms) <= args.scf_max_atoms:
                rec, row["t_SCF"] = timed(lambda: new_engine.compute(atoms, soc=soc))
                tm = rec.metadata["timings"]
                row["t_H_extraction"] = tm["t_H_extraction"]
                row["t_SCF_only"] = tm["t_SCF_only"]
                row["bytes"] = record_bytes(rec)
                row["bytes_drop_1e-7"] = record_bytes(drop_negligible_edges(rec, 1e-7)[0])
                row["ratio_new"] = t_new / row["t_SCF"]
                row["extraction_fraction"] = row["t_H_extraction"] / row["t_SCF"]
                row["scf_grid_kernels"] = rec.metadata["scf_grid_kernels"]
                _, row["t_SCF_gpaw"] = timed(lambda: gpaw_scf_engine.compute(atoms, soc=soc))
                row["ratio_new_gpaw"] = t_new / row["t_SCF_gpaw"]
                if "t_old" in row:
                    row["ratio_old"] = row["t_old"] / row["t_SCF_gpaw"]
            rows.append(row)

            def f(key, fmt="{:.2f}"):
                return fmt.format(row[key]) if key in row else "-"

            print(f"| {material}{len(atoms)} | {len(atoms)} | {row['orbitals']} | {'yes' if soc else 'no'} | "
                  f"{f('t_new')} | {f('t_old')} | {f('t_SCF')} | {f('t_SCF_gpaw')} | {f('ratio_new', '{:.3f}')} | "
                  f"{f('ratio_new_gpaw', '{:.3f}')} | {f('ratio_old', '{:.3f}')} | {f('extraction_fraction', '{:.3f}')} | {f('bytes', '{:,}')} | {f('bytes_drop_1e-7', '{:,}')} |",
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
