"""A cheap analytic engine for pipeline tests (dataset generation, resume, training plumbing).

Not physics: one s and one p shell per atom with Gaussian two-centre overlaps and hoppings that
depend only on the pair vector, so every record is exactly Hermitian, periodic and reproducible.
``H`` = ``H0`` + a small distance-dependent correction. ``sleep`` (s) mimics compute time;
``log_file`` appends one line per computed structure (used to prove nothing is computed twice).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from ase import Atoms

from ..basis.orbitals import Basis, ElementBasis
from ..basis.rotations import real_spherical_harmonics
from ..blocks.record import StructureRecord
from ..structure.identity import structure_key
from ..structure.neighbours import neighbour_list
from .base import Engine, EngineInputError, register_engine


@register_engine("toy")
class ToyEngine(Engine):
    name = "toy"

    def __init__(self, cutoff: float = 5.0, sleep: float = 0.0, log_file: str | None = None,
                 fail_elements: tuple[str, ...] = ("Tc",)) -> None:
        self.cutoff = float(cutoff)
        self.sleep = float(sleep)
        self.log_file = log_file
        self.fail_elements = tuple(fail_elements)

    def settings(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "sleep": self.sleep, "fail_elements": list(self.fail_elements)}

    def versions(self) -> dict[str, str]:
        return {"toy": "1"}

    def check_input(self, atoms: Atoms) -> None:
        bad = sorted(set(atoms.get_chemical_symbols()) & set(self.fail_elements))
        if bad:
            raise EngineInputError(f"no setup for element(s) {', '.join(bad)} (toy engine)")
        if len(atoms) > 1:
            d = neighbour_list(atoms, 0.5, self_loops=False).distances
            if len(d):
                raise EngineInputError(f"overlapping atoms: {d.min():.3f} Å apart (minimum 0.5 Å)")

    def compute(self, atoms: Atoms, soc: bool = False, h0_only: bool = False) -> StructureRecord:
        if soc:
            raise EngineInputError("the toy engine has no spin-orbit coupling")
        self.check_input(atoms)
        t0 = time.perf_counter()
        if self.log_file:
            with open(self.log_file, "a") as fh:
                fh.write(f"start {structure_key(atoms)} {os.getpid()}\n")
        if self.sleep:
            time.sleep(self.sleep)
        basis = Basis(tuple(ElementBasis.from_ls(s, [0, 1]) for s in sorted(set(atoms.get_chemical_symbols()))))
        nl = neighbour_list(atoms, self.cutoff)
        n_at = len(atoms)
        z = atoms.numbers.astype(float)
        out: dict[str, dict] = {"S": {}, "H0": {}, "H": {}}
        # per edge 4x4 block [s, p(y,z,x)] from the pair vector
        r = nl.vectors
        d = nl.distances
        Y1 = real_spherical_harmonics(1, np.where(d[:, None] > 0, r, [[0, 0, 1]])) * np.sqrt(4 * np.pi / 3)
        g = np.exp(-0.25 * d ** 2)[:, None, None]
        blk = np.zeros((len(d), 4, 4))
        blk[:, 0, 0] = 1.0
        blk[:, 0, 1:] = 0.3 * Y1 * (d[:, None] > 0)
        blk[:, 1:, 0] = -0.3 * Y1 * (d[:, None] > 0)
        blk[:, 1:, 1:] = np.eye(3)[None] * 0.8 - 0.2 * np.einsum("ea,eb->eab", Y1, Y1) * (d[:, None, None] > 0)
        S = blk * g
        i, j = nl.edge_index.T
        H0 = -2.0 * S * (1 + 0.05 * (z[i] + z[j]))[:, None, None]
        onsite = (i == j) & (d == 0)
        H0[onsite] += np.diag([-5.0, 1.0, 1.0, 1.0])[None] - 0.1 * z[i][onsite, None, None] * np.eye(4)[None]
        H = H0 + 0.05 * S * np.exp(-0.5 * d)[:, None, None]
        for name, B in (("S", S), ("H0", H0), ("H", H)):
            if h0_only and name == "H":
                continue
            for e in range(len(d)):  # toy engine: clarity over speed
                R = tuple(int(x) for x in nl.edge_R[e])
                M = out[name].setdefault(R, np.zeros((4 * n_at, 4 * n_at)))
                M[4 * i[e]:4 * i[e] + 4, 4 * j[e]:4 * j[e] + 4] = B[e]
        mats = {k: v for k, v in out.items() if v}
        t = time.perf_counter() - t0
        rec = StructureRecord.from_dense(atoms, basis, mats, spinful=False,
                                         fermi_energy_eV=None if h0_only else 0.0,
                                         metadata={"engine": "toy", "settings": self.settings(),
                                                   "timings": {"t_H0": t / 2, **({} if h0_only else {"t_SCF": t / 2})}})
        if self.log_file:
            with open(self.log_file, "a") as fh:
                fh.write(f"done {structure_key(atoms)} {os.getpid()}\n")
        return rec
