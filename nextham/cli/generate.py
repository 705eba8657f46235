"""``nextham generate``: the dataset builder (``nextham info DATASET`` lives in cli/physics.py)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import clear_errors, register_user_error


def _parse_settings(items: list[str]) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to ``app``."""
    from ..data.store import StoreError
    from ..engines.base import EngineError

    register_user_error(StoreError)
    register_user_error(EngineError)

    @app.command()
    @clear_errors
    def generate(
        structures: List[str] = typer.Argument(..., help="structure files/folders (CIF, POSCAR, extxyz, ...) "
                                               "and/or sets: set:prototypes:N[:SEED], set:coverage[:Si,Ga]"),
        out: Path = typer.Option(..., "--out", "-o", help="dataset file to create or extend (resumes)"),
        soc: bool = typer.Option(False, "--soc", help="spin-orbit coupling (second variation on H0 and H)"),
        h0_only: bool = typer.Option(False, "--h0-only", help="only S and H0 (no SCF): for prediction"),
        workers: int = typer.Option(2, "--workers", "-w", help="Dask LocalCluster worker processes; 0 = serial "
                                    "in this process"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of a running Dask scheduler "
                                                "(tcp://host:8786); Slurm/PBS via dask-jobqueue, Kubernetes"),
        engine: str = typer.Option("gpaw", "--engine", help="engine name"),
        setting: List[str] = typer.Option([], "--set", help="engine setting KEY=VALUE (e.g. h=0.2, "
                                          "kpt_density=2.5, basis=dzp); repeatable"),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="recompute structures that failed before"),
        float32: bool = typer.Option(False, "--float32", help="store blocks in single precision"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    ) -> None:
        """Compute S, H0 and H (with --soc: spinful H0, H) of structures into a dataset; rerun to resume."""
        from ..data.generate import generate as run_generate
        from ..data.structures import gather_inputs

        inputs = gather_inputs(structures)
        if not inputs:
            raise ValueError("no structures given")
        summary = run_generate(inputs, out, engine_name=engine, engine_settings=_parse_settings(setting),
                               soc=soc, h0_only=h0_only, workers=workers, scheduler=scheduler,
                               retry_failed=retry_failed, dtype="float32" if float32 else "float64",
                               progress=not no_progress, echo=lambda m: typer.echo(m, err=True),
                               command=" ".join(shlex.quote(a) for a in sys.argv))
        typer.echo(json.dumps({"dataset": str(out), "inputs": summary.total, "computed": summary.computed,
                               "failed": summary.failed, "already_done": summary.skipped_done,
                               "failed_earlier": summary.skipped_failed, "wall_s": round(summary.wall_s, 2)},
                              indent=2))
