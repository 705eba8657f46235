"""Dataset generation: structures -> engine -> dataset store, in parallel with Dask, resumable.

The driver process owns the dataset file (the only writer); workers run the engine and return the
record as bytes. Each finished structure is committed in one LMDB transaction, so killing the
run at any moment loses at most the structures in flight; rerunning the same command skips every
structure already stored or already recorded as failed (``retry_failed`` retries those), so
nothing is computed twice. Inputs are keyed by a content hash of the structure.

``workers=0`` runs in the driver process without Dask (debugging, tiny jobs).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .store import DatasetStore, StoreError
from .structures import StructureInput


@dataclass
class GenerateSummary:
    total: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    computed: int = 0
    failed: int = 0
    recomputed: int = 0  # stored records that failed their checksum and were computed again
    cleared: int = 0  # failures of earlier runs resolved by this run
    failures: dict[str, str] = field(default_factory=dict)
    failed_earlier: dict[str, str] = field(default_factory=dict)  # name -> reason (not retried)
    damaged_not_in_inputs: dict[int, str] = field(default_factory=dict)  # index -> problem
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every input is in the dataset (nothing failed now or earlier, no damaged record left)."""
        return not (self.failed or self.skipped_failed or self.damaged_not_in_inputs)


def check_atoms(atoms) -> None:
    """Engine-independent sanity of a structure: atoms present, finite cell and positions."""
    import numpy as np

    from ..engines.base import EngineInputError

    if len(atoms) == 0:
        raise EngineInputError("structure has no atoms")
    if not np.isfinite(atoms.cell.array).all():
        raise EngineInputError("cell has non-finite (NaN/inf) entries")
    bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
    if len(bad):
        raise EngineInputError(f"{len(bad)} atoms have non-finite (NaN/inf) coordinates, first atom {bad[0]}")
    if atoms.pbc.any() and abs(np.linalg.det(atoms.cell.array)) < 1e-6:
        raise EngineInputError("periodic structure with a singular (zero-volume) cell")


def compute_task(atoms_dict: dict, engine_name: str, engine_settings: dict, soc: bool,
                 h0_only: bool) -> tuple[str, Any, dict]:
    """Run one structure (in a worker). Returns ``("ok", record_bytes, info)`` or
    ``("failed", reason, info)``; never raises, so a failure carries its reason."""
    from ase import Atoms

    from ..engines.base import EngineInputError, get_engine
    from .store import record_to_bytes

    t0 = time.perf_counter()
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        atoms = Atoms(**atoms_dict)
        engine = get_engine(engine_name, **engine_settings)
        rec = engine.compute(atoms, soc=soc, h0_only=h0_only)
        rec.validate()
        info["timings"] = rec.metadata.get("timings", {})
        info["wall_s"] = time.perf_counter() - t0
        info["n_atoms"] = rec.n_atoms
        info["n_edges"] = rec.n_edges
        return "ok", record_to_bytes(rec), info
    except EngineInputError as exc:
        info["wall_s"] = time.perf_counter() - t0
        return "failed", f"bad input: {exc}", info
    except Exception as exc:  # noqa: BLE001 - every failure is recorded with its reason
        info["wall_s"] = time.perf_counter() - t0
        info["traceback"] = traceback.format_exc(limit=6)
        return "failed", f"{type(exc).__name__}: {exc}", info


def _atoms_dict(atoms) -> dict:
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}


def _run_settings(engine_name: str, engine_settings: dict, soc: bool, h0_only: bool) -> dict:
    return {"engine": engine_name, "engine_settings": engine_settings, "soc": bool(soc), "h0_only": bool(h0_only)}


def generate(inputs: Sequence[StructureInput], out: str | os.PathLike, *, engine_name: str = "gpaw",
             engine_settings: dict | None = None, soc: bool = False, h0_only: bool = False,
             workers: int = 2, scheduler: str | None = None, retry_failed: bool = False,
             dtype: str = "float64", progress: bool = True, echo: Callable[[str], None] | None = None,
             command: str | None = None, dashboard: str | None = None,
             recipe: dict | None = None) -> GenerateSummary:
    """Compute every input not yet in the dataset ``out`` and append it; record failures.

    Parameters
    ----------
    inputs : structures (:mod:`nextham.data.structures`); entries with ``error`` are recorded as
        failures without running the engine.
    out : dataset file (created if missing; an existing one must have the same run settings).
    workers : Dask LocalCluster worker processes (one thread each); 0 = run in this process.
    scheduler : address of a running Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    retry_failed : recompute structures recorded as failed in an earlier run.
    dashboard : address for the Dask dashboard (e.g. ``127.0.0.1:8787``); None = no dashboard.
    recipe : the recipe the inputs come from (:meth:`nextham.data.recipes.Recipe.todict` with its seed),
        stored in the manifest (``recipe``) for the models trained on the dataset.

    Stored records that fail their checksum are computed again when their structure is among the
    inputs. A structure computed successfully clears the failures recorded earlier for the same
    source file and name (e.g. a file that was unreadable and has been fixed).
    """
    from ..engines.base import EngineError, get_engine

    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    engine_settings = dict(engine_settings or {})
    t_start = time.time()
    summary = GenerateSummary(total=len(inputs))
    run_settings = _run_settings(engine_name, engine_settings, soc, h0_only)
    engine = get_engine(engine_name, **engine_settings)
    with DatasetStore(out, mode="a", dtype=dtype) as store:
        man = store.manifest
        if "run_settings" in man and man["run_settings"] != run_settings:
            raise StoreError(f"{out}: dataset was generated with {man['run_settings']}, this run asks for "
                             f"{run_settings}; use another --out or the same options")
        try:
            versions = engine.versions()
        except Exception as exc:  # engine not installed: fail before touching the dataset
            raise EngineError(str(exc)) from exc
        try:
            from importlib.metadata import version
            nextham_version = version("nextham")
        except Exception:  # pragma: no cover - not installed
            nextham_version = "unknown"
        store.update_manifest(run_settings=run_settings, engine_versions=versions,
                              run={"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
                                   "command": command or " ".join(sys.argv), "nextham": nextham_version,
                                   "n_inputs": len(inputs)})
        if recipe is not None:
            store.update_manifest(recipe=recipe)
        if retry_failed:
            store.forget_failures()
        damaged = store.check(decode=False)  # index -> problem (checksum)
        damaged_keys: dict[str, int] = {}
        for index in damaged:
            try:
                damaged_keys[store.key(index)] = index
            except StoreError:
                pass
        if damaged:
            echo(f"{out}: {len(damaged)} stored records fail their checksum (indices "
                 f"{', '.join(map(str, sorted(damaged)[:10]))}{', ...' if len(damaged) > 10 else ''}); "
                 f"recomputing those among the inputs")
        status = store.status()
        pending: list[StructureInput] = []
        rewrite: dict[str, int] = {}  # key -> index of a damaged record to replace
        seen: set[str] = set()
        for item in inputs:
            if item.key in seen:
                summary.skipped_done += 1  # duplicate input: computed once
                continue
            seen.add(item.key)
            st = status.get(item.key)
            if item.key in damaged_keys:
                rewrite[item.key] = damaged_keys[item.key]
            elif st is not None:
                if st["state"] == "done":
                    summary.skipped_done += 1
                else:
                    summary.skipped_failed += 1
                    summary.failed_earlier[st.get("name", item.name)] = st.get("reason", "")
                continue
            if item.error is not None:
                _fail(store, summary, item, item.error, {}, echo)
                continue
            try:
                check_atoms(item.atoms)
                engine.check_input(item.atoms)
            except Exception as exc:  # noqa: BLE001
                _fail(store, summary, item, f"bad input: {exc}", {}, echo)
                continue
            pending.append(item)
        for index, problem in damaged.items():
            if index not in rewrite.values():
                summary.damaged_not_in_inputs[index] = problem
        if summary.skipped_done or summary.skipped_failed:
            echo(f"resuming {out}: {summary.skipped_done} structures already done, "
                 f"{summary.skipped_failed} failed earlier (not retried), {len(pending)} to compute")
        bar = _progress(len(pending), progress)

        def commit(item: StructureInput, result: tuple[str, Any, dict]) -> None:
            state, payload, info = result
            base = {"name": item.name, "source": item.source, "formula": item.atoms.get_chemical_formula()}
            if state == "ok":
                from .store import record_from_bytes
                rec = record_from_bytes(payload)
                if item.key in rewrite:
                    store.rewrite(rewrite[item.key], rec, item.key, {**base, **info})
                    summary.recomputed += 1
                else:
                    store.append(rec, item.key, {**base, **info})
                summary.computed += 1
                summary.cleared += store.forget_failures_of(item.source, item.name)
            elif item.key in rewrite:  # keep the record's done status: the damaged record stays listed
                summary.failed += 1
                summary.failures[item.name] = f"recomputing damaged record {rewrite[item.key]}: {payload}"
                echo(f"FAILED {item.name}: {summary.failures[item.name]}")
            else:
                _fail(store, summary, item, payload, {**base, **info}, echo)
            bar.update(1)

        try:
            if pending and scheduler is None and workers <= 0:
                for item in pending:
                    commit(item, compute_task(_atoms_dict(item.atoms), engine_name, engine_settings, soc, h0_only))
            elif pending:
                _run_dask(pending, commit, engine_name, engine_settings, soc, h0_only, workers, scheduler, echo,
                          dashboard)
        finally:
            bar.close()
            summary.wall_s = time.time() - t_start
            store.update_manifest(last_run={"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "computed": summary.computed, "failed": summary.failed,
                                            "recomputed": summary.recomputed, "wall_s": summary.wall_s})
    return summary


def _fail(store: DatasetStore, summary: GenerateSummary, item: StructureInput, reason: str, info: dict,
          echo: Callable[[str], None]) -> None:
    store.record_failure(item.key, reason, {"name": item.name, "source": item.source, **info})
    summary.failed += 1
    summary.failures[item.name] = reason
    echo(f"FAILED {item.name}: {reason}")


def _run_dask(pending, commit, engine_name, engine_settings, soc, h0_only, workers, scheduler, echo,
              dashboard: str | None = None) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError(f"parallel generation needs dask.distributed ({exc}); pip install 'dask[distributed]' "
                           "or use --workers 0") from None
    cluster = None
    if scheduler:
        client = Client(scheduler)
        echo(f"connected to Dask scheduler {scheduler} ({len(client.scheduler_info()['workers'])} workers)")
    else:
        # scheduler and workers on loopback only; the dashboard (HTTP) only when asked for
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=dashboard, silence_logs=40)
        client = Client(cluster)
        if dashboard:
            echo(f"Dask dashboard: {client.dashboard_link}")
    try:
        by_future = {}
        for item in pending:
            fut = client.submit(compute_task, _atoms_dict(item.atoms), engine_name, engine_settings, soc, h0_only,
                                key=f"nextham-{item.key}", pure=False, retries=0)
            by_future[fut] = item
        for fut in as_completed(list(by_future)):
            item = by_future.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - worker died (memory, segfault)
                result = ("failed", f"worker lost: {type(exc).__name__}: {exc}", {})
            commit(item, result)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="structure", desc="generate", smoothing=0.1, dynamic_ncols=True,
                disable=not enabled or total == 0)
