"""Band structures from a record: ``eps_n(k)`` of ``(H(k), S(k))`` along a path or on any k set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..blocks.record import RecordError, StructureRecord
from .bloch import bloch_operator, overlap_for
from .eig import solve_generalized
from .kpoints import KPath, high_symmetry_path


def eigenvalues(record: StructureRecord, kpts: np.ndarray, which: str = "H", threshold: float = 1e-7,
                chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (eV) of ``(H(k), S(k))`` at fractional ``kpts`` (n_k, 3).

    Returns ``(eps (n_k, dim) ascending, NaN-padded where S directions were dropped; n_dropped (n_k,))``.
    Without ``S`` in the record the basis is taken as orthonormal.
    """
    if which not in record.blocks:
        raise RecordError(f"record has no matrix {which!r} (it holds {sorted(record.blocks)})")
    kpts = np.atleast_2d(np.asarray(kpts, dtype=np.float64))
    H_op = bloch_operator(record, which)
    S_op = bloch_operator(record, "S") if "S" in record.blocks else None
    eps, dropped = [], []
    for start in range(0, len(kpts), chunk):
        k = kpts[start:start + chunk]
        Sk = overlap_for(record, S_op(k), which) if S_op is not None else None
        res = solve_generalized(H_op(k), Sk, threshold=threshold)
        eps.append(res.eigenvalues)
        dropped.append(res.n_dropped)
    return np.concatenate(eps), np.concatenate(dropped)


@dataclass(frozen=True)
class BandStructure:
    """Bands along a path: ``energies`` (n_k, n_bands) eV, the path, and the Fermi level (eV or None)."""

    path: KPath
    energies: np.ndarray
    fermi_energy_eV: float | None
    label: str = ""

    def to_json(self) -> dict:
        return {"label": self.label, "kpoints": self.path.kpts.tolist(), "x": self.path.x.tolist(),
                "special_points": [[i, s] for i, s in self.path.labels],
                "fermi_energy_eV": self.fermi_energy_eV,
                "eigenvalues_eV": np.where(np.isnan(self.energies), None, self.energies).tolist()}


def band_structure(record: StructureRecord, which: str = "H", path: KPath | None = None, density: float = 40.0,
                   label: str | None = None) -> BandStructure:
    """Bands of matrix ``which`` along ``path`` (default: seekpath's path for the record's own cell)."""
    path = path or high_symmetry_path(record.to_atoms(), density=density)
    eps, _ = eigenvalues(record, path.kpts, which=which)
    return BandStructure(path, eps, record.fermi_energy_eV, label or which)
