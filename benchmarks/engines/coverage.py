"""Coverage run: one small structure per element for all 67 GPAW elements (H-Ba, Hf-Bi, no Tc).

    .venv/bin/python benchmarks/engines/coverage.py --out /tmp/coverage.lmdb --workers 1 [--soc] [--h0-only]

Resumable (reruns skip finished elements). Prints successes, failures with reasons and the time
per structure (t_H0, t_SCF) as JSON at the end, and writes it next to the dataset.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="coverage.lmdb")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--soc", action="store_true")
    ap.add_argument("--h0-only", action="store_true")
    ap.add_argument("--elements", default="", help="comma-separated subset (default: all 67)")
    ap.add_argument("--set", action="append", default=[], help="engine setting KEY=VALUE")
    args = ap.parse_args()

    from nextham.data.generate import generate
    from nextham.data.store import DatasetStore
    from nextham.data.structures import GPAW_ELEMENTS, coverage_set

    els = args.elements.split(",") if args.elements else list(GPAW_ELEMENTS)
    settings = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    inputs = coverage_set(els)
    generate(inputs, args.out, engine_name="gpaw", engine_settings=settings, soc=args.soc,
             h0_only=args.h0_only, workers=args.workers)
    with DatasetStore(args.out) as store:
        status = store.status()
        rows = []
        for i in range(len(store)):
            rec = store[i]
            t = rec.metadata["timings"]
            err = None
            if "check_eigenvalues_H_eV" in rec.metadata:
                from nextham.physics.bands import eigenvalues
                k = np.array(rec.metadata["check_kpoints"])
                ref = np.array(rec.metadata["check_eigenvalues_H_eV"])
                e, _ = eigenvalues(rec, k, which="H")
                err = float(1000 * np.abs(e[:, :ref.shape[1]] - ref).max())
            rows.append({"formula": rec.to_atoms().get_chemical_formula(), "n_orbitals": rec.n_orbitals,
                         "t_H0": round(t["t_H0"], 2), "t_SCF": round(t.get("t_SCF", float("nan")), 2),
                         "t_total": round(t["t_total"], 2), "method": rec.metadata.get("method"), "bvk_mesh": rec.metadata.get("bvk_mesh"),
                         "band_check_max_err_meV": err})
    failures = {v.get("name"): v["reason"] for v in status.values() if v["state"] == "failed"}
    t_tot = [r["t_total"] for r in rows]
    summary = {"elements": len(els), "succeeded": len(rows), "failed": len(failures), "failures": failures,
               "mean_time_per_structure_s": float(np.mean(t_tot)) if t_tot else None,
               "max_time_per_structure_s": float(np.max(t_tot)) if t_tot else None,
               "max_band_check_err_meV": max((r["band_check_max_err_meV"] or 0) for r in rows) if rows else None,
               "structures": rows}
    text = json.dumps(summary, indent=1)
    Path(str(args.out) + ".summary.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
