"""Model cards: the measured figures of a shipped model, built only from evaluation reports.

:func:`build_card` groups the per-structure rows of :func:`nextham.analysis.evaluate.evaluate` reports
(held-out structures of the model's recipe, another seed) by element (every structure that contains
it) and by environment (the recipe's prototype class, from the structure name), pooling the errors:

* headline gauge MAE (meV, blocks within 8 Å) of the model and of H0 and their ratio;
* band-energy MAE within ±1 eV of E_F (meV) and ghost states (±3 eV), model and H0;

plus the report's overall figures (headline, on-site and distance bins, all pairs), the zero-shot
report of the same model retrained without some elements (rows of those elements only) and the
prediction times. :func:`format_card` prints it (``nextham info --model NAME``). Nothing in a card is
typed by hand: every number is read from the reports it names.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

#: a card whose per-element rows have fewer structures than this says so
MIN_STRUCTURES = 2


def _pool(rows: Iterable[dict]) -> dict[str, Any]:
    """Pooled errors of per-structure rows (each: model/H0 headline MAE and counts, band MAE and counts,
    ghosts)."""
    rows = list(rows)
    n_h = sum(r["headline_n"] for r in rows)
    m = sum(r["model_headline_meV"] * r["headline_n"] for r in rows) / max(n_h, 1)
    h = sum(r["h0_headline_meV"] * r["headline_n"] for r in rows) / max(n_h, 1)
    n_b = sum(r["band_n"] for r in rows)
    bm = sum((r["model_band_meV"] or 0.0) * r["band_n"] for r in rows) / n_b if n_b else None
    bh = sum((r["h0_band_meV"] or 0.0) * r["band_n"] for r in rows) / n_b if n_b else None
    return {"n_structures": len(rows), "model_mae_meV": m, "h0_mae_meV": h, "ratio": m / h if h > 0 else None,
            "model_band_mae_meV_pm1eV": bm, "h0_band_mae_meV_pm1eV": bh,
            "model_ghost_states": sum(r["model_ghosts"] for r in rows),
            "h0_ghost_states": sum(r["h0_ghosts"] for r in rows)}


def structure_rows(report: dict, describe: Callable[[int], tuple[list[str], str]]) -> list[dict]:
    """One row per structure of an evaluation report; ``describe(key) -> (elements, environment)``."""
    hm = {r["key"]: r for r in report["model"]["per_structure"]}
    hh = {r["key"]: r for r in report["h0"]["per_structure"]}
    bm = {r["key"]: r for r in report["bands"]["model"]["per_structure"]}
    bh = {r["key"]: r for r in report["bands"]["h0"]["per_structure"]}
    rows = []
    for key in hm:
        elements, env = describe(key)
        rows.append({"key": key, "elements": elements, "environment": env,
                     "headline_n": hm[key]["headline_n"], "model_headline_meV": hm[key]["headline_mae_meV"],
                     "h0_headline_meV": hh[key]["headline_mae_meV"],
                     "band_n": bm[key].get("band_count_pm1eV", 0), "model_band_meV": bm[key]["band_mae_meV_pm1eV"],
                     "h0_band_meV": bh[key]["band_mae_meV_pm1eV"], "model_ghosts": bm[key]["ghost_states"],
                     "h0_ghosts": bh[key]["ghost_states"]})
    return rows


def grouped(rows: list[dict], elements: Iterable[str] | None = None) -> dict[str, dict]:
    """``{"per_element": {El: pooled}, "per_environment": {env: pooled}}`` (elements: only those)."""
    by_el: dict[str, list] = defaultdict(list)
    by_env: dict[str, list] = defaultdict(list)
    for r in rows:
        for e in r["elements"]:
            by_el[e].append(r)
        by_env[r["environment"] or "other"].append(r)
    keep = set(elements) if elements is not None else set(by_el)
    return {"per_element": {e: _pool(v) for e, v in by_el.items() if e in keep},
            "per_environment": {k: _pool(v) for k, v in sorted(by_env.items())}}


def overall(report: dict) -> dict:
    """The report's headline, distance bins, all-pairs MAE, band MAE and ghosts, model and H0."""
    m, h, ratio = report["model"], report["h0"], report["ratio_model_over_h0"]
    bm, bh = report["bands"]["model"], report["bands"]["h0"]
    return {"n_structures": report["n_structures"],
            "headline": {"radius_A": m["headline"]["radius_A"], "model_mae_meV": m["headline"]["mae_meV"],
                         "h0_mae_meV": h["headline"]["mae_meV"], "ratio": ratio["headline"]},
            "distance": {k: {"model_mae_meV": v["mae_meV"], "h0_mae_meV": h["distance"][k]["mae_meV"],
                             "ratio": ratio["distance"].get(k)} for k, v in m.get("distance", {}).items()},
            "all_pairs": {"model_mae_meV": m["gauge"]["mae_meV"], "h0_mae_meV": h["gauge"]["mae_meV"],
                          "ratio": ratio["gauge"]},
            "bands": {"k_mesh": report["bands"]["k_mesh"],
                      "model_band_mae_meV_pm1eV": bm.get("band_mae_meV_pm1eV"),
                      "h0_band_mae_meV_pm1eV": bh.get("band_mae_meV_pm1eV"),
                      "model_ghost_states": bm["ghost_states"], "h0_ghost_states": bh["ghost_states"],
                      "checked_eigenvalues": bm["ghost_checked_eigenvalues"]}}


def build_card(report: dict, describe: Callable[[int], tuple[list[str], str]], *, meta: dict,
               zero_shot: dict | None = None, zero_shot_elements: Iterable[str] = (),
               zero_shot_meta: dict | None = None, element_variant: dict | None = None,
               element_variant_meta: dict | None = None, timing: dict | None = None) -> dict:
    """The card of a model: ``report`` its evaluation on held-out structures, ``zero_shot`` the
    evaluation of its retraining without ``zero_shot_elements`` on the same structures (kept: the rows
    of those elements), ``element_variant`` the evaluation of the element-embedding variant, ``timing``
    predict against generate for the same cells, ``meta`` what and how (commands, budgets, dataset)."""
    rows = structure_rows(report, describe)
    card = {"format": "nextham-model-card", "format_version": 1, **meta, "overall": overall(report),
            **grouped(rows), "structure_rows": rows}
    if zero_shot is not None:
        zrows = structure_rows(zero_shot, describe)
        els = list(zero_shot_elements)
        card["zero_shot"] = {**(zero_shot_meta or {}), "elements": els,
                             "per_element": grouped(zrows, els)["per_element"],
                             "same_structures_full_model": grouped(rows, els)["per_element"],
                             "overall_without_left_out": _pool(r for r in zrows if not set(r["elements"]) & set(els)),
                             "structure_rows": zrows}
    if element_variant is not None:
        card["element_embedding"] = {**(element_variant_meta or {}), "overall": overall(element_variant)}
    if timing is not None:
        card["timing"] = timing
    return card


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_card(card: dict) -> str:
    """The card as text: what the model is, the overall figures, the zero-shot and variant rows, the
    per-environment and the per-element tables."""
    o = card["overall"]
    hl = o["headline"]
    lines = [f"model card: {card.get('name', '?')}  ({card.get('summary', '')})",
             f"  trained: {card.get('training', {}).get('command', '?')} ({_stages(card.get('training', {}))})",
             f"  data: {card.get('dataset', {}).get('description', '?')}",
             f"  evaluated: {card.get('evaluation', {}).get('command', '?')}",
             f"  held-out structures: {o['n_structures']} ({card.get('evaluation', {}).get('test_set', '')})",
             "",
             f"headline gauge MAE (blocks within {hl['radius_A']:g} Å): model {_f(hl['model_mae_meV'])} meV | "
             f"H0 {_f(hl['h0_mae_meV'])} meV | ratio {_f(hl['ratio'])}"]
    for k, v in o["distance"].items():
        lines.append(f"  {'on-site' if k == 'onsite' else 'r ' + k + ' Å':12s} model {_f(v['model_mae_meV'])} | "
                     f"H0 {_f(v['h0_mae_meV'])} | ratio {_f(v['ratio'])}")
    ap = o["all_pairs"]
    lines.append(f"all pairs: model {_f(ap['model_mae_meV'])} | H0 {_f(ap['h0_mae_meV'])} | ratio {_f(ap['ratio'])}")
    b = o["bands"]
    lines.append(f"band MAE within ±1 eV of E_F (k-mesh {b['k_mesh']}): model {_f(b['model_band_mae_meV_pm1eV'], 2)} "
                 f"meV | H0 {_f(b['h0_band_mae_meV_pm1eV'], 2)} meV; ghost states (±3 eV): model "
                 f"{b['model_ghost_states']} | H0 {b['h0_ghost_states']} of {b['checked_eigenvalues']} eigenvalues")
    per = card["per_element"]
    worse = sorted(e for e, v in per.items() if v["ratio"] is not None and v["ratio"] > 1)
    lines.append(f"elements with a ratio above 1 (the model worse than H0): {', '.join(worse) if worse else 'none'}")
    if "element_embedding" in card:
        ee = card["element_embedding"]["overall"]["headline"]
        lines.append(f"element-embedding variant ({card['element_embedding'].get('input', '')}): headline model "
                     f"{_f(ee['model_mae_meV'])} | H0 {_f(ee['h0_mae_meV'])} | ratio {_f(ee['ratio'])}")
    if "zero_shot" in card:
        z = card["zero_shot"]
        lines += ["", f"zero-shot: retrained without {', '.join(z['elements'])} ({_stages(z.get('training', {}))})"]
        for e in z["elements"]:
            v, full = z["per_element"].get(e), z["same_structures_full_model"].get(e)
            if v:
                lines.append(f"  {e:3s} {v['n_structures']:3d} structures: zero-shot {_f(v['model_mae_meV'])} | "
                             f"H0 {_f(v['h0_mae_meV'])} | ratio {_f(v['ratio'])}"
                             + (f" | full model ratio {_f(full['ratio'])}" if full else ""))
    if "timing" in card:
        t = card["timing"]
        lines += ["", f"time: {t.get('summary', '')}"]
    if "fine_tuning" in card:
        lines += ["", f"fine-tuning on the demo data: {fine_tuning_summary(card['fine_tuning'])}"]
    lines += ["", "per environment (structures | model | H0 | ratio | band MAE ±1 eV model/H0 | ghosts model/H0):"]
    for k, v in card["per_environment"].items():
        lines.append(_row(k, v, 16))
    lines += ["", "per element (structures containing it):"]
    from ase.data import atomic_numbers

    for e in sorted(per, key=lambda s: atomic_numbers[s]):
        lines.append(_row(e, per[e], 4))
    return "\n".join(lines)


def fine_tuning_summary(ft: dict) -> str:
    """One line: the held-out headline ratio to H0 of each run of a fine-tuning measurement
    (``benchmarks/universal/finetune.py``: from scratch, fine-tuned, the pretrained model untouched)."""
    parts = [f"{v['label']} {_f(v['model_mae_meV'])} meV (ratio {_f(v['ratio'])}"
             + (f", {v['global_steps']} steps" if v.get("global_steps") else "") + ")"
             for v in ft["runs"]]
    return (f"{ft['n_test']} held-out structures of {ft['data']}, {ft['minutes']:g} minutes each, H0 "
            f"{_f(ft['h0_mae_meV'])} meV: " + "; ".join(parts))


def _row(label: str, v: dict, width: int) -> str:
    return (f"  {label:{width}s} {v['n_structures']:4d} | {_f(v['model_mae_meV'])} | {_f(v['h0_mae_meV'])} | "
            f"{_f(v['ratio'])} | {_f(v['model_band_mae_meV_pm1eV'], 1)}/{_f(v['h0_band_mae_meV_pm1eV'], 1)} | "
            f"{v['model_ghost_states']}/{v['h0_ghost_states']}")


def card_markdown(card: dict) -> str:
    """The measured section of ``docs/universal.md``: the card's numbers as Markdown tables."""
    from ase.data import atomic_numbers

    o = card["overall"]
    hl, b = o["headline"], o["bands"]
    t = card.get("training", {})
    lines = [f"Measured by `{card.get('evaluation', {}).get('command', '')}` on {card.get('machine', '')}.",
             "",
             f"- Training: `{t.get('command', '')}`: preset `{t.get('preset')}`, {_stages(t)}, {t.get('threads')} "
             "thread(s).",
             f"- Data: {card.get('dataset', {}).get('description', '')}.",
             f"- Held-out: {o['n_structures']} structures ({card.get('evaluation', {}).get('test_set', '')}).",
             "",
             "| figure | model | H0 | ratio |", "|---|---|---|---|",
             f"| headline gauge MAE, blocks within {hl['radius_A']:g} Å (meV) | {_f(hl['model_mae_meV'])} | "
             f"{_f(hl['h0_mae_meV'])} | {_f(hl['ratio'])} |"]
    for k, v in o["distance"].items():
        lines.append(f"| {'on-site' if k == 'onsite' else 'r ' + k + ' Å'} (meV) | {_f(v['model_mae_meV'])} | "
                     f"{_f(v['h0_mae_meV'])} | {_f(v['ratio'])} |")
    ap = o["all_pairs"]
    lines += [f"| all pairs (meV) | {_f(ap['model_mae_meV'])} | {_f(ap['h0_mae_meV'])} | {_f(ap['ratio'])} |",
              f"| band MAE within ±1 eV of E_F (meV, k-mesh {b['k_mesh']}) | {_f(b['model_band_mae_meV_pm1eV'], 2)} | "
              f"{_f(b['h0_band_mae_meV_pm1eV'], 2)} | |",
              f"| ghost states within ±3 eV (of {b['checked_eigenvalues']} eigenvalues) | {b['model_ghost_states']} | "
              f"{b['h0_ghost_states']} | |"]
    per = card["per_element"]
    worse = sorted((e for e, v in per.items() if v["ratio"] is not None and v["ratio"] > 1),
                   key=lambda e: atomic_numbers[e])
    worse_text = ", ".join(f"{e} ({per[e]['ratio']:.2f})" for e in worse) if worse else "none"
    lines += ["", f"Elements whose held-out structures the model makes worse than H0 (ratio above 1): {worse_text}."]
    if "element_embedding" in card:
        ee = card["element_embedding"]
        h = ee["overall"]["headline"]
        lines += ["", f"Element embedding beside H0 (`model.overrides.input=h0+element`, "
                  f"{ee.get('train_minutes') or 0:.1f} minutes, {ee.get('global_steps')} steps): headline {_f(h['model_mae_meV'])} meV against H0's "
                  f"{_f(h['h0_mae_meV'])} (ratio {_f(h['ratio'])}); the species-agnostic default: ratio {_f(hl['ratio'])}."]
    if "zero_shot" in card:
        z = card["zero_shot"]
        zt = z.get("training", {})
        lines += ["", f"Zero-shot: the same recipe and settings retrained without {', '.join(z['elements'])} "
                  f"(`data.exclude_elements`, {zt.get('train_minutes') or 0:.1f} minutes, {zt.get('global_steps')} steps), "
                  "each predicted on the held-out structures that contain it:", "",
                  "| element | structures | zero-shot model (meV) | H0 (meV) | ratio | full model's ratio |",
                  "|---|---|---|---|---|---|"]
        for e in z["elements"]:
            v, full = z["per_element"].get(e), z["same_structures_full_model"].get(e)
            if v:
                lines.append(f"| {e} | {v['n_structures']} | {_f(v['model_mae_meV'])} | {_f(v['h0_mae_meV'])} | "
                             f"{_f(v['ratio'])} | {_f(full['ratio']) if full else '-'} |")
    if "timing" in card:
        lines += ["", f"Time: {card['timing']['summary']}."]
    if "fine_tuning" in card:
        ft = card["fine_tuning"]
        lines += ["", f"Fine-tuning (`{ft.get('command', '')}`): {fine_tuning_summary(ft)}."]
    lines += ["", "Per environment (structures of the held-out set):", "",
              "| environment | structures | model (meV) | H0 (meV) | ratio | band MAE ±1 eV model / H0 (meV) | ghosts model / H0 |",
              "|---|---|---|---|---|---|---|"]
    for k, v in card["per_environment"].items():
        lines.append(_md_row(k, v))
    lines += ["", "Per element (held-out structures that contain it):", "",
              "| element | structures | model (meV) | H0 (meV) | ratio | band MAE ±1 eV model / H0 (meV) | ghosts model / H0 |",
              "|---|---|---|---|---|---|---|"]
    for e in sorted(per, key=lambda s: atomic_numbers[s]):
        lines.append(_md_row(e, per[e]))
    return "\n".join(lines)


def _stages(t: dict) -> str:
    """The training budget of a card's ``training`` entry: minutes, steps, epochs and the objective."""
    return (f"{t.get('train_minutes') or 0:.1f} minutes, {t.get('global_steps')} steps ({t.get('epochs')} full "
            f"epochs, {'two-space' if t.get('reciprocal_loss', True) else 'real-space'} loss)")


def _md_row(label: str, v: dict) -> str:
    return (f"| {label} | {v['n_structures']} | {_f(v['model_mae_meV'])} | {_f(v['h0_mae_meV'])} | {_f(v['ratio'])} | "
            f"{_f(v['model_band_mae_meV_pm1eV'], 1)} / {_f(v['h0_band_mae_meV_pm1eV'], 1)} | "
            f"{v['model_ghost_states']} / {v['h0_ghost_states']} |")
