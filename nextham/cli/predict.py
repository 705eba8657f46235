"""`nextham predict STRUCTURE --model CKPT --out RECORD [--soc]`: H from H0 without SCF."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import typer

from ..errors import InputFileError, UsageError
from .errors import clear_errors
from .options import check_device

OUT_FORMATS = ("auto", "nextham", "abacus", "deeph", "deeph-legacy")


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


def predict_structure(structure: str | Path, model_path: str | Path, out: Path, soc: Optional[bool] = None,
                      fmt: str = "auto", device: str = "auto", engine_name: Optional[str] = None,
                      log: Callable[[str], None] = print) -> dict:
    """Structure file -> :func:`nextham.inference.predict_structure` -> written record; returns the stage
    times (s). ``log`` gets a line as each stage starts."""
    from ..basis.orbitals import Basis
    from ..checkpoint import load_checkpoint
    from ..inference import load_trained_model, predict_structure as predict, select_device
    from ..io.registry import write

    from ..models import model_card, resolve_model

    atoms = read_structure(structure)
    t = time.perf_counter()
    name = str(model_path)
    model_path = resolve_model(model_path)
    log(f"loading the model {model_path}")
    ckpt = load_checkpoint(model_path)  # refuses a wrong file, an unknown element or spin before any compute
    model_basis = Basis.from_json(ckpt["basis"])
    overrides = ckpt["config"]["model"].get("overrides", {})
    species_agnostic = overrides.get("statistics") == "factorized" and "element" not in overrides.get("input", "h0")
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(model_basis.symbols))
    if unknown and not species_agnostic:
        raise UsageError(f"{structure}: element(s) {', '.join(unknown)} unknown to the model {model_path} "
                         f"(trained on {', '.join(model_basis.symbols)})")
    for warning in element_warnings(atoms, ckpt, model_card(name)):
        log(f"WARNING: {warning}")
    spinful = bool(ckpt["spinful"])
    if soc is not None and soc != spinful:
        raise UsageError(f"the model was trained {'with' if spinful else 'without'} spin-orbit coupling; "
                         f"{'drop --soc' if not spinful else 'use --soc'}")
    trained = load_trained_model(model_path, select_device(device))
    times = {"load_model_s": time.perf_counter() - t}
    pred, stage_times = predict(trained, atoms, engine_name, log=log, where=str(structure))
    times.update(stage_times)
    pred.validate(hermitian_tol=None)
    t = time.perf_counter()
    if fmt == "auto":
        fmt = "nextham" if out.suffix in (".h5", ".hdf5") else "deeph"
    log(f"writing {out} ({fmt})")
    write(pred, out, fmt)
    times["write_s"] = time.perf_counter() - t
    return {"format": fmt, "out": str(out), "fermi_energy_eV": pred.fermi_energy_eV, **times}


#: elements seen in fewer training structures than this get a warning with their measured error
FEW_STRUCTURES = 20


def element_warnings(atoms, ckpt: dict, card: dict | None) -> list[str]:
    """One line per element of ``atoms`` that the model saw in fewer than :data:`FEW_STRUCTURES`
    training structures (``ckpt["element_counts"]``, written when a model is shipped), naming its
    measured error from the model card where the card has it."""
    counts = ckpt.get("element_counts")
    if not counts:
        return []
    per_element = (card or {}).get("per_element", {})
    zero_shot = (card or {}).get("zero_shot", {}).get("per_element", {})
    out = []
    for symbol in sorted(set(atoms.get_chemical_symbols())):
        n = int(counts.get(symbol, 0))
        if n >= FEW_STRUCTURES:
            continue
        row = per_element.get(symbol) if n else zero_shot.get(symbol)
        measured = (f"measured gauge MAE {row['model_mae_meV']:.3g} meV against H0's {row['h0_mae_meV']:.3g} meV "
                    f"({row['n_structures']} {'held-out' if n else 'zero-shot'} structures)") if row else \
            "no measured error for it"
        seen = f"in only {n} training structures" if n else "in no training structure (zero-shot prediction)"
        out.append(f"element {symbol} was seen {seen}; {measured}")
    return out


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
                model: Optional[str] = typer.Option(None, "--model", help="trained model (model.pt / best.pt) "
                                                    "or a registered name; default: the built-in universal-v1"),
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
        from ..models import DEFAULT_MODEL, is_pretrained

        if model is None:
            model = DEFAULT_MODEL
            typer.echo(f"using the built-in model {DEFAULT_MODEL} (67 elements, SOC; `nextham info --model "
                       f"{DEFAULT_MODEL}` shows its measured card; --model to choose another)", err=True)
        if not is_pretrained(model) and Path(model).is_dir():
            raise UsageError(f"--model {model}: is a directory; give the model file (model.pt)")
        res = predict_structure(structure, model, out, soc, fmt, device, engine,
                                log=lambda m: typer.echo(m, err=True))
        for k, v in res.items():
            typer.echo(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
