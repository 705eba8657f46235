"""Synthetic records, a minimal batch and a tiny baseline model, for tests and smoke runs.

Nothing here is physics: the records are random but well-formed (Hermitian H, positive-definite S(k),
spinful or not), the model scales H0 blocks by a learned function of the bond length. They exercise
the losses, the trainer, checkpoints and distributed runs without the engine or the equivariant model.
Importing this module registers the model kind ``toy`` (``model: {kind: toy}`` in a training config)
with :func:`nextham.train.factory.register_model_kind`; production configs know only ``nextham``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from ..basis.orbitals import Basis
from ..blocks.record import StructureRecord
from ..train.factory import ModelKind, register_model_kind


def random_record(seed: int = 0, spinful: bool = False, symbols: Sequence[str] = ("Ga", "As"),
                  specs: dict | None = None, h0_noise: float = 0.05) -> StructureRecord:
    """A small random record with S, H0 and H (eV) on a cubic-ish cell with neighbours in R = -1..1."""
    rng = np.random.default_rng(seed)
    specs = specs or {s: "1s1p" for s in symbols}
    basis = Basis.from_specs({s: specs[s] for s in set(symbols)})
    a = 3.0 + 0.3 * rng.random()
    cell = np.eye(3) * a + 0.1 * rng.standard_normal((3, 3))
    frac = rng.random((len(symbols), 3))
    atoms = Atoms(symbols=list(symbols), scaled_positions=frac, cell=cell, pbc=True)
    n = int(basis.atom_offsets(atoms.numbers)[-1])
    f = 2 if spinful else 1
    Rs = [R for R in itertools.product((-1, 0, 1), repeat=3)]
    half = [R for R in Rs if R > (0, 0, 0)]
    S, H, H0 = {}, {}, {}
    S[(0, 0, 0)] = np.eye(n) + 0.02 * _sym(rng.standard_normal((n, n)))
    h = rng.standard_normal((f * n, f * n)) + (1j * rng.standard_normal((f * n, f * n)) if spinful else 0)
    H[(0, 0, 0)] = 0.5 * (h + h.conj().T) + np.diag(np.linspace(-8, 8, f * n))
    for R in half:
        decay = np.exp(-np.linalg.norm(np.array(R) @ cell) / 2.0)
        S[R] = 0.05 * decay * rng.standard_normal((n, n))
        H[R] = decay * (rng.standard_normal((f * n, f * n)) + (1j * rng.standard_normal((f * n, f * n)) if spinful else 0))
        mR = tuple(-x for x in R)
        S[mR] = S[R].T
        H[mR] = H[R].conj().T
    for R, M in H.items():
        if R <= (0, 0, 0) and R != (0, 0, 0):
            continue
        d = h0_noise * (rng.standard_normal(M.shape) + (1j * rng.standard_normal(M.shape) if spinful else 0))
        if R == (0, 0, 0):
            d = 0.5 * (d + d.conj().T) + 0.3 * S[R] if not spinful else 0.5 * (d + d.conj().T) + 0.3 * np.kron(np.eye(2), S[R])
        H0[R] = M + d
        if R != (0, 0, 0):
            H0[tuple(-x for x in R)] = H0[R].conj().T
    rec = StructureRecord.from_dense(atoms, basis, {"S": S, "H0": H0, "H": H}, spinful=spinful, fermi_energy_eV=0.0,
                                     metadata={"source": "nextham.testing.toy.random_record", "seed": seed,
                                               "timings": {"t_H0": 0.01, "t_SCF": 1.0}})
    return rec


def _sym(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


@dataclass
class ToyBatch:
    """The fields of ``nextham.graph.GraphBatch`` that the losses and the trainer use."""

    records: list
    h0: torch.Tensor
    h_target: torch.Tensor | None
    overlap: torch.Tensor
    edge_length: torch.Tensor  # per packed H element
    spinful: bool = False

    def to(self, device) -> "ToyBatch":
        mv = lambda t: None if t is None else t.to(device)
        return ToyBatch(self.records, mv(self.h0), mv(self.h_target), mv(self.overlap), mv(self.edge_length), self.spinful)


def toy_collate(records: Sequence[StructureRecord], dtype: torch.dtype = torch.float64) -> ToyBatch:
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    spinful = records[0].spinful
    t = lambda a, cpx: torch.as_tensor(a, dtype=cdt if cpx else dtype)
    h0 = torch.cat([t(r.blocks["H0"], spinful) for r in records])
    ht = torch.cat([t(r.blocks["H"], spinful) for r in records]) if all("H" in r.blocks for r in records) else None
    ov = torch.cat([t(r.blocks["S"], False) for r in records])
    el = torch.cat([t(np.repeat(r.edge_lengths, np.diff(r.block_offsets("H0"))), False) for r in records])
    return ToyBatch(list(records), h0, ht, ov, el, spinful)


class ToyModel(torch.nn.Module):
    """``H = H0 * (1 + a(r)) + b(r)`` elementwise with small MLPs a, b of the bond length (not equivariant)."""

    def __init__(self, hidden: int = 8, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(1, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)).to(dtype)

    def forward(self, batch: ToyBatch) -> Any:
        ab = self.net(batch.edge_length[:, None].to(self.net[0].weight.dtype))
        delta = batch.h0 * ab[:, 0].to(batch.h0.dtype) + 0.01 * ab[:, 1].to(batch.h0.dtype)
        return SimpleNamespace(delta=delta, hamiltonian=batch.h0 + delta, trace_pred=None, trace_target=None)


def two_centre_record(seed: int = 0, spinful: bool = False, n_atoms: int = 2, correction: float = 0.1,
                      basis: Basis | None = None, cutoff: float = 4.2) -> StructureRecord:
    """A physically shaped record from random two-centre tight-binding models (exactly equivariant).

    ``H`` comes from one random model (with overlaps, and spin-orbit when ``spinful``); ``H0 = H -
    correction * H_B`` with ``H_B`` a second random model on the same bonds, so the correction the
    network learns is an equivariant function of the geometry. E_F is the middle of the Gamma spectrum.
    """
    from ..physics.bands import eigenvalues
    from .models import random_crystal, random_two_centre_model

    basis = basis or Basis.from_specs({"Ga": [0, 1], "As": [0, 1]})
    atoms = random_crystal(seed, n_atoms=n_atoms)
    a = random_two_centre_model(1, cutoff=cutoff, basis=basis).record(atoms, spinful=spinful)
    b = random_two_centre_model(2, cutoff=cutoff, basis=basis, overlap=False).record(atoms, spinful=spinful)
    if not (np.array_equal(a.edge_index, b.edge_index) and np.array_equal(a.edge_R, b.edge_R)):
        raise RuntimeError("internal error: the two models have different bonds")
    rec = a.with_blocks(H0=a.blocks["H"] - correction * b.blocks["H"])
    eps, _ = eigenvalues(rec, np.zeros((1, 3)))
    eps = eps[np.isfinite(eps)]
    rec.fermi_energy_eV = float(np.median(eps))
    rec.metadata = {"source": "nextham.testing.toy.two_centre_record", "seed": seed,
                    "timings": {"t_H0": 0.01, "t_SCF": 1.0}}
    return rec


def _build_toy(preset: str, overrides: dict, basis: Basis, spinful: bool, dtype: torch.dtype) -> ToyModel:
    return ToyModel(dtype=dtype, **{k: v for k, v in overrides.items() if k in ("hidden",)})


def _toy_batches(cutoff: float, dtype: torch.dtype):
    return (lambda rec: rec), (lambda items: toy_collate(items, dtype=dtype))


register_model_kind("toy", ModelKind(_build_toy, _toy_batches))
