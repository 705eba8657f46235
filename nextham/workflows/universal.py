"""The universal model: ship a trained checkpoint into the package and measure its model card.

``ship_model`` turns a training run's ``model.pt`` into ``nextham/pretrained/<name>.pt``: float32
weights without optimizer state, with the provenance (commit, recipe and seed, engine settings, the
training command) and ``element_counts`` (training structures per element, for the warnings of
``nextham predict``). ``measure_card`` evaluates the model (and its zero-shot and element-embedding
variants) on the held-out structures of the recipe and writes the card JSON that ``nextham info
--model NAME`` prints; ``benchmarks/universal/card.py`` is the command.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from ..analysis.evaluate import evaluate
from ..analysis.model_card import build_card
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.recipes import environment_of


def element_counts(dataset: str | Path, indices) -> dict[str, int]:
    """Training structures containing each element (dataset ``indices``)."""
    from ase.data import chemical_symbols

    from ..data.store import DatasetStore

    counts: Counter = Counter()
    with DatasetStore(dataset, mode="r") as store:
        for i in indices:
            for z in set(int(x) for x in store[int(i)].numbers):
                counts[chemical_symbols[z]] += 1
    return dict(sorted(counts.items()))


def ship_model(run_model: str | Path, dataset: str | Path, out: str | Path, name: str,
               command: str) -> Path:
    """Write the shippable checkpoint of a finished run (see the module docstring)."""
    ck = load_checkpoint(run_model)
    ck.pop("optimizer", None)
    ck.pop("rng", None)
    ck["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in ck["model"].items()}
    ck["element_counts"] = element_counts(dataset, ck["split"]["train"])
    ck["provenance"] = {**ck.get("provenance", {}), "name": name, "training_command": command}
    ck["split"] = {k: [] for k in ck["split"]}  # indices of a dataset the user does not have
    ck["dataset"] = Path(str(ck["dataset"])).name
    ck.pop("format", None)
    ck.pop("format_version", None)
    return save_checkpoint(out, ck)


def ship_card(card: dict, name: str, package_dir: str | Path, doc: str | Path | None = None) -> Path:
    """Write ``card`` as ``<package_dir>/<name>.card.json`` (what ``nextham info --model`` prints) and,
    with ``doc``, its Markdown between the doc's ``<!-- card:start -->`` and ``<!-- card:end -->``."""
    from ..analysis.model_card import card_markdown

    path = Path(package_dir) / f"{name}.card.json"
    path.write_text(json.dumps(card, indent=1, default=float))
    if doc is not None:
        doc = Path(doc)
        start, end = "<!-- card:start -->", "<!-- card:end -->"
        head, rest = doc.read_text().split(start, 1)
        doc.write_text(head + start + "\n" + card_markdown(card) + "\n" + end + rest.split(end, 1)[1])
    return path


def describe_dataset(dataset: str | Path) -> Callable[[int], tuple[list[str], str]]:
    """``key -> (elements, environment)`` of a recipe dataset (environment from the structure name)."""
    from ase.data import chemical_symbols

    from ..data.store import DatasetStore

    info: dict[int, tuple[list[str], str]] = {}
    with DatasetStore(dataset, mode="r") as store:
        status = store.status()
        for i in range(len(store)):
            name = status.get(store.key(i), {}).get("name", "")
            els = sorted({chemical_symbols[int(z)] for z in store[i].numbers})
            info[i] = (els, environment_of(name) or "other")
    return info.__getitem__


def time_predictions(model: str | Path, dataset: str | Path, n: int, log: Callable[[str], None]) -> dict:
    """In-process ``predict`` (engine S + H0 with the model's settings, the model, the Fermi level) of the
    first ``n`` structures of ``dataset``, against the ``generate`` time (S, H0 and the SCF, ``t_total``)
    that the same engine recorded for them."""
    import torch

    from ..data.store import DatasetStore
    from ..inference import load_trained_model, predict_structure

    trained = load_trained_model(model, "cpu")
    rows = []
    with DatasetStore(dataset, mode="r") as store:
        recs = [store[i] for i in range(min(n, len(store)))]
    predict_structure(trained, recs[0].to_atoms())  # warm-up: set-ups, lazy initialisation
    for rec in recs:
        atoms = rec.to_atoms()
        t = time.perf_counter()
        _, stages = predict_structure(trained, atoms)
        rows.append({"formula": atoms.get_chemical_formula(), "n_atoms": len(atoms),
                     "predict_s": time.perf_counter() - t, **stages,
                     "generate_s": float(rec.metadata["timings"]["t_total"]),
                     "scf_s": float(rec.metadata["timings"].get("t_SCF", float("nan")))})
        log(f"  {rows[-1]['formula']}: predict {rows[-1]['predict_s']:.2f} s, generate {rows[-1]['generate_s']:.2f} s")
    tp, tg = sum(r["predict_s"] for r in rows), sum(r["generate_s"] for r in rows)
    return {"rows": rows, "threads": torch.get_num_threads(), "total_predict_s": tp, "total_generate_s": tg,
            "ratio": tp / tg,
            "summary": f"predict (S + H0 + model + Fermi level, in one process, warm) {tp:.1f} s against generate "
                       f"(S + H0 + SCF, recorded by the same engine) {tg:.1f} s for {len(rows)} held-out cells: "
                       f"ratio {tp / tg:.2f} (demo engine settings)"}


def measure_card(model: str | Path, test_dataset: str | Path, out_dir: str | Path, meta: dict, *,
                 zero_shot_model: str | Path | None = None, zero_shot_elements=(), zero_shot_meta: dict | None = None,
                 element_model: str | Path | None = None, element_meta: dict | None = None,
                 timing_structures: int = 12, k_mesh=(4, 4, 4), limit: int | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """Evaluate and write ``<out_dir>/card.json`` (and each evaluation's report folder)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for tag, path in (("model", model), ("zero_shot", zero_shot_model), ("element", element_model)):
        if path is None:
            continue
        log(f"evaluating {tag}: {path} on {test_dataset}")
        rep_dir = out / f"report_{tag}"
        if (rep_dir / "report.json").exists():
            reports[tag] = json.loads((rep_dir / "report.json").read_text())
        else:
            reports[tag] = evaluate(test_dataset, path, rep_dir, split="all", device="cpu", k_mesh=tuple(k_mesh),
                                    band_plots=0, limit=limit, log=log)
    timing = None
    if timing_structures:
        log("timing predict against generate")
        timing = time_predictions(model, test_dataset, timing_structures, log)
    card = build_card(reports["model"], describe_dataset(test_dataset), meta=meta,
                      zero_shot=reports.get("zero_shot"), zero_shot_elements=zero_shot_elements,
                      zero_shot_meta=zero_shot_meta, element_variant=reports.get("element"),
                      element_variant_meta=element_meta, timing=timing)
    (out / "card.json").write_text(json.dumps(card, indent=1, default=float))
    return card
