"""``nextham info DATASET``: what a dataset holds, as a JSON-serialisable dict."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks.gauge import gauge_residual
from .store import DatasetStore


def dataset_info(path: str | os.PathLike, per_structure: bool = True) -> dict[str, Any]:
    """Counts, elements, sizes, MAE(H - H0) (meV, plain and gauge) and t(H0)/t(SCF) per structure
    and in total, plus the failures with their reasons and the manifest's provenance."""
    path = Path(path)
    with DatasetStore(path) as store:
        manifest = store.manifest
        status = store.status()
        failures = {k: v for k, v in status.items() if v.get("state") == "failed"}
        rows = []
        elements: Counter[str] = Counter()
        abs_sum = abs_gauge_sum = 0.0
        n_el = 0
        t_h0 = t_scf = 0.0
        for i in range(len(store)):
            rec = store[i]
            elements.update(set(rec.symbols))
            t = rec.metadata.get("timings", {})
            key = store.key(i)
            st = status.get(key, {})
            row: dict[str, Any] = {"index": i, "key": key, "formula": rec.to_atoms().get_chemical_formula(),
                                   "name": st.get("name"), "source": Path(st["source"]).name if st.get("source") else None,
                                   "n_atoms": rec.n_atoms, "n_orbitals": rec.n_orbitals, "n_edges": rec.n_edges,
                                   "spinful": rec.spinful, "t_H0_s": t.get("t_H0"), "t_SCF_s": t.get("t_SCF")}
            if "H" in rec.blocks and "H0" in rec.blocks:
                residual, mu = gauge_residual(rec.blocks["H0"], rec.blocks["H"], rec.overlap_like_h())
                plain = np.abs(rec.blocks["H0"] - rec.blocks["H"])
                gauge = np.abs(residual)
                row["mae_H_H0_meV"] = 1000 * float(plain.mean())
                row["gauge_mae_H_H0_meV"] = 1000 * float(gauge.mean())
                row["gauge_shift_eV"] = mu
                abs_sum += float(plain.sum())
                abs_gauge_sum += float(gauge.sum())
                n_el += plain.size
            if t.get("t_H0") is not None:
                t_h0 += t["t_H0"]
            if t.get("t_SCF") is not None:
                t_scf += t["t_SCF"]
                row["t_H0_over_t_SCF"] = t["t_H0"] / t["t_SCF"] if t["t_SCF"] else None
            rows.append(row)
    out: dict[str, Any] = {
        "path": str(path),
        "file_size_bytes": path.stat().st_size,
        "records": len(rows),
        "failed": len(failures),
        "failures": {v.get("name", k): v.get("reason") for k, v in failures.items()},
        "elements": dict(sorted(elements.items())),
        "n_elements": len(elements),
        "atoms": _stats([r["n_atoms"] for r in rows]),
        "orbitals": _stats([r["n_orbitals"] for r in rows]),
        "edges": _stats([r["n_edges"] for r in rows]),
        "mae_H_H0_meV": 1000 * abs_sum / n_el if n_el else None,
        "gauge_mae_H_H0_meV": 1000 * abs_gauge_sum / n_el if n_el else None,
        "t_H0_total_s": t_h0,
        "t_SCF_total_s": t_scf,
        "t_H0_over_t_SCF": t_h0 / t_scf if t_scf else None,
        "run_settings": manifest.get("run_settings"),
        "engine_versions": manifest.get("engine_versions"),
        "created": manifest.get("created"),
        "runs": len(manifest.get("runs", [])),
    }
    if per_structure:
        out["structures"] = rows
    return out


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values, float)
    return {"min": float(a.min()), "mean": float(a.mean()), "max": float(a.max()), "total": float(a.sum())}
