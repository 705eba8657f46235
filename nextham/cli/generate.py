"""``nextham generate``: the dataset builder (``nextham info DATASET`` lives in cli/physics.py)."""

from __future__ import annotations

import inspect
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import UsageError
from .errors import clear_errors

#: float settings that must be > 0 (others must be >= 0)
POSITIVE_SETTINGS = frozenset({"h", "kpt_density", "cutoff", "smearing_eV"})


def _parse_settings(items: list[str]) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise UsageError(f"--set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def setting_defaults(engine_name: str) -> dict[str, Any]:
    """name -> default value of every setting of an engine (the type each ``--set`` must have)."""
    from ..engines.base import ENGINES, get_engine

    if engine_name == "gpaw":
        from dataclasses import fields

        from ..engines.gpaw import GPAWSettings

        return {f.name: f.default for f in fields(GPAWSettings)}
    if engine_name not in ENGINES:
        get_engine(engine_name)  # imports the engine module, or raises EngineUnavailable
    params = inspect.signature(ENGINES[engine_name].__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and p.kind == p.POSITIONAL_OR_KEYWORD}


def validate_settings(engine_name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of engine settings before any structure is computed."""
    defaults = setting_defaults(engine_name)
    for key, value in settings.items():
        if key not in defaults:
            raise UsageError(f"--set {key}: unknown setting of engine {engine_name!r} (known: "
                             f"{', '.join(sorted(defaults))})")
        default = defaults[key]
        shown = f"--set {key}={json.dumps(value) if not isinstance(value, str) else value}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise UsageError(f"{shown}: expected true or false")
        elif isinstance(default, float) or (isinstance(default, int) and key in POSITIVE_SETTINGS):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{shown}: expected a number")
            if value < 0 or (key in POSITIVE_SETTINGS and value == 0):
                raise UsageError(f"{shown}: must be {'positive' if key in POSITIVE_SETTINGS else '>= 0'}")
            settings[key] = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{shown}: expected a non-negative integer")
        elif isinstance(default, str):
            if not isinstance(value, str) or not value:
                raise UsageError(f"{shown}: expected a name")
        elif isinstance(default, (tuple, list)) and default and all(isinstance(x, int) for x in default):
            if not isinstance(value, list) or len(value) != len(default) or \
                    not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value):
                raise UsageError(f"{shown}: expected a list of {len(default)} positive integers, e.g. [1,1,1]")
        elif isinstance(default, (tuple, list)):
            if isinstance(value, str):
                settings[key] = [x for x in value.split(",") if x]
            elif not isinstance(value, list):
                raise UsageError(f"{shown}: expected a list")
        elif default is None and value is not None and not isinstance(value, (dict, list, str)):
            raise UsageError(f"{shown}: expected a JSON object")
    if engine_name == "gpaw" and ("basis" in settings or "xc" in settings):
        from ..engines.gpaw import available_elements

        basis, xc = settings.get("basis", defaults["basis"]), settings.get("xc", defaults["xc"])
        if not available_elements(xc, basis):
            raise UsageError(f"--set basis={basis} (xc {xc}): no GPAW setup has this basis set (e.g. dzp, szp(dzp))")
    return settings


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to ``app``."""

    @app.command()
    @clear_errors
    def generate(
        structures: Optional[List[str]] = typer.Argument(None, help="structure files/folders (CIF, POSCAR, "
                                                         "extxyz, ...) and/or sets: set:prototypes:N[:SEED], "
                                                         "set:coverage[:Si,Ga]"),
        out: Path = typer.Option(..., "--out", "-o", help="dataset file to create or extend (resumes)"),
        soc: Optional[bool] = typer.Option(None, "--soc/--no-soc", help="spin-orbit coupling (second variation "
                                           "on H0 and H); default: off, or as --like"),
        h0_only: bool = typer.Option(False, "--h0-only", help="only S and H0 (no SCF): for prediction"),
        like: Optional[str] = typer.Option(None, "--like", help="use the engine, settings and SOC of this model "
                                           "(.pt or a registered name such as universal-v1) or dataset (e.g. to generate test data for a trained model)"),
        workers: int = typer.Option(2, "--workers", "-w", help="Dask LocalCluster worker processes; 0 = serial "
                                    "in this process"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of a running Dask scheduler "
                                                "(tcp://host:8786); Slurm/PBS via dask-jobqueue, Kubernetes"),
        dashboard: Optional[str] = typer.Option(None, "--dashboard", help="serve the Dask dashboard at this "
                                                "address (e.g. 127.0.0.1:8787); off by default"),
        engine: Optional[str] = typer.Option(None, "--engine", help="engine name (default gpaw, or as --like)"),
        setting: List[str] = typer.Option([], "--set", help="engine setting KEY=VALUE (e.g. h=0.2, "
                                          "kpt_density=2.5, basis=dzp); repeatable; overrides --like"),
        recipe: Optional[str] = typer.Option(None, "--recipe", help="a named, seeded dataset recipe (structures, "
                                             "engine settings and SOC), e.g. universal-v1; docs/universal.md"),
        seed: Optional[int] = typer.Option(None, "--seed", help="--recipe: another draw of its structures "
                                           "(e.g. a held-out test set); default: the recipe's seed"),
        per_element: Optional[int] = typer.Option(None, "--per-element", help="--recipe: structures per element "
                                                  "(default: the recipe's)"),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="recompute structures that failed before"),
        float32: bool = typer.Option(False, "--float32", help="store blocks in single precision"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    ) -> None:
        """Compute S, H0 and H (with --soc: spinful H0, H) of structures into a dataset; rerun to resume.

        Exit status 0 when every input is in the dataset, 1 (with a summary) when any structure failed.
        """
        from ..data.generate import generate as run_generate
        from ..data.structures import gather_inputs

        if workers < 0:
            raise UsageError(f"--workers must be >= 0 (got {workers})")
        if out.is_dir():
            raise UsageError(f"--out {out}: is a directory; give the dataset file name (e.g. data.lmdb)")
        settings = _parse_settings(setting)
        engine_name = engine or "gpaw"
        use_soc = bool(soc)
        recipe_info = None
        if (seed is not None or per_element is not None) and recipe is None:
            raise UsageError("--seed and --per-element select structures of a --recipe")
        if recipe is not None:
            from ..data.recipes import get_recipe

            if like is not None:
                raise UsageError("--recipe fixes the engine settings; it cannot be combined with --like")
            try:
                rcp = get_recipe(recipe)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if per_element is not None and per_element < 1:
                raise UsageError(f"--per-element must be >= 1 (got {per_element})")
            if engine is not None and engine != rcp.engine:
                raise UsageError(f"--engine {engine} contradicts --recipe {recipe} (engine {rcp.engine})")
            if soc is not None and soc != rcp.soc:
                raise UsageError(f"--{'' if soc else 'no-'}soc contradicts --recipe {recipe}")
            for k, v in settings.items():
                typer.echo(f"WARNING: --set {k}={v} overrides the recipe's {rcp.engine_settings.get(k)!r}", err=True)
            engine_name, use_soc = rcp.engine, rcp.soc
            settings = {**rcp.engine_settings, **settings}
            recipe_info = {**rcp.todict(), "seed": rcp.seed if seed is None else seed,
                           "per_element": rcp.per_element if per_element is None else per_element}
        if like is not None:
            from ..data.provenance import settings_like
            from ..models import is_pretrained, resolve_model

            ref = settings_like(resolve_model(like) if is_pretrained(like) else like)
            if engine is not None and engine != ref["engine"]:
                raise UsageError(f"--engine {engine} contradicts --like {like} (engine {ref['engine']})")
            engine_name = ref["engine"]
            if soc is not None and soc != ref["soc"]:
                raise UsageError(f"--{'' if soc else 'no-'}soc contradicts --like {like} "
                                 f"({'with' if ref['soc'] else 'without'} spin-orbit coupling)")
            use_soc = ref["soc"]
            for k, v in settings.items():
                if k in ref["settings"] and ref["settings"][k] != v:
                    typer.echo(f"WARNING: --set {k}={v} overrides {ref['settings'][k]!r} of {like}", err=True)
            settings = {**ref["settings"], **settings}
            typer.echo(f"settings of {like}: engine {engine_name}, soc {use_soc}, "
                       f"{json.dumps(settings, sort_keys=True)}", err=True)
        settings = validate_settings(engine_name, settings)
        from ..engines.base import get_engine

        try:
            get_engine(engine_name, **settings)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"engine {engine_name}: {exc}") from None
        try:
            inputs = gather_inputs(structures or [])
        except ValueError as exc:  # a malformed set: spec (files never raise: they become failures)
            raise UsageError(f"{exc}" if "set" in str(exc) else f"bad structure set in {structures}: {exc}") from None
        if recipe_info is not None:
            inputs = rcp.structures(recipe_info["seed"], recipe_info["per_element"]) + inputs
            typer.echo(f"recipe {recipe} (seed {recipe_info['seed']}, {recipe_info['per_element']} per element): "
                       f"{len(inputs)} structures", err=True)
        if not inputs:
            raise UsageError("no structures given (files, folders, set:... or --recipe NAME)")
        summary = run_generate(inputs, out, engine_name=engine_name, engine_settings=settings,
                               soc=use_soc, h0_only=h0_only, workers=workers, scheduler=scheduler,
                               retry_failed=retry_failed, dtype="float32" if float32 else "float64",
                               progress=not no_progress, echo=lambda m: typer.echo(m, err=True),
                               command=" ".join(shlex.quote(a) for a in sys.argv), dashboard=dashboard,
                               recipe=recipe_info)
        typer.echo(json.dumps({"dataset": str(out), "inputs": summary.total, "computed": summary.computed,
                               "recomputed_damaged": summary.recomputed, "failed": summary.failed,
                               "already_done": summary.skipped_done, "failed_earlier": summary.skipped_failed,
                               "failures_cleared": summary.cleared, "wall_s": round(summary.wall_s, 2)},
                              indent=2))
        if not summary.ok:
            _print_failures(summary, out)
            raise typer.Exit(1)


def _print_failures(summary, out: Path) -> None:
    lines = [f"{name}: {reason}" for name, reason in summary.failures.items()]
    lines += [f"{name}: {reason} (failed in an earlier run; --retry-failed recomputes it)"
              for name, reason in summary.failed_earlier.items()]
    lines += [f"record {i}: {problem} (its structure is not among the inputs, so it was not recomputed)"
              for i, problem in sorted(summary.damaged_not_in_inputs.items())]
    n = summary.failed + summary.skipped_failed
    head = f"{n} of {summary.total} structures are not in {out}" if n else f"{out} holds damaged records"
    typer.echo(f"{head}:", err=True)
    for line in lines[:20]:
        typer.echo(f"  {line}", err=True)
    if len(lines) > 20:
        typer.echo(f"  ... and {len(lines) - 20} more (nextham info {out})", err=True)
