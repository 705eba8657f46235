"""`nextham predict STRUCTURE --model CKPT --out RECORD [--soc]`: H from H0 without SCF."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer

from ..errors import InputFileError, UsageError
from .errors import clear_errors
from .options import check_device

OUT_FORMATS = ("auto", "nextham", "abacus", "deeph", "deeph-legacy")


def check_basis(model_basis, record) -> None:
    """The engine's basis for each element must be the one the model was trained on."""
    for el in record.basis.elements:
        if el.symbol not in model_basis:
            raise UsageError(f"the model was not trained on element {el.symbol} "
                             f"(it knows {', '.join(model_basis.symbols)})")
        if model_basis[el.symbol].ls != el.ls:
            raise UsageError(f"element {el.symbol}: the engine's basis {el.spec()} differs from the model's "
                             f"{model_basis[el.symbol].spec()}; use the engine settings of the training data")


def read_structure(text: str | Path):
    """One structure from an ASE-readable file; ``FILE@N`` picks frame N of a multi-frame file."""
    import ase.io

    from ..data.generate import check_atoms
    from ..data.reference import split_reference
    from ..engines.base import EngineInputError

    path, selector = split_reference(text)
    if not path.exists():
        raise UsageError(f"{path}: no such structure file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give one structure file (CIF, POSCAR, extxyz, ...)")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file, no structure in it")
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # noqa: BLE001 - ASE's readers raise anything on garbage
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputFileError(f"{path}: cannot read a structure ({type(exc).__name__}: {first})") from None
    if not frames:
        raise InputFileError(f"{path}: no structure in the file")
    if selector is None:
        if len(frames) > 1:
            raise UsageError(f"{path}: holds {len(frames)} structures; predict takes one: choose it as "
                             f"{path}@N (0..{len(frames) - 1})")
        atoms = frames[0]
    else:
        try:
            atoms = frames[int(selector)]
        except (ValueError, IndexError):
            raise UsageError(f"{path}@{selector}: no frame {selector} (the file holds {len(frames)})") from None
    try:
        check_atoms(atoms)
    except EngineInputError as exc:
        raise InputFileError(f"{path}: {exc}") from None
    return atoms


def predicted_fermi_level(record, kpt_density: float = 3.0, max_kpoints: int = 1000) -> tuple[float | None, dict]:
    """Fermi level (eV) of the predicted H: Gaussian-smeared (10 meV) occupation of the predicted bands
    on a Γ-centred k-mesh (``kpt_density`` points per Å^-1) holding the record's valence electrons."""
    from ase.calculators.calculator import kptdensity2monkhorstpack

    from ..physics.bands import eigenvalues
    from ..physics.dos import fermi_level
    from ..physics.kpoints import monkhorst_pack

    md = record.metadata or {}
    n_valence = md.get("n_valence", md.get("n_electrons"))
    if n_valence is None or not np.isfinite(float(n_valence)):
        return None, {"fermi_level": "not computed: the record does not store its valence electron count"}
    mesh = [int(x) for x in kptdensity2monkhorstpack(record.to_atoms(), kptdensity=kpt_density, even=False)]
    while np.prod(mesh) > max_kpoints:
        mesh = [max(1, m - 1) for m in mesh]
    eps, _ = eigenvalues(record, monkhorst_pack(tuple(mesh)), which="H")
    try:
        ef = fermi_level(eps, float(n_valence), sigma=0.01, spin_degeneracy=1.0 if record.spinful else 2.0)
    except ValueError as exc:  # more valence electrons than the basis holds states
        return None, {"fermi_level": f"not computed: {exc}"}
    return ef, {"fermi_level": {"from": "predicted bands", "k_mesh": mesh, "n_valence": float(n_valence),
                                "smearing": "gaussian 0.01 eV"}}


def predict_structure(structure: str | Path, model_path: Path, out: Path, soc: Optional[bool] = None,
                      fmt: str = "auto", device: str = "auto", engine_name: Optional[str] = None,
                      log: Callable[[str], None] = print) -> dict:
    """Engine (S, H0 only) -> model -> written record; returns stage times (s). ``log`` gets a line as
    each stage starts."""
    from ..basis.orbitals import Basis
    from ..data.provenance import checkpoint_settings
    from ..engines import get_engine
    from ..train.checkpoint import CheckpointError, load_checkpoint
    from ..train.distributed import select_device
    from ..train.factory import load_trained_model, predict_records

    times = {}
    atoms = read_structure(structure)
    t = time.perf_counter()
    log(f"loading the model {model_path}")
    ckpt = load_checkpoint(model_path)  # refuses a wrong file before anything is built
    model_basis = Basis.from_json(ckpt["basis"])
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(model_basis.symbols))
    if unknown:
        raise UsageError(f"{structure}: element(s) {', '.join(unknown)} unknown to the model {model_path} "
                         f"(trained on {', '.join(model_basis.symbols)})")
    spinful = bool(ckpt["spinful"])
    if soc is not None and soc != spinful:
        raise UsageError(f"the model was trained {'with' if spinful else 'without'} spin-orbit coupling; "
                         f"{'drop --soc' if not spinful else 'use --soc'}")
    dev = select_device(device)
    try:
        model, ckpt, build, collate = load_trained_model(model_path, dev)
    except RuntimeError as exc:  # load_state_dict: the weights do not fit the config's model
        if "state_dict" in str(exc):
            raise CheckpointError(f"{model_path}: its weights do not fit the model its config describes (another "
                                  f"model size or a damaged file): {str(exc).splitlines()[0][:160]}") from None
        raise
    times["load_model_s"] = time.perf_counter() - t
    trained = checkpoint_settings(ckpt)
    name = engine_name or trained["engine"] or "gpaw"
    if engine_name and trained["engine"] and engine_name != trained["engine"]:
        log(f"WARNING: the model was trained on data of engine {trained['engine']}, predicting with {engine_name}: "
            f"H0 and the basis differ from the training data")
    settings = trained["settings"] if name == trained["engine"] else {}
    engine = get_engine(name, **settings)
    from ..engines.base import EngineError

    try:
        engine.check_input(atoms)  # overlapping atoms, missing setups, ... before any compute
        t = time.perf_counter()
        log(f"computing S and H0 with {name} ({len(atoms)} atoms, no SCF)")
        rec = engine.compute(atoms, soc=spinful, h0_only=True)
    except EngineError as exc:
        raise type(exc)(f"{structure}: {exc}") from None
    times["engine_S_H0_s"] = time.perf_counter() - t
    check_basis(model_basis, rec)
    t = time.perf_counter()
    log("predicting H with the model")
    pred = predict_records(model, [rec], build, collate, dev)[0]
    times["model_s"] = time.perf_counter() - t
    t = time.perf_counter()
    log("Fermi level from the predicted bands")
    ef, ef_info = predicted_fermi_level(pred)
    times["fermi_level_s"] = time.perf_counter() - t
    pred = pred.replace(fermi_energy_eV=ef, metadata={
        **pred.metadata, **ef_info, "predicted_by": {"checkpoint": str(model_path), "versions": ckpt["versions"]}})
    pred.validate(hermitian_tol=None)
    t = time.perf_counter()
    if fmt == "auto":
        fmt = "nextham" if out.suffix in (".h5", ".hdf5") else "deeph"
    log(f"writing {out} ({fmt})")
    from ..io.registry import write

    write(pred, out, fmt)
    times["write_s"] = time.perf_counter() - t
    return {"format": fmt, "out": str(out), "fermi_energy_eV": ef, **times}


def check_out(out: Path, fmt: str, force: bool) -> None:
    """``--out`` in an existing folder, not overwriting without ``--force``."""
    if fmt not in OUT_FORMATS:
        raise UsageError(f"--format {fmt!r}: unknown (choose from {', '.join(OUT_FORMATS)})")
    if not out.parent.exists():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist (create it first)")
    if out.exists() and not force:
        raise UsageError(f"--out {out}: already exists; pass --force to overwrite it")
    if out.is_dir() and (fmt == "nextham" or (fmt == "auto" and out.suffix in (".h5", ".hdf5"))):
        raise UsageError(f"--out {out}: is a directory; a nextham record is a file")


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def predict(structure: str = typer.Argument(..., help="structure file readable by ASE (CIF, POSCAR, extxyz, "
                                                "...); FILE@N for frame N of a multi-frame file"),
                model: Path = typer.Option(..., "--model", help="trained model (model.pt / best.pt)"),
                out: Path = typer.Option(..., "--out", help="output: .h5 record, or a folder for --format abacus/deeph"),
                soc: Optional[bool] = typer.Option(None, "--soc/--no-soc", help="spin-orbit (must match the model)"),
                fmt: str = typer.Option("auto", "--format", help="nextham, abacus, deeph, deeph-legacy "
                                                                 "(auto: nextham for .h5, else deeph)"),
                engine: Optional[str] = typer.Option(None, "--engine", help="engine (default: the training data's)"),
                device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
                force: bool = typer.Option(False, "--force", help="overwrite an existing --out")) -> None:
        """Predict the self-consistent H of a structure: the engine computes S and H0 only (no SCF), the
        model adds the correction; the record carries the Fermi level of the predicted bands. Prints each
        stage as it starts and the time of each."""
        check_out(out, fmt, force)
        check_device(device)
        if model.is_dir():
            raise UsageError(f"--model {model}: is a directory; give the model file (model.pt)")
        res = predict_structure(structure, model, out, soc, fmt, device, engine,
                                log=lambda m: typer.echo(m, err=True))
        for k, v in res.items():
            typer.echo(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
