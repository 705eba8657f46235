"""Measure the model card of a universal model and ship it into the package.

    # 1. data (resumable): the training set and the held-out set (another seed of the same recipe)
    nextham generate --recipe universal-v1 --out data/universal-v1.lmdb
    nextham generate --recipe universal-v1 --seed 1 --per-element 2 --out data/universal-v1-test.lmdb
    # 2. the model, its element-embedding variant and its zero-shot retraining
    nextham train examples/train_universal.yaml data.path=data/universal-v1.lmdb
    nextham train examples/train_universal.yaml data.path=data/universal-v1.lmdb \
        model.overrides.input=h0+element optim.max_minutes=20 run.out_dir=runs/universal-v1-element
    nextham train examples/train_universal.yaml data.path=data/universal-v1.lmdb \
        data.exclude_elements=[Mg,Co,Pb] optim.max_minutes=30 run.out_dir=runs/universal-v1-zeroshot
    # 3. evaluate all three on the held-out set, time predict, write the card, ship the weights
    python benchmarks/universal/card.py --data data/universal-v1.lmdb --test data/universal-v1-test.lmdb \
        --run runs/universal-v1 --element-run runs/universal-v1-element --zero-shot-run runs/universal-v1-zeroshot \
        --zero-shot-elements Mg,Co,Pb --ship

Writes ``<out>/card.json`` (and one evaluation report folder per model); with ``--ship`` also
``nextham/pretrained/universal-v1.pt`` and ``universal-v1.card.json`` and ``docs/universal.md``'s
measured section (from the card, never typed by hand).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run_meta(run: Path) -> dict:
    from nextham.checkpoint import load_checkpoint

    ck = load_checkpoint(run / "model.pt")
    cfg = ck["config"]
    return {"out_dir": str(run), "preset": cfg["model"]["preset"], "overrides": cfg["model"]["overrides"],
            "max_minutes": cfg["optim"]["max_minutes"], "lr": cfg["optim"]["lr"],
            "train_minutes": ck.get("metrics", {}).get("train_minutes"),
            "global_steps": ck.get("progress", {}).get("global_step"),
            "epochs": ck.get("progress", {}).get("epoch"), "threads": cfg["run"].get("num_threads"),
            "exclude_elements": cfg["data"].get("exclude_elements", []),
            "reciprocal_loss": cfg["loss"]["reciprocal"]["enabled"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the training dataset (element counts)")
    ap.add_argument("--test", required=True, help="the held-out dataset (another seed of the recipe)")
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--element-run", type=Path)
    ap.add_argument("--zero-shot-run", type=Path)
    ap.add_argument("--zero-shot-elements", default="")
    ap.add_argument("--name", default="universal-v1")
    ap.add_argument("--out", type=Path, default=Path("runs/universal-v1-card"))
    ap.add_argument("--timing-structures", type=int, default=12)
    ap.add_argument("--limit", type=int, help="evaluate only the first N held-out structures (dry runs)")
    ap.add_argument("--machine", default="2-core CPU (the project's developer machine), one thread per model")
    ap.add_argument("--ship", action="store_true", help="copy weights and card into the package, write the doc")
    args = ap.parse_args()

    import torch

    from nextham.data.store import DatasetStore
    from nextham.workflows.universal import measure_card, ship_model

    torch.set_num_threads(1)
    with DatasetStore(args.data, mode="r") as store:
        man = store.manifest
        n_train_set, size = len(store), Path(args.data).stat().st_size
        gen_s = sum(float(store[i].metadata["timings"]["t_total"]) for i in range(len(store)))
    with DatasetStore(args.test, mode="r") as store:
        test_man = store.manifest
    main_meta = _run_meta(args.run)
    recipe = man.get("recipe") or {}
    meta = {
        "name": args.name,
        "summary": f"{main_meta['preset']} preset, species-agnostic (inputs from H0), SOC, "
                   f"{len(recipe.get('elements', [])) or '?'} elements",
        "machine": args.machine,
        "dataset": {"recipe": recipe, "structures": n_train_set, "bytes": size,
                    "engine_seconds_one_core": gen_s, "command": (man.get("run") or {}).get("command"),
                    "description": f"{n_train_set} structures of recipe {recipe.get('name')} (seed {recipe.get('seed')}), "
                                   f"{size / 1e9:.2f} GB, {gen_s / 3600:.2f} core-hours of engine time"},
        "training": {**main_meta, "command": f"nextham train examples/train_universal.yaml data.path={args.data}"},
        "evaluation": {"command": "python benchmarks/universal/card.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False, "", True)),
            "test_set": f"recipe {(test_man.get('recipe') or {}).get('name')} seed "
                        f"{(test_man.get('recipe') or {}).get('seed')}, "
                        f"{(test_man.get('recipe') or {}).get('per_element')} per element, never trained on"},
    }
    zs_els = [e for e in args.zero_shot_elements.split(",") if e]
    card = measure_card(
        args.run / "model.pt", args.test, args.out, meta,
        zero_shot_model=args.zero_shot_run / "model.pt" if args.zero_shot_run else None,
        zero_shot_elements=zs_els,
        zero_shot_meta={"training": _run_meta(args.zero_shot_run)} if args.zero_shot_run else None,
        element_model=args.element_run / "model.pt" if args.element_run else None,
        element_meta={**_run_meta(args.element_run), "input": "h0+element"} if args.element_run else None,
        timing_structures=args.timing_structures, limit=args.limit, log=print)
    from nextham.analysis.model_card import format_card

    print(format_card(card))
    if args.ship:
        from nextham.workflows.universal import ship_card

        pre = REPO / "nextham" / "pretrained"
        ship_model(args.run / "model.pt", args.data, pre / f"{args.name}.pt", args.name, meta["training"]["command"])
        # a new card has no fine-tuning section: benchmarks/universal/finetune.py --ship measures it with these weights
        ship_card(card, args.name, pre, REPO / "docs" / "universal.md")
        print(f"shipped {pre / (args.name + '.pt')} ({(pre / (args.name + '.pt')).stat().st_size / 1e6:.2f} MB)")
    print(json.dumps({"card": str(args.out / "card.json")}))


if __name__ == "__main__":
    main()
