"""`nextham predict STRUCTURE --model CKPT --out RECORD [--soc]`: H from H0 without SCF."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .errors import clear_errors


def predict_structure(structure: Path, model_path: Path, out: Path, soc: Optional[bool] = None, fmt: str = "auto",
                      device: str = "auto", engine_name: Optional[str] = None) -> dict:
    """Engine (S, H0 only) -> model -> written record; returns the format, the output and stage times (s)."""
    import ase.io

    from ..inference import load_trained_model, predict_structure as predict, select_device
    from ..io.registry import write

    t = time.perf_counter()
    trained = load_trained_model(model_path, select_device(device))
    times = {"load_model_s": time.perf_counter() - t}
    if soc is not None and soc != trained.spinful:
        raise ValueError(f"the model was trained {'with' if trained.spinful else 'without'} spin-orbit coupling; "
                         f"{'add' if trained.spinful else 'drop'} --soc")
    pred, stage_times = predict(trained, ase.io.read(structure), engine_name)
    times.update(stage_times)
    t = time.perf_counter()
    if fmt == "auto":
        fmt = "nextham" if out.suffix in (".h5", ".hdf5") else "deeph"
    write(pred, out, fmt)
    times["write_s"] = time.perf_counter() - t
    return {"format": fmt, "out": str(out), **times}


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def predict(structure: Path = typer.Argument(..., help="structure file readable by ASE (CIF, POSCAR, extxyz, ...)"),
                model: Path = typer.Option(..., "--model", help="trained model (model.pt / best.pt)"),
                out: Path = typer.Option(..., "--out", help="output: .h5 record, or a folder for --format abacus/deeph"),
                soc: Optional[bool] = typer.Option(None, "--soc/--no-soc", help="spin-orbit (must match the model)"),
                fmt: str = typer.Option("auto", "--format", help="nextham, abacus, deeph, deeph-legacy "
                                                                 "(auto: nextham for .h5, else deeph)"),
                engine: Optional[str] = typer.Option(None, "--engine", help="engine (default: the training data's)"),
                device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N")) -> None:
        """Predict the self-consistent H of a structure: the engine computes S and H0 only (no SCF), the
        model adds the correction. Prints the time of each stage."""
        if not structure.exists():
            raise FileNotFoundError(f"{structure}: no such structure file")
        res = predict_structure(structure, model, out, soc, fmt, device, engine)
        for k, v in res.items():
            typer.echo(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
