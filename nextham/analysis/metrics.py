"""Evaluation metrics of predicted Hamiltonians against DFT, and of H0 (the baseline) likewise.

Gauge MAE (docs/conventions.md): per structure, the residual ``r = H_pred - H - mu S`` with the
least-squares ``mu = Re sum (H_pred - H) conj(S) / sum |S|^2`` over all elements of the structure;
then pooled over structures. Complex elements count ``|r|``; real and imaginary parts are also reported
separately (``|Re r|``, ``|Im r|``).

The **headline** is the gauge MAE over all elements of blocks with ``|r_ij| <= 8 Å`` (on-site
included; the paper's data range): far pairs, where H0 is already exact, would otherwise dilute it.
The all-pairs figure (``gauge``) is the secondary line. Breakdowns use the same per-structure ``mu``:

* spin blocks ``uu, ud, du, dd`` (spinful records; ``all`` for spinless);
* distance bins: on-site (self-loops), (0,2], (2,4], (4,6], (6,8], >8 Å (by the bond length of the edge);
* element: the element of the row atom ``i`` of each block (both directions of each pair are stored,
  so every pair counts once for each of its elements).

Bands: eigenvalues on a k-grid of ``(H_pred - mu S, S)`` against ``(H, S)`` band by band; band-energy
MAE over the DFT eigenvalues within ``+-w`` eV of E_F; ghost states = predicted eigenvalues in the
window with no DFT eigenvalue within ``tol`` (0.1 eV) at the same k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..blocks.gauge import gauge_residual
from ..blocks.record import StructureRecord

HEADLINE_RADIUS = 8.0
"""Å: the headline gauge MAE counts the elements of blocks with ``|r_ij| <=`` this."""
DISTANCE_BINS = (("onsite", None, None), ("(0,2]", 0.0, 2.0), ("(2,4]", 2.0, 4.0), ("(4,6]", 4.0, 6.0),
                 ("(6,8]", 6.0, 8.0), (">8", 8.0, np.inf))
SPIN_BLOCKS = ("uu", "ud", "du", "dd")


def residual(pred: StructureRecord, ref: StructureRecord, name_pred: str = "H", name_ref: str = "H") -> tuple[np.ndarray, float]:
    """``(H_pred - H_ref - mu S, mu)`` packed in the layout of H, with the least-squares ``mu``."""
    return gauge_residual(pred.blocks[name_pred], ref.blocks[name_ref], ref.overlap_like_h())


def element_categories(record: StructureRecord) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks over the packed H elements for every breakdown (``{"spin": {...}, "distance": ...}``)."""
    edge_of = record.coordinates("H").edge
    out: dict[str, dict[str, np.ndarray]] = {"spin": {}, "distance": {}, "element": {}}
    if record.spinful:
        sp, sq = record.layout.spin_of_elements()
        for name, (a, b) in zip(SPIN_BLOCKS, ((0, 0), (0, 1), (1, 0), (1, 1))):
            out["spin"][name] = (sp == a) & (sq == b)
    else:
        out["spin"]["all"] = np.ones(edge_of.size, bool)
    r = record.edge_lengths
    onsite = record.onsite_mask
    for label, lo, hi in DISTANCE_BINS:
        m = onsite if lo is None else (~onsite & (r > lo) & (r <= hi))
        out["distance"][label] = m[edge_of]
    syms = np.array(record.symbols)[record.edge_index[:, 0]]
    for s in sorted(set(record.symbols)):
        out["element"][s] = (syms == s)[edge_of]
    return out


@dataclass
class _Acc:
    abs: float = 0.0
    re: float = 0.0
    im: float = 0.0
    n: int = 0

    def add(self, r: np.ndarray) -> None:
        self.abs += float(np.abs(r).sum())
        self.re += float(np.abs(r.real).sum())
        self.im += float(np.abs(np.imag(r)).sum()) if np.iscomplexobj(r) else 0.0
        self.n += int(r.size)

    def result(self) -> dict:
        n = max(self.n, 1)
        return {"mae_meV": 1e3 * self.abs / n, "real_meV": 1e3 * self.re / n, "imag_meV": 1e3 * self.im / n,
                "n_elements": self.n}


@dataclass
class HamiltonianErrors:
    """Accumulates gauge errors of one Hamiltonian (model or H0) over many structures."""

    headline: _Acc = field(default_factory=_Acc)
    overall: _Acc = field(default_factory=_Acc)
    plain: _Acc = field(default_factory=_Acc)
    groups: dict = field(default_factory=dict)
    per_structure: list = field(default_factory=list)

    def add(self, pred: StructureRecord, ref: StructureRecord, name_pred: str = "H", key=None) -> float:
        r, mu = residual(pred, ref, name_pred)
        near = np.repeat(ref.edge_lengths <= HEADLINE_RADIUS, np.diff(ref.block_offsets(name_pred)))
        self.headline.add(r[near])
        self.overall.add(r)
        self.plain.add(pred.blocks[name_pred] - ref.blocks["H"])
        for kind, masks in element_categories(ref).items():
            for label, m in masks.items():
                if m.any():
                    self.groups.setdefault(kind, {}).setdefault(label, _Acc()).add(r[m])
        self.per_structure.append({"key": key, "headline_mae_meV": 1e3 * float(np.abs(r[near]).mean()),
                                   "headline_n": int(near.sum()),
                                   "gauge_mae_meV": 1e3 * float(np.abs(r).mean()), "mu_eV": mu})
        return mu

    def result(self) -> dict:
        return {"headline": {**self.headline.result(), "radius_A": HEADLINE_RADIUS},
                "gauge": self.overall.result(), "plain_mae_meV": self.plain.result()["mae_meV"],
                **{kind: {k: v.result() for k, v in g.items()} for kind, g in self.groups.items()},
                "per_structure": self.per_structure}


def ratio_table(model: dict, h0: dict) -> dict:
    """model / H0 for every ``mae_meV`` in matching positions (the improvement factor is 1/ratio)."""
    out = {key: _safe(model[key]["mae_meV"], h0[key]["mae_meV"]) for key in ("headline", "gauge")}
    for kind in ("spin", "distance", "element"):
        out[kind] = {k: _safe(v["mae_meV"], h0[kind][k]["mae_meV"]) for k, v in model.get(kind, {}).items()
                     if k in h0.get(kind, {})}
    return out


def _safe(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


@dataclass
class BandErrors:
    """Band-energy MAE in windows around E_F and ghost-state counts, pooled over structures."""

    windows: tuple[float, ...] = (1.0, 3.0)
    ghost_tol: float = 0.1
    ghost_window: float = 3.0
    sums: dict = field(default_factory=dict)
    ghosts: int = 0
    ghost_checked: int = 0
    per_structure: list = field(default_factory=list)

    def add(self, eps_pred: np.ndarray, eps_ref: np.ndarray, fermi: float, key=None) -> dict:
        """``eps_*`` (n_k, n_bands) eV (NaN-padded), already gauge-aligned."""
        res = {"key": key}
        for w in self.windows:
            m = np.isfinite(eps_ref) & np.isfinite(eps_pred) & (np.abs(eps_ref - fermi) <= w)
            err = np.abs(eps_pred - eps_ref)[m]
            s = self.sums.setdefault(w, [0.0, 0])
            s[0] += float(err.sum())
            s[1] += int(err.size)
            res[f"band_mae_meV_pm{w:g}eV"] = 1e3 * float(err.mean()) if err.size else None
            res[f"band_count_pm{w:g}eV"] = int(err.size)
        g, n = ghost_states(eps_pred, eps_ref, fermi, self.ghost_window, self.ghost_tol)
        self.ghosts += g
        self.ghost_checked += n
        res["ghost_states"] = g
        self.per_structure.append(res)
        return res

    def result(self) -> dict:
        out = {f"band_mae_meV_pm{w:g}eV": (1e3 * s[0] / s[1] if s[1] else None) for w, s in self.sums.items()}
        out.update(ghost_states=self.ghosts, ghost_checked_eigenvalues=self.ghost_checked,
                   ghost_window_eV=self.ghost_window, ghost_tolerance_eV=self.ghost_tol,
                   per_structure=self.per_structure)
        return out


def ghost_states(eps_pred: np.ndarray, eps_ref: np.ndarray, fermi: float, window: float = 3.0,
                 tol: float = 0.1) -> tuple[int, int]:
    """(ghosts, checked): predicted eigenvalues within ``fermi +- window`` with no reference eigenvalue
    within ``tol`` at the same k."""
    ghosts = checked = 0
    for p, r in zip(np.atleast_2d(eps_pred), np.atleast_2d(eps_ref)):
        p = p[np.isfinite(p) & (np.abs(p - fermi) <= window)]
        r = r[np.isfinite(r)]
        checked += p.size
        if p.size and r.size:
            ghosts += int((np.min(np.abs(p[:, None] - r[None, :]), axis=1) > tol).sum())
        else:
            ghosts += int(p.size)
    return ghosts, checked


def timing_of(record: StructureRecord) -> tuple[float | None, float | None]:
    """``(t_H0, t_SCF)`` seconds from a record's metadata (engine conventions, both spellings)."""
    t = record.metadata.get("timings", {}) or {}
    h0 = t.get("t_H0", t.get("t_H0_s"))
    scf = t.get("t_SCF", t.get("t_scf_s", t.get("t_SCF_s")))
    return (float(h0) if h0 is not None else None), (float(scf) if scf is not None else None)
