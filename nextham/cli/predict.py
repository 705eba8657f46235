"""`nextham predict STRUCTURE --model CKPT --out RECORD [--soc]`: H from H0 without SCF."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from .errors import clear_errors


def check_basis(model_basis, record) -> None:
    """The engine's basis for each element must be the one the model was trained on."""
    for el in record.basis.elements:
        if el.symbol not in model_basis:
            raise ValueError(f"the model was not trained on element {el.symbol} "
                             f"(it knows {', '.join(model_basis.symbols)})")
        if model_basis[el.symbol].ls != el.ls:
            raise ValueError(f"element {el.symbol}: the engine's basis {el.spec()} differs from the model's "
                             f"{model_basis[el.symbol].spec()}; use the engine settings of the training data")


def predict_structure(structure: Path, model_path: Path, out: Path, soc: Optional[bool] = None, fmt: str = "auto",
                      device: str = "auto", engine_name: Optional[str] = None, log=print) -> dict:
    """Engine (S, H0 only) -> model -> written record; returns stage times (s)."""
    import ase.io

    from ..basis.orbitals import Basis
    from ..engines import get_engine
    from ..train.distributed import select_device
    from ..train.factory import load_trained_model, predict_records

    times = {}
    t = time.perf_counter()
    dev = select_device(device)
    model, ckpt, build, collate = load_trained_model(model_path, dev)
    times["load_model_s"] = time.perf_counter() - t
    spinful = bool(ckpt["spinful"])
    if soc is not None and soc != spinful:
        raise ValueError(f"the model was trained {'with' if spinful else 'without'} spin-orbit coupling; "
                         f"{'drop' if spinful is False else 'add'} --soc")
    atoms = ase.io.read(structure)
    eng = ckpt.get("engine", {}) or {}
    name = engine_name or eng.get("name") or "gpaw"
    settings = json.loads(eng.get("settings_json", "{}")) if name == eng.get("name") else {}
    engine = get_engine(name, **settings)
    t = time.perf_counter()
    rec = engine.compute(atoms, soc=spinful, h0_only=True)
    times["engine_S_H0_s"] = time.perf_counter() - t
    check_basis(Basis.from_json(ckpt["basis"]), rec)
    t = time.perf_counter()
    pred = predict_records(model, [rec], build, collate, dev)[0]
    times["model_s"] = time.perf_counter() - t
    pred.metadata = {**pred.metadata, "predicted_by": {"checkpoint": str(model_path), "versions": ckpt["versions"]}}
    t = time.perf_counter()
    if fmt == "auto":
        fmt = "nextham" if out.suffix in (".h5", ".hdf5") else "deeph"
    from ..io.registry import write

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
