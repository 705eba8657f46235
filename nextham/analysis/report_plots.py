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


def plot_parity(ref: np.ndarray, pred: np.ndarray, h0: np.ndarray, out: str | Path, max_points: int = 20000,
                seed: int = 0) -> Path:
    """Predicted and H0 matrix elements (gauge-aligned, eV) against DFT; real parts (imaginary too if complex)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(ref.size)[:max_points]
    fig, ax = new_figure((4.5, 4.5))
    parts = [("Re", np.real)] + ([("Im", np.imag)] if np.iscomplexobj(ref) else [])
    for name, f in parts:
        ax.scatter(f(ref[idx]), f(h0[idx]), s=2, alpha=0.4, color="0.6", label=f"H0 ({name})")
        ax.scatter(f(ref[idx]), f(pred[idx]), s=2, alpha=0.4, color="tab:red" if name == "Re" else "tab:blue",
                   label=f"NextHAM ({name})")
    lo = float(min(np.min(np.real(ref)), np.min(np.imag(ref)) if np.iscomplexobj(ref) else 0))
    hi = float(max(np.max(np.real(ref)), np.max(np.imag(ref)) if np.iscomplexobj(ref) else 0))
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlabel("DFT H (eV)")
    ax.set_ylabel("predicted (eV)")
    ax.legend(fontsize=7, markerscale=4)
    return save_figure(fig, out)
