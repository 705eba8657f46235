"""Build models and batches from a config section; load trained models from checkpoints; predict.

The config's ``model.kind`` names an entry of :data:`MODEL_KINDS`. Production has one, ``nextham`` (the
equivariant model of ``nextham.nn`` on graphs of ``nextham.graph``); test code registers others with
:func:`register_model_kind` (``nextham.testing.toy`` adds ``toy``).
"""

from __future__ import annotations

import contextlib

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..basis.orbitals import Basis
from ..blocks.record import StructureRecord

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _call(fn: Callable, *args, **kwargs):
    """Call ``fn`` with only the keyword arguments its signature accepts."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return fn(*args, **kwargs)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


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
    """The model of a config, initialised under a float32 default dtype whatever the process's global
    default is (the same seed must give the same weights in every process, e.g. DDP workers), then
    cast to ``dtype``."""
    with _default_dtype(torch.float32):
        return model_kind(kind).build(preset, overrides, basis, spinful, dtype)


@dataclass(frozen=True)
class ModelKind:
    """How to build one kind of model and its batches.

    build : ``(preset, overrides, basis, spinful, dtype) -> model`` (called under a float32 default dtype).
    batch_functions : ``(cutoff, dtype) -> (build(record) -> item, collate(items) -> batch)``.
    """

    build: Callable[[str, dict, Basis, bool, torch.dtype], torch.nn.Module]
    batch_functions: Callable[[float, torch.dtype], tuple[Callable, Callable]]


def _build_nextham(preset: str, overrides: dict, basis: Basis, spinful: bool, dtype: torch.dtype) -> torch.nn.Module:
    from ..nn import ModelConfig, NextHAMModel

    cfg = ModelConfig.preset(preset, **overrides)
    model = NextHAMModel(cfg, basis, spinful)
    return model.to(dtype)


def _nextham_batches(cutoff: float, dtype: torch.dtype) -> tuple[Callable, Callable]:
    from ..graph import build_graph, collate

    return (lambda rec: _call(build_graph, rec, cutoff=cutoff, dtype=dtype)), \
        (lambda items: _call(collate, list(items), dtype=dtype))


MODEL_KINDS: dict[str, ModelKind] = {"nextham": ModelKind(_build_nextham, _nextham_batches)}


def register_model_kind(name: str, kind: ModelKind) -> None:
    """Make ``model.kind: name`` available to configs and checkpoints of this process."""
    MODEL_KINDS[name] = kind


def model_kind(name: str) -> ModelKind:
    """The registered kind ``name``; ValueError naming the registered kinds otherwise."""
    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {name!r}; choose one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[name]


def batch_functions(kind: str, cutoff: float, dtype: torch.dtype = torch.float32) -> tuple[Callable, Callable]:
    """``(build(record) -> item, collate(items) -> batch)`` for the model kind."""
    return model_kind(kind).batch_functions(cutoff, dtype)


def model_hamiltonian(output: Any, batch: Any) -> torch.Tensor:
    """Packed predicted H of a model output (``.hamiltonian``, else ``h0 + delta``)."""
    h = getattr(output, "hamiltonian", None)
    return h if h is not None else batch.h0 + output.delta


def load_trained_model(path, device: str | torch.device = "cpu"):
    """(model in eval mode, checkpoint dict, build, collate) from a checkpoint or exported model file."""
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = ckpt["config"]
    dtype = DTYPES[cfg["run"]["dtype"]]
    basis = Basis.from_json(ckpt["basis"])
    m = cfg["model"]
    model = build_model(m["kind"], m["preset"], m["overrides"], basis, bool(ckpt["spinful"]), dtype)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    build, collate = batch_functions(m["kind"], cfg["data"]["cutoff"], dtype)
    return model, ckpt, build, collate


def predict_records(model: torch.nn.Module, records: Sequence[StructureRecord], build: Callable, collate: Callable,
                    device: str | torch.device = "cpu") -> list[StructureRecord]:
    """Predicted H of each record (one structure per forward pass); returns copies with ``H`` replaced.

    The input records need S and H0; a stored DFT ``H`` is ignored (and replaced in the copy).
    """
    out = []
    for rec in records:
        # the model never sees the target: drop H before building the graph
        inp = rec.replace(blocks={k: v for k, v in rec.blocks.items() if k != "H"})
        batch = collate([build(inp)]).to(device)
        # no torch.no_grad(): TraceGrad differentiates inside the forward pass
        h = model_hamiltonian(model(batch), batch)
        h = h.detach().cpu().numpy()
        h = h.astype(np.complex128 if np.iscomplexobj(h) else np.float64)
        out.append(rec.with_blocks(H=h))
    return out
