"""Plots of the evaluation report: error by element, parity plot (figures outside pyplot, see ``plots``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import new_figure, save_figure


def plot_error_by_element(model: dict, h0: dict, out: str | Path) -> Path:
    """Bars of gauge MAE (meV) per element for the model and for H0 (log scale)."""
    out = Path(out)
    els = list(model)
    x = np.arange(len(els))
    fig, ax = new_figure((max(4, 0.6 * len(els) + 2), 3.5))
    ax.bar(x - 0.2, [h0[e]["mae_meV"] for e in els], 0.4, label="H0 (baseline)", color="0.6")
    ax.bar(x + 0.2, [model[e]["mae_meV"] for e in els], 0.4, label="NextHAM", color="tab:red")
    ax.set_xticks(x, els)
    ax.set_yscale("log")
    ax.set_ylabel("gauge MAE (meV)")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def plot_parity(true_delta: np.ndarray, pred_delta: np.ndarray, out: str | Path, max_points: int = 20000,
                seed: int = 0) -> Path:
    """Predicted against true dH = H - H0 (gauge-aligned, meV) of the blocks within 8 Å; real parts (and
    imaginary parts if complex). A perfect model lies on the diagonal; H0 itself is the point (x, 0)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(true_delta.size)[:max_points]
    fig, ax = new_figure((4.5, 4.5))
    parts = [("Re", np.real)] + ([("Im", np.imag)] if np.iscomplexobj(true_delta) else [])
    values = []
    for name, f in parts:
        x, y = 1e3 * f(true_delta[idx]), 1e3 * f(pred_delta[idx])
        values += [x, y]
        ax.scatter(x, y, s=2, alpha=0.4, color="tab:red" if name == "Re" else "tab:blue", label=f"{name} dH")
    lo, hi = (float(np.min(np.concatenate(values))), float(np.max(np.concatenate(values)))) if values else (0, 1)
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true dH = H - H0 (meV)")
    ax.set_ylabel("predicted dH (meV)")
    ax.legend(fontsize=7, markerscale=4)
    return save_figure(fig, out)
