"""Inference: load a trained model from a checkpoint and predict the self-consistent H of records.

Everything runs under :func:`torch.no_grad` (no autograd graph is built; TraceGrad takes its inner
gradient itself and gives the same outputs as with autograd on). Used by ``nextham predict``,
``nextham evaluate`` (:mod:`nextham.analysis.evaluate`) and the demo workflow.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from .basis.orbitals import Basis
from .blocks.record import StructureRecord
from .checkpoint import CheckpointError, load_checkpoint
from .errors import UsageError
from .models import DTYPES, batch_functions, build_model, model_hamiltonian


def select_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:<local_rank>`` when CUDA is available, else CPU; otherwise the named device."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(requested)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


@dataclass
class TrainedModel:
    """A model in eval mode on ``device`` with the batch functions of its kind and its checkpoint dict."""

    model: torch.nn.Module
    checkpoint: dict[str, Any]
    build: Callable[[StructureRecord], Any]
    collate: Callable[[list], Any]
    device: torch.device
    path: Path

    @property
    def basis(self) -> Basis:
        return Basis.from_json(self.checkpoint["basis"])

    @property
    def spinful(self) -> bool:
        return bool(self.checkpoint["spinful"])

    @property
    def engine(self) -> dict[str, str]:
        """Name and JSON settings of the engine that produced the training data (may be empty)."""
        return self.checkpoint.get("engine", {}) or {}


def load_trained_model(path: str | os.PathLike, device: str | torch.device = "cpu",
                       dtype: torch.dtype | None = None) -> TrainedModel:
    """The model of a checkpoint (``last.pt``, ``best.pt``, an exported ``model.pt``) or of a registered
    name (``universal-v1``: the weights shipped in the package), in eval mode; built in ``dtype``
    (default: the training dtype; float64 for physics checks of a float32-trained model)."""
    from .models import is_derived_constant, resolve_model

    path = resolve_model(path)
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = ckpt["config"]
    m = cfg["model"]
    dtype = dtype or DTYPES[cfg["run"]["dtype"]]
    try:
        model = build_model(m["kind"], m["preset"], m["overrides"], Basis.from_json(ckpt["basis"]),
                            bool(ckpt["spinful"]), dtype)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    # a float64 load keeps the exact constants of its own build, not the checkpoint's float32 copies
    exact = {k: v.clone() for k, v in model.state_dict().items() if is_derived_constant(k)} \
        if dtype != torch.float32 else {}
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:  # the weights do not fit the model its config describes
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes (another model "
                              f"size or a damaged file): {str(exc).splitlines()[0][:160]}") from None
    with torch.no_grad():  # in place: a second load_state_dict would run the modules' load hooks again
        for name, buffer in model.named_buffers():
            if name in exact:
                buffer.copy_(exact[name])
    device = torch.device(device)
    model.to(device).eval()
    build, collate = batch_functions(m["kind"], cfg["data"]["cutoff"], dtype, getattr(model, "output_radius", None))
    return TrainedModel(model, ckpt, build, collate, device, Path(path))


@torch.no_grad()
def predict_records(trained: TrainedModel, records: Sequence[StructureRecord]) -> list[StructureRecord]:
    """Predicted H of each record (one structure per forward pass); returns copies with ``H`` replaced
    (float64 / complex128). The input records need S and H0; a stored DFT ``H`` is never shown to the
    model (it is dropped before the batch is built and replaced in the copy)."""
    out = []
    for rec in records:
        inp = rec.replace(blocks={k: v for k, v in rec.blocks.items() if k != "H"})
        batch = trained.collate([trained.build(inp)]).to(trained.device)
        h = model_hamiltonian(trained.model(batch), batch).cpu().numpy()
        out.append(rec.with_blocks(H=h.astype(np.complex128 if np.iscomplexobj(h) else np.float64)))
    return out


def predicts_unseen_elements(trained: TrainedModel) -> bool:
    """Whether the model predicts for elements outside its basis (species-agnostic inputs and factorized
    output statistics with a fallback: the universal models)."""
    m = trained.checkpoint["config"]["model"]
    return (m.get("overrides", {}).get("statistics") == "factorized"
            and "element" not in m.get("overrides", {}).get("input", "h0"))


def check_basis(model_basis: Basis, record: StructureRecord, trained: TrainedModel | None = None) -> None:
    """The engine's basis for each element must be the one the model was trained on (UsageError); an
    element outside the model's basis is accepted by models that predict unseen elements when its
    shells fit the model's layout."""
    unseen_ok = trained is not None and predicts_unseen_elements(trained)
    for el in record.basis.elements:
        if el.symbol not in model_basis:
            if unseen_ok:
                try:
                    trained.model.layout.check_basis(Basis((el,)))
                except ValueError as exc:
                    raise UsageError(f"element {el.symbol} was never seen by the model and its basis {el.spec()} "
                                     f"does not fit the model's layout: {exc}") from None
                continue
            raise UsageError(f"the model was not trained on element {el.symbol} "
                             f"(it knows {', '.join(model_basis.symbols)})")
        if model_basis[el.symbol].ls != el.ls:
            raise UsageError(f"element {el.symbol}: the engine's basis {el.spec()} differs from the model's "
                             f"{model_basis[el.symbol].spec()}; use the engine settings of the training data")


def predicted_fermi_level(record: StructureRecord, kpt_density: float | None = None,
                          max_kpoints: int = 1000) -> tuple[float | None, dict]:
    """Fermi level (eV) of the predicted H: Gaussian-smeared (10 meV) occupation of the predicted bands
    on a Γ-centred k-mesh (``kpt_density`` points per Å^-1) holding the record's valence electrons.

    ``kpt_density=None``: the k-point density of the SCF the prediction replaces (the engine setting
    ``kpt_density`` stored in the record), else 3.0. (With a fixed 3.0 the Fermi level of a 64-atom
    prediction took 15 s, twice the engine's S and H0, for a mesh twice as dense as the SCF's.)"""
    from ase.calculators.calculator import kptdensity2monkhorstpack

    from .physics.bands import eigenvalues
    from .physics.dos import fermi_level
    from .physics.kpoints import monkhorst_pack

    md = record.metadata or {}
    n_valence = md.get("n_valence", md.get("n_electrons"))
    if n_valence is None or not np.isfinite(float(n_valence)):
        return None, {"fermi_level": "not computed: the record does not store its valence electron count"}
    if kpt_density is None:
        kpt_density = float(((md.get("settings") or {}).get("kpt_density")) or 3.0)
    mesh = [int(x) for x in kptdensity2monkhorstpack(record.to_atoms(), kptdensity=kpt_density, even=False)]
    while np.prod(mesh) > max_kpoints:
        mesh = [max(1, m - 1) for m in mesh]
    eps, _ = eigenvalues(record, monkhorst_pack(tuple(mesh)), which="H")
    try:
        ef = fermi_level(eps, float(n_valence), sigma=0.01, spin_degeneracy=1.0 if record.spinful else 2.0)
    except ValueError as exc:  # more valence electrons than the basis holds states
        return None, {"fermi_level": f"not computed: {exc}"}
    return ef, {"fermi_level": {"from": "predicted bands", "k_mesh": mesh, "kpt_density": kpt_density,
                                "n_valence": float(n_valence), "smearing": "gaussian 0.01 eV"}}


def predict_structure(trained: TrainedModel, atoms: Atoms, engine_name: str | None = None,
                      log: Callable[[str], None] = lambda message: None,
                      where: str = "structure") -> tuple[StructureRecord, dict[str, float]]:
    """Engine (S and H0 only, no SCF) -> model -> Fermi level of the predicted bands: the predicted record
    and the time of each stage (s). ``log`` gets a line as each stage starts.

    The engine is the training data's with its settings unless ``engine_name`` names another (which
    then runs with its default settings, with a warning), less the checks of stored data that do not
    change S or H0 (``Engine.prediction_settings``). Engine errors name ``where``.
    """
    from .engines import get_engine
    from .engines.base import EngineError

    eng = trained.engine
    name = engine_name or eng.get("name") or "gpaw"
    if engine_name and eng.get("name") and engine_name != eng.get("name"):
        log(f"WARNING: the model was trained on data of engine {eng.get('name')}, predicting with {engine_name}: "
            f"H0 and the basis differ from the training data")
    settings = json.loads(eng.get("settings_json", "{}") or "{}") if name == eng.get("name") else {}
    engine = get_engine(name, **settings)
    if engine.prediction_settings:
        engine = get_engine(name, **{**settings, **engine.prediction_settings})
    times = {}
    try:
        engine.check_input(atoms)  # overlapping atoms, missing setups, ... before any compute
        t = time.perf_counter()
        log(f"computing S and H0 with {name} ({len(atoms)} atoms, no SCF)")
        rec = engine.compute(atoms, soc=trained.spinful, h0_only=True)
    except EngineError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    times["engine_S_H0_s"] = time.perf_counter() - t
    check_basis(trained.basis, rec, trained)
    t = time.perf_counter()
    log("predicting H with the model")
    pred = predict_records(trained, [rec])[0]
    times["model_s"] = time.perf_counter() - t
    t = time.perf_counter()
    log("Fermi level from the predicted bands")
    ef, ef_info = predicted_fermi_level(pred)
    times["fermi_level_s"] = time.perf_counter() - t
    pred = pred.replace(fermi_energy_eV=ef, metadata={
        **pred.metadata, **ef_info, "predicted_by": {"checkpoint": str(trained.path),
                                                     "versions": trained.checkpoint["versions"]}})
    return pred, times
