"""`nextham evaluate DATASET --model CKPT [--split test] --out report/`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputFileError, UsageError
from .errors import clear_errors
from .options import check_device, parse_mesh, positive_int


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def evaluate(dataset: Path = typer.Argument(..., help="dataset store file or folder of records"),
                 model: Path = typer.Option(..., "--model", help="trained model (model.pt / best.pt / last.pt)"),
                 split: str = typer.Option("test", "--split", help="train, val, test or all"),
                 out: Path = typer.Option(Path("report"), "--out", help="report folder"),
                 k_mesh: str = typer.Option("4,4,4", "--k-mesh", help="k-grid for band errors and ghost states"),
                 band_plots: int = typer.Option(3, "--band-plots", help="structures whose bands are plotted (>= 0)"),
                 limit: Optional[int] = typer.Option(None, "--limit", help="evaluate only the first N structures "
                                                     "(N >= 1)"),
                 device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N")) -> None:
        """Gauge MAE (overall, spin blocks, distance bins, elements) of the model and of H0, band errors,
        ghost states and timing; writes report.json and plots."""
        if split not in ("train", "val", "test", "all"):
            raise UsageError(f"--split must be train, val, test or all (got {split!r})")
        mesh = parse_mesh(k_mesh)
        positive_int(limit, "--limit")
        if band_plots < 0:
            raise UsageError(f"--band-plots must be >= 0 (got {band_plots})")
        check_device(device)
        for p, what in ((dataset, "dataset"), (model, "model")):
            if not p.exists():
                raise UsageError(f"{p}: no such {what}")
        if model.is_dir():
            raise UsageError(f"--model {model}: is a directory; give the model file (model.pt)")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        from ..analysis.evaluate import evaluate as run, summary_lines
        from ..checkpoint import CheckpointError

        _warn_if_settings_differ(dataset, model)
        try:
            report = run(dataset, model, out, split=split, device=device, k_mesh=mesh, band_plots=band_plots,
                         limit=limit, log=lambda m: typer.echo(m, err=True))
        except RuntimeError as exc:  # load_state_dict: the weights do not fit the config's model
            if "state_dict" not in str(exc):
                raise
            raise CheckpointError(f"{model}: its weights do not fit the model its config describes (another "
                                  f"model size or a damaged file): {str(exc).splitlines()[0][:160]}") from None
        for line in summary_lines(report):
            typer.echo(line)
        typer.echo(f"report: {out / 'report.json'}")


def _warn_if_settings_differ(dataset: Path, model: Path) -> None:
    """A loud warning when the dataset was computed with other engine settings than the model's
    training data (the errors then mix model error and basis/grid differences)."""
    from ..data.provenance import checkpoint_settings, dataset_settings, differences
    from ..data.reference import StoreCollection, open_collection
    from ..checkpoint import load_checkpoint

    trained = checkpoint_settings(load_checkpoint(model))
    coll = open_collection(dataset) if dataset.is_file() else None
    if not isinstance(coll, StoreCollection):
        if coll is not None:
            coll.close()
        return
    coll.close()
    try:
        data = dataset_settings(dataset)
    except InputFileError:  # the dataset does not record its settings
        return
    problems = differences(trained, data)
    if data["soc"] != trained["soc"]:
        problems.append(f"soc {trained['soc']} vs {data['soc']}")
    if problems:
        typer.echo(f"WARNING: {dataset} was computed with other engine settings than the training data of "
                   f"{model} ({'; '.join(problems)}): the errors below include that difference", err=True)
