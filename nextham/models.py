"""Model kinds: build a model and its batches from the ``model`` section of a training config.

A kind is a name bound to two functions: ``build(preset, overrides, basis, spinful) -> torch.nn.Module``
and ``batches(cutoff, dtype, output_radius) -> (build_item(record), collate(items) -> batch)``. Production has one
kind, ``nextham`` (the equivariant model of :mod:`nextham.nn` on graphs of :mod:`nextham.graph`);
tests register others with :func:`register_model_kind` (e.g. :mod:`nextham.testing.toy`). The trainer
and :mod:`nextham.inference` build models only through :func:`build_model`, so a checkpoint names the
kind it needs in its config.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .basis.orbitals import Basis
from .blocks.record import StructureRecord

DTYPES = {"float32": torch.float32, "float64": torch.float64}

BatchFunctions = tuple[Callable[[StructureRecord], Any], Callable[[list], Any]]


@dataclass(frozen=True)
class ModelKind:
    """How to build a model and its batches.

    ``trace_head``: the model has parameters that only the trace loss trains (DDP must then look for
    unused parameters when that loss is off).
    """

    build: Callable[[str, dict, Basis, bool], torch.nn.Module]
    batches: Callable[[float, torch.dtype, float | None], BatchFunctions]
    trace_head: bool = False


MODEL_KINDS: dict[str, ModelKind] = {}


def register_model_kind(name: str, kind: ModelKind) -> None:
    """Make ``name`` usable as ``model.kind`` in configs and checkpoints."""
    MODEL_KINDS[name] = kind


def model_kind(name: str) -> ModelKind:
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r} (known: {', '.join(sorted(MODEL_KINDS))})") from None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Temporarily set torch's default dtype (restored afterwards)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_model(kind: str, preset: str, overrides: dict, basis: Basis, spinful: bool,
                dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The model of a config in ``dtype``, its weights drawn under a float32 default dtype whatever the
    process's global default is (the same seed must give the same weights in every process and dtype,
    e.g. DDP workers).

    For another ``dtype`` the model is built again under that default and given the float32 build's
    parameters: a cast would keep constants computed at construction in float32 (e3nn's Wigner-3j
    buffers, ``_w3j_*``), and float64 models were then equivariant to ~5e-8 instead of ~1e-15. Buffers
    are not copied: at construction they are deterministic (constants and initial statistics)."""
    k = model_kind(kind)
    with _default_dtype(torch.float32):
        model = k.build(preset, overrides, basis, spinful)
    if dtype == torch.float32:
        return model
    with _default_dtype(dtype):
        exact = k.build(preset, overrides, basis, spinful).to(dtype)
    drawn = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in exact.named_parameters():
            p.copy_(drawn[name])
    return exact


def is_derived_constant(state_key: str) -> bool:
    """Whether a state-dict entry is a constant the model recomputes at construction (e3nn's Wigner-3j
    buffers), so that a checkpoint's copy, in the precision it was saved in, need not be loaded."""
    return "._w3j_" in state_key


def batch_functions(kind: str, cutoff: float, dtype: torch.dtype = torch.float32,
                    output_radius: float | None = None) -> BatchFunctions:
    """``(build(record) -> item, collate(items) -> batch)`` for the model kind: graphs within ``cutoff``
    (Å), outputs on the record edges within ``output_radius`` (Å; the model's ``output_radius``, by
    default ``cutoff``)."""
    return model_kind(kind).batches(cutoff, dtype, output_radius)


def model_hamiltonian(output: Any, batch: Any) -> torch.Tensor:
    """Packed predicted H of a model output (``.hamiltonian``, else ``h0 + delta``)."""
    h = getattr(output, "hamiltonian", None)
    return h if h is not None else batch.h0 + output.delta


def _build_nextham(preset: str, overrides: dict, basis: Basis, spinful: bool) -> torch.nn.Module:
    from .nn import ModelConfig, NextHAMModel

    return NextHAMModel(ModelConfig.preset(preset, **overrides), basis, spinful)


def _nextham_batches(cutoff: float, dtype: torch.dtype, output_radius: float | None) -> BatchFunctions:
    """Graphs are float64 whatever ``dtype``: the model casts them to its own dtype."""
    from .graph import build_graph, collate

    return (lambda rec: build_graph(rec, cutoff=cutoff, output_radius=output_radius)), \
        (lambda items: collate(list(items)))


register_model_kind("nextham", ModelKind(_build_nextham, _nextham_batches, trace_head=True))


# ---------------------------------------------------------------------------- pretrained models
#: models shipped inside the package: name -> (weights file, model card) under nextham/pretrained/
PRETRAINED: dict[str, tuple[str, str]] = {
    "universal-v1": ("universal-v1.pt", "universal-v1.card.json"),
}
#: what ``nextham predict`` uses without ``--model``
DEFAULT_MODEL = "universal-v1"


def _pretrained_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent / "pretrained"


def is_pretrained(name: str) -> bool:
    return str(name) in PRETRAINED


def resolve_model(name_or_path):
    """The checkpoint file of a registered model name (``universal-v1``) or of a path; a name that is
    neither a registered model nor an existing file raises :class:`~nextham.errors.InputFileError`."""
    from pathlib import Path

    from .errors import InputFileError

    key = str(name_or_path)
    if key in PRETRAINED:
        path = _pretrained_dir() / PRETRAINED[key][0]
        if not path.exists():
            raise InputFileError(f"{key}: the weights of this registered model are missing from the package "
                                 f"({path}); reinstall nextham")
        return path
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(PRETRAINED))
        raise InputFileError(f"{path}: no such model file (registered models: {known})")
    return path


def model_card(name_or_path) -> dict | None:
    """The measured model card of a registered model (JSON written by its evaluation), else None."""
    import json

    key = str(name_or_path)
    if key not in PRETRAINED:
        return None
    path = _pretrained_dir() / PRETRAINED[key][1]
    return json.loads(path.read_text()) if path.exists() else None
