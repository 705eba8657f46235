"""`nextham demo`: dataset -> training -> held-out evaluation, end to end (reruns reuse finished work)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from .errors import clear_errors
from .options import check_device


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def demo(out: Path = typer.Option(Path("nextham-demo"), "--out", help="output folder (reused by reruns)"),
             per_material: int = typer.Option(8, "--per-material", help="structures per material (Si, GaAs, AlP)"),
             minutes: float = typer.Option(4.0, "--minutes", help="training time budget (min; the cosine "
                                           "schedule runs over it)"),
             epochs: int = typer.Option(1000, "--epochs", help="at most this many training epochs"),
             preset: str = typer.Option("tiny", "--preset", help="model preset (tiny, small, paper)"),
             soc: bool = typer.Option(True, "--soc/--no-soc", help="spin-orbit coupling"),
             workers: int = typer.Option(2, "--workers", help="engine worker processes (0: in this process)"),
             device: str = typer.Option("auto", "--device", help="auto, cpu, cuda"),
             builtin: bool = typer.Option(False, "--builtin", help="only the built-in analytic example (seconds)")) -> None:
        """Generate a small seeded SOC dataset with the embedded engine, train a small model, predict
        held-out structures and report: gauge MAE of the model vs H0, band errors, ghost states,
        timing, and a band plot DFT vs H0 vs predicted."""
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        if builtin:
            import json

            from ..workflows.builtin_example import run_builtin_example

            typer.echo(json.dumps(run_builtin_example(out / "builtin"), indent=2))
            return
        from ..nn.config import PRESETS
        from ..workflows.demo import DemoSettings, run_demo

        # every option is checked before the dataset stage (minutes of DFT) starts
        if preset not in PRESETS:
            raise UsageError(f"--preset {preset!r}: unknown (choose from {', '.join(sorted(PRESETS))})")
        if per_material < 2:
            raise UsageError(f"--per-material must be >= 2 (a training and a held-out structure per material; "
                             f"got {per_material})")
        if epochs < 1:
            raise UsageError(f"--epochs must be >= 1 (got {epochs})")
        if not minutes > 0:
            raise UsageError(f"--minutes must be > 0 (got {minutes})")
        if workers < 0:
            raise UsageError(f"--workers must be >= 0 (got {workers})")
        check_device(device)

        s = DemoSettings(per_material=per_material, epochs=epochs, minutes=minutes, preset=preset, soc=soc,
                         workers=workers)
        summary = run_demo(out, s, log=lambda m: typer.echo(m), device=device)
        if not summary["beats_h0"]:
            raise typer.Exit(1)
