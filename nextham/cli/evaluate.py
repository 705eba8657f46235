"""`nextham evaluate DATASET --model CKPT [--split test] --out report/`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import clear_errors


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def evaluate(dataset: Path = typer.Argument(..., help="dataset store file or folder of records"),
                 model: Path = typer.Option(..., "--model", help="trained model (model.pt / best.pt / last.pt)"),
                 split: str = typer.Option("test", "--split", help="train, val, test or all"),
                 out: Path = typer.Option(Path("report"), "--out", help="report folder"),
                 k_mesh: str = typer.Option("4,4,4", "--k-mesh", help="k-grid for band errors and ghost states"),
                 band_plots: int = typer.Option(3, "--band-plots", help="structures whose bands are plotted"),
                 limit: Optional[int] = typer.Option(None, "--limit", help="evaluate only the first N structures"),
                 device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N")) -> None:
        """Gauge MAE (overall, spin blocks, distance bins, elements) of the model and of H0, band errors,
        ghost states and timing; writes report.json and plots."""
        from ..analysis.evaluate import evaluate as run, summary_lines

        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"--split must be train, val, test or all (got {split!r})")
        mesh = tuple(int(x) for x in k_mesh.replace("x", ",").split(","))
        if len(mesh) != 3:
            raise ValueError(f"--k-mesh needs three integers, got {k_mesh!r}")
        report = run(dataset, model, out, split=split, device=device, k_mesh=mesh, band_plots=band_plots,
                     limit=limit, log=lambda m: typer.echo(m, err=True))
        for line in summary_lines(report):
            typer.echo(line)
        typer.echo(f"report: {out / 'report.json'}")
