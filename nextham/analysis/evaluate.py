"""``nextham evaluate``: metrics of a trained model on a dataset split, as JSON and plots.

Report (``report.json``): gauge MAE (meV) of the model and of H0 against DFT H, overall / per spin
block (real and imaginary) / per distance bin / per element, and their ratio; band-energy MAE within
+-1 and +-3 eV of E_F on a k-grid; ghost states; wall time of H0 (stored engine time) + model against
the stored SCF time. Plots: ``error_by_element.png``, ``parity.png``, ``bands_<n>.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..blocks.record import StructureRecord
from ..data.access import open_dataset, splits_path
from ..inference import load_trained_model, predict_records, select_device
from .metrics import HEADLINE_RADIUS, BandErrors, HamiltonianErrors, ratio_table, residual, timing_of


def _shifted(record: StructureRecord, name: str, mu: float) -> StructureRecord:
    """Copy with ``name`` replaced by ``name - mu S`` (gauge-aligned to DFT)."""
    return record.with_blocks(**{name: record.blocks[name] - mu * record.overlap_like_h()})


def select_indices(source, ckpt: dict, split: str, dataset_path: Path) -> list[int]:
    """Dataset indices of ``split``: the split stored beside the dataset, else the checkpoint's copy
    when the dataset is the one the model was trained on; ``all`` is every structure."""
    if split == "all":
        return list(range(len(source)))
    sp = splits_path(source)
    if sp is not None and sp.exists():
        data = json.loads(sp.read_text())
        return [int(i) for i in data[split]]
    if Path(ckpt.get("dataset", "")).resolve() == Path(dataset_path).resolve():
        return [int(i) for i in ckpt["split"][split]]
    raise ValueError(f"{dataset_path} has no stored split and is not the dataset the model was trained on; "
                     f"use --split all")


def evaluate(dataset: str | Path, checkpoint: str | Path, out_dir: str | Path, split: str = "test",
             device: str = "auto", k_mesh: tuple[int, int, int] = (4, 4, 4), band_plots: int = 3,
             limit: int | None = None, log: Callable[[str], None] = print) -> dict:
    from ..physics.bands import band_structure, eigenvalues
    from ..physics.kpoints import monkhorst_pack
    from .plots import plot_bands
    from .report_plots import plot_error_by_element, plot_parity

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    trained = load_trained_model(checkpoint, dev)
    source = open_dataset(dataset)
    idx = select_indices(source, trained.checkpoint, split, Path(dataset))
    if limit:
        idx = idx[:limit]
    if not idx:
        from ..data.access import DatasetError

        raise DatasetError(f"split {split!r} of {dataset} is empty")
    err_model, err_h0 = HamiltonianErrors(), HamiltonianErrors()
    bands_model, bands_h0 = BandErrors(), BandErrors()
    kpts = monkhorst_pack(k_mesh, shift=True)
    t_h0_sum = t_model_sum = t_scf_sum = 0.0
    n_timed = 0
    parity = ([], [])
    timing_rows = []
    # warm-up (lazy initialisation, kernel selection) so that the timed predictions are steady-state
    predict_records(trained, [source[idx[0]]])
    for n, key in enumerate(idx):
        rec = source[key]
        if "H" not in rec.blocks:
            raise ValueError(f"structure {key} of {dataset} has no DFT H to evaluate against")
        t0 = time.perf_counter()
        pred = predict_records(trained, [rec])[0]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_model = time.perf_counter() - t0
        mu_m = err_model.add(pred, rec, "H", key=key)
        mu_0 = err_h0.add(rec, rec, "H0", key=key)
        ef = rec.fermi_energy_eV if rec.fermi_energy_eV is not None else 0.0
        e_ref, _ = eigenvalues(rec, kpts, "H")
        e_m, _ = eigenvalues(_shifted(pred, "H", mu_m), kpts, "H")
        e_0, _ = eigenvalues(_shifted(rec, "H0", mu_0), kpts, "H0")
        bands_model.add(e_m, e_ref, ef, key)
        bands_h0.add(e_0, e_ref, ef, key)
        t_h0, t_scf = timing_of(rec)
        timing_rows.append({"key": key, "t_H0_s": t_h0, "t_model_s": t_model, "t_SCF_s": t_scf})
        if t_h0 is not None and t_scf is not None:
            t_h0_sum, t_model_sum, t_scf_sum, n_timed = t_h0_sum + t_h0, t_model_sum + t_model, t_scf_sum + t_scf, n_timed + 1
        r_m, _ = residual(pred, rec)
        r_0, _ = residual(rec, rec, "H0")
        near = np.repeat(rec.edge_lengths <= HEADLINE_RADIUS, np.diff(rec.block_offsets("H")))
        parity[0].append(-r_0[near])  # true dH = H - H0, gauge-aligned
        parity[1].append((r_m - r_0)[near])  # predicted dH = H_pred - H0, same alignment
        if n < band_plots:
            try:
                bs = [band_structure(rec, "H", label="DFT"),
                      band_structure(_shifted(rec, "H0", mu_0), "H0", label="H0"),
                      band_structure(_shifted(pred, "H", mu_m), "H", label="NextHAM")]
                plot_bands(bs, out / f"bands_{key}.png", title=f"{rec.to_atoms().get_chemical_formula()} (#{key})")
            except Exception as exc:  # a plot must not sink the report
                log(f"band plot of structure {key} failed: {exc}")
    rm, r0 = err_model.result(), err_h0.result()
    report = {
        "dataset": str(dataset), "checkpoint": str(checkpoint), "split": split, "n_structures": len(idx),
        "units": "meV for errors, s for times",
        "model": rm, "h0": r0, "ratio_model_over_h0": ratio_table(rm, r0),
        "bands": {"k_mesh": list(k_mesh), "model": bands_model.result(), "h0": bands_h0.result()},
        # engine times come from the records (the run that made the dataset, maybe another machine);
        # the model's is measured here: they are reported side by side, never added
        "timing": {"per_structure": timing_rows,
                   "engine_times_from": "records (dataset generation)",
                   "model_time_from": f"measured now on {dev.type}",
                   "total_H0_s": t_h0_sum if n_timed else None,
                   "total_SCF_s": t_scf_sum if n_timed else None,
                   "H0_over_SCF": (t_h0_sum / t_scf_sum) if n_timed and t_scf_sum > 0 else None,
                   "total_model_s": t_model_sum if n_timed else None,
                   "n_timed": n_timed},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    try:
        plot_error_by_element(rm["element"], r0["element"], out / "error_by_element.png")
        plot_parity(np.concatenate(parity[0]), np.concatenate(parity[1]), out / "parity.png")
    except Exception as exc:
        log(f"report plots failed: {exc}")
    return report


def summary_lines(report: dict) -> list[str]:
    """Human-readable headline numbers of a report: the gauge MAE over blocks within the headline radius
    first, with the distance bins (on-site first) beside it for the model and H0 and their ratio; the
    all-pairs MAE as a secondary line; then spin blocks, elements, bands, ghosts and timing."""
    m, h, ratio = report["model"], report["h0"], report["ratio_model_over_h0"]

    def row(label: str, mv: float, hv: float, r: float | None) -> str:
        return f"{label}: model {mv:.3f} meV | H0 {hv:.3f} meV | ratio {r:.3f}" if r is not None else \
            f"{label}: model {mv:.3f} meV | H0 {hv:.3f} meV"

    lines = [f"structures: {report['n_structures']} ({report['split']} split)"]
    if "headline" in m:
        lines.append(row(f"headline gauge MAE (|r_ij| <= {m['headline']['radius_A']:g} Å)", m["headline"]["mae_meV"],
                         h["headline"]["mae_meV"], ratio.get("headline")))
    dist = m.get("distance", {})
    for k in dist:  # metrics.DISTANCE_BINS order: on-site first
        label = "on-site" if k == "onsite" else f"r {k} Å"
        lines.append(row(f"  {label:12s}", dist[k]["mae_meV"], h["distance"][k]["mae_meV"],
                         ratio.get("distance", {}).get(k)))
    lines.append(row("all-pairs gauge MAE", m["gauge"]["mae_meV"], h["gauge"]["mae_meV"], ratio["gauge"]))
    for k, v in m.get("spin", {}).items():
        hv = h["spin"][k]
        lines.append(f"  spin {k:3s}: model re {v['real_meV']:.3f} im {v['imag_meV']:.3f} | "
                     f"H0 re {hv['real_meV']:.3f} im {hv['imag_meV']:.3f} meV")
    for k, v in m.get("element", {}).items():
        lines.append(f"  {k:3s}      : model {v['mae_meV']:.3f} | H0 {h['element'][k]['mae_meV']:.3f} meV")
    bm, bh = report["bands"]["model"], report["bands"]["h0"]
    for w in ("1", "3"):
        key = f"band_mae_meV_pm{w}eV"
        if bm.get(key) is not None:
            lines.append(f"band MAE +-{w} eV of E_F: model {bm[key]:.2f} meV | H0 {bh[key]:.2f} meV")
    lines.append(f"ghost states (+-{bm['ghost_window_eV']:g} eV, tol {bm['ghost_tolerance_eV']:g} eV): "
                 f"model {bm['ghost_states']} | H0 {bh['ghost_states']} of {bm['ghost_checked_eigenvalues']} eigenvalues")
    t = report["timing"]
    if t["n_timed"]:
        lines.append(f"time, from the records (dataset generation): S + H0 {t['total_H0_s']:.2f} s vs SCF "
                     f"{t['total_SCF_s']:.2f} s ({100 * t['H0_over_SCF']:.1f}%); model, measured now: "
                     f"{t['total_model_s']:.2f} s for {t['n_timed']} structures "
                     "(benchmarks/engines/bench_predict.py times predict against generate in one run)")
    return lines
