"""Fine-tuning a shipped model against training from scratch on the demo's data, at the same budget.

    python benchmarks/universal/finetune.py --out runs/finetune [--minutes 4] [--lr 2e-3] [--ship]

1. the demo's dataset (``nextham demo``'s 24 strained/displaced Si, GaAs and AlP cells with SOC at its
   engine settings; resumable) in ``<out>/dataset.lmdb``;
2. from scratch: the demo's training config as it is (``nextham demo``'s model and learning rate) for
   ``--minutes``;
3. fine-tuned: the same config with ``model.init_from=<model>`` (the pretrained architecture, basis and
   output statistics) and ``optim.lr=--lr``, for the same minutes; 2 and 3 run side by side, one
   thread each, so that both see the same machine;
4. the pretrained model untouched (no training on this data);

each evaluated on the demo's held-out structures (its split: 5 of 24). Writes ``<out>/finetune.json``;
``--ship`` adds it to the shipped card (``nextham/pretrained/<model>.card.json``, docs/universal.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _headline(report: dict) -> dict:
    m, h = report["model"]["headline"]["mae_meV"], report["h0"]["headline"]["mae_meV"]
    return {"model_mae_meV": m, "h0_mae_meV": h, "ratio": m / h,
            "onsite_ratio": report["ratio_model_over_h0"]["distance"].get("onsite"),
            "model_band_mae_meV_pm1eV": report["bands"]["model"].get("band_mae_meV_pm1eV"),
            "model_ghost_states": report["bands"]["model"]["ghost_states"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/finetune"))
    ap.add_argument("--model", default="universal-v1")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget of each run (the demo's)")
    ap.add_argument("--lr", type=float, default=2e-3, help="fine-tuning learning rate (min_lr: lr/100)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args()

    from nextham.analysis.evaluate import evaluate
    from nextham.checkpoint import load_checkpoint
    from nextham.data.generate import generate
    from nextham.models import is_pretrained, model_card, resolve_model
    from nextham.workflows.demo import DemoSettings, demo_structures, demo_train_config

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    s = DemoSettings(minutes=args.minutes)
    data = out / "dataset.lmdb"
    generate(demo_structures(s), data, engine_name=s.engine, engine_settings=dict(s.engine_settings), soc=s.soc,
             workers=args.workers, progress=False, command="benchmarks/universal/finetune.py")

    variants = {
        "scratch": demo_train_config(data, out / "scratch", s),
        "fine-tuned": demo_train_config(data, out / "fine-tuned", s, overrides=[
            f"model.init_from={args.model}", f"optim.lr={args.lr}", f"optim.min_lr={args.lr / 100}"]),
    }
    procs = {}
    for tag, cfg in variants.items():
        path = out / f"{tag}.yaml"
        path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if not (out / tag / "model.pt").exists():
            log = open(out / f"{tag}.log", "w")
            procs[tag] = (subprocess.Popen([sys.executable, "-m", "nextham.cli.main", "train", str(path)],
                                           stdout=log, stderr=subprocess.STDOUT), log)
    for tag, (proc, log) in procs.items():
        code = proc.wait()
        log.close()
        if code != 0:
            sys.exit(f"training {tag} failed: see {out / (tag + '.log')}")

    runs = []
    for tag, label in (("scratch", "from scratch"), ("fine-tuned", f"fine-tuned from {args.model}")):
        rep = evaluate(data, out / tag / "model.pt", out / f"report_{tag}", split="test", device="cpu",
                       band_plots=0, log=lambda m: None)
        ck = load_checkpoint(out / tag / "model.pt")
        runs.append({"label": label, "run": tag, **_headline(rep),
                     "global_steps": ck.get("progress", {}).get("global_step"),
                     "lr": ck["config"]["optim"]["lr"]})
    rep = evaluate(data, resolve_model(args.model), out / "report_pretrained", split="test", device="cpu",
                   band_plots=0, log=lambda m: None)
    runs.append({"label": f"{args.model} untouched", "run": "pretrained", **_headline(rep)})
    result = {"data": "the demo's data (24 Si, GaAs, AlP SOC cells; its split)", "n_test": rep["n_structures"],
              "minutes": args.minutes, "h0_mae_meV": runs[0]["h0_mae_meV"], "runs": runs,
              "command": "python benchmarks/universal/finetune.py " + " ".join(sys.argv[1:])}
    (out / "finetune.json").write_text(json.dumps(result, indent=1))
    from nextham.analysis.model_card import fine_tuning_summary

    print(fine_tuning_summary(result))
    if args.ship:
        from nextham.workflows.universal import ship_card

        if not is_pretrained(args.model):
            sys.exit(f"--ship: {args.model} is not a registered model")
        card = model_card(args.model)
        card["fine_tuning"] = result
        print(f"wrote {ship_card(card, args.model, REPO / 'nextham' / 'pretrained', REPO / 'docs' / 'universal.md')}")


if __name__ == "__main__":
    main()
