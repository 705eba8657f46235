"""Band-structure and DOS plots (PNG or PDF by file suffix).

Figures are :class:`matplotlib.figure.Figure` objects written with ``savefig``: no pyplot state and no
backend switch, so an interactive session (a notebook) keeps its backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..physics.bands import BandStructure

STYLES = [dict(color="black", lw=1.6, ls="-"), dict(color="tab:red", lw=1.1, ls="--"),
          dict(color="tab:blue", lw=1.0, ls=":"), dict(color="tab:green", lw=1.0, ls="-.")]


def new_figure(figsize: tuple[float, float]):
    """A figure with one axes, outside pyplot: ``(fig, ax)``."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Lay out and write a figure (PNG or PDF by suffix, 150 dpi); returns the path."""
    out = Path(out)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    return out


def plot_bands(bands: Sequence[BandStructure], out: str | Path, window: tuple[float, float] = (-6.0, 6.0),
               title: str = "", reference_fermi: float | None = None) -> Path:
    """Overlay band structures (e.g. DFT, H0 and predicted) on one path, energies relative to E_F.

    ``reference_fermi`` (eV) is subtracted from every curve; default: the first band structure's E_F
    (or 0). All structures must share the same path.
    """
    out = Path(out)
    ef = reference_fermi if reference_fermi is not None else (bands[0].fermi_energy_eV or 0.0)
    fig, ax = new_figure((6, 4.5))
    path = bands[0].path
    for b, style in zip(bands, STYLES):
        if len(b.path.x) != len(path.x):
            raise ValueError("band structures to overlay must share one k-path")
        e = b.energies - ef
        for seg in path.segments:
            sl = slice(*seg)
            ax.plot(path.x[sl], e[sl], **style)
        ax.plot([], [], label=b.label, **style)
    for i, _ in path.labels:
        ax.axvline(path.x[i], color="0.7", lw=0.6)
    ticks: dict[float, str] = {}
    for i, lab in path.labels:
        x = round(float(path.x[i]), 8)
        ticks[x] = lab if x not in ticks or ticks[x] == lab else f"{ticks[x]}|{lab}"
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.axhline(0.0, color="0.5", lw=0.6, ls="--")
    ax.set_xlim(path.x[0], path.x[-1])
    ax.set_ylim(*window)
    ax.set_ylabel("E − E$_F$ (eV)" if bands[0].fermi_energy_eV is not None or reference_fermi is not None else "E (eV)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return save_figure(fig, out)


def plot_dos(energies: np.ndarray, dos_curves: dict[str, np.ndarray], out: str | Path, fermi: float | None = None,
             title: str = "") -> Path:
    """Plot one or more DOS curves (states/eV/cell) against energy (eV, relative to ``fermi`` if given)."""
    out = Path(out)
    shift = fermi or 0.0
    fig, ax = new_figure((6, 3.5))
    for (label, d), style in zip(dos_curves.items(), STYLES):
        ax.plot(energies - shift, d, label=label, **style)
    if fermi is not None:
        ax.axvline(0.0, color="0.5", lw=0.6, ls="--")
    ax.set_xlabel("E − E$_F$ (eV)" if fermi is not None else "E (eV)")
    ax.set_ylabel("DOS (states/eV/cell)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, out)
