"""Two-centre (Slater-Koster) blocks in nextham's real-harmonic basis, for any l.

A two-centre integral between shells l1 (atom i) and l2 (atom j) along the unit bond direction d is,
in a frame whose z axis is d, diagonal in m with a value ``V_{|m|}`` (sigma, pi, delta, ...). In the
crystal frame ``B(d) = D^l1(Q_d) L D^l2(Q_d)^T`` with ``Q_d`` any rotation taking z to d (L commutes
with rotations about z, so the choice does not matter). This gives ``B(-d) = (-1)^(l1+l2) B(d)`` and
``B(Q d) = D^l1(Q) B(d) D^l2(Q)^T`` for every orthogonal Q, as physical two-centre integrals do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from ase import Atoms
from scipy.linalg import block_diag

from ..basis.orbitals import Basis
from ..basis.rotations import angular_momentum_matrices, pauli_matrices, wigner_D
from ..blocks.record import StructureRecord
from ..structure.neighbours import neighbour_list


def rotation_z_to(d: np.ndarray) -> np.ndarray:
    """A proper rotation matrix taking the z axis to the unit vector ``d`` (Rodrigues)."""
    d = np.asarray(d, dtype=np.float64) / np.linalg.norm(d)
    z = np.array([0.0, 0.0, 1.0])
    c = float(d @ z)
    if c > 1 - 1e-14:
        return np.eye(3)
    if c < -1 + 1e-14:
        return np.diag([1.0, -1.0, -1.0])
    v = np.cross(z, d)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


def two_centre_block(l1: int, l2: int, V: np.ndarray, d: np.ndarray,
                     D: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """(2l1+1, 2l2+1) block for bond direction ``d`` and ``V[|m|]``, |m| = 0..min(l1, l2).

    ``D`` optionally caches ``{l: D^l(Q_d)}`` for this bond.
    """
    lmin = min(l1, l2)
    L = np.zeros((2 * l1 + 1, 2 * l2 + 1))
    for m in range(-lmin, lmin + 1):
        L[l1 + m, l2 + m] = V[abs(m)]
    if D is None:
        Q = rotation_z_to(d)
        D = {l: wigner_D(l, Q) for l in {l1, l2}}
    return D[l1] @ L @ D[l2].T


@dataclass
class TwoCentreModel:
    """A two-centre tight-binding model of nextham records.

    onsite : per element, on-site energy of each shell (eV).
    hopping : ``f(Zi, Zj, l1, l2, shell_i, shell_j, r) -> V[0..min(l1,l2)]`` (eV) for H.
    overlap : same signature for S (dimensionless), or None for an orthonormal basis.
    soc : per element, per shell spin-orbit strength lambda (eV) of ``lambda L.S`` (spinful records).
    cutoff : bond cutoff (Å).
    """

    basis: Basis
    onsite: dict[str, list[float]]
    hopping: Callable[..., np.ndarray]
    cutoff: float
    overlap: Callable[..., np.ndarray] | None = None
    soc: dict[str, list[float]] = field(default_factory=dict)

    def _pair_block(self, fn, Zi, Zj, d) -> np.ndarray:
        from ase.data import chemical_symbols
        ei, ej = self.basis[chemical_symbols[Zi]], self.basis[chemical_symbols[Zj]]
        r = float(np.linalg.norm(d))
        Q = rotation_z_to(d)
        D = {l: wigner_D(l, Q) for l in set(ei.ls) | set(ej.ls)}
        blocks = [[two_centre_block(si.l, sj.l, np.asarray(fn(Zi, Zj, si.l, sj.l, a, b, r), dtype=float), d, D)
                   for b, sj in enumerate(ej.shells)] for a, si in enumerate(ei.shells)]
        return np.block(blocks)

    def _onsite_block(self, symbol: str, spinful: bool) -> tuple[np.ndarray, np.ndarray]:
        el = self.basis[symbol]
        H = np.diag(np.repeat(self.onsite[symbol], [s.size for s in el.shells])).astype(float)
        if not spinful:
            return H, np.eye(el.norb)
        sigma = pauli_matrices()
        lam = self.soc.get(symbol, [0.0] * len(el.shells))
        Ls = [angular_momentum_matrices(s.l) for s in el.shells]
        soc = sum(np.kron(sigma[a], block_diag(*[0.5 * lm * L[a] for lm, L in zip(lam, Ls)])) for a in range(3))
        return np.kron(np.eye(2), H) + soc, np.eye(el.norb)

    def record(self, atoms: Atoms, spinful: bool = False, fermi_energy_eV: float | None = None) -> StructureRecord:
        """Build the record of ``atoms``: H (and S if the model has overlaps) on all bonds within cutoff."""
        nl = neighbour_list(atoms, self.cutoff, self_loops=True)
        Z = atoms.numbers
        H_parts, S_parts = [], []
        for (i, j), R, d in zip(nl.edge_index, nl.edge_R, nl.vectors):
            if i == j and not R.any():
                Hb, Sb = self._onsite_block(atoms.get_chemical_symbols()[i], spinful)
            else:
                Hb = self._pair_block(self.hopping, Z[i], Z[j], d)
                Sb = self._pair_block(self.overlap, Z[i], Z[j], d) if self.overlap else np.zeros(Hb.shape)
                if spinful:
                    Hb = np.kron(np.eye(2), Hb)
            H_parts.append(Hb.ravel())
            S_parts.append(Sb.ravel())
        blocks = {"H": np.concatenate(H_parts).astype(np.complex128 if spinful else np.float64),
                  "S": np.concatenate(S_parts)}
        return StructureRecord(cell=atoms.cell.array, positions=atoms.positions, numbers=Z, pbc=atoms.pbc,
                               basis=self.basis.restrict(Z), edge_index=nl.edge_index, edge_R=nl.edge_R,
                               blocks=blocks, spinful=spinful, fermi_energy_eV=fermi_energy_eV,
                               metadata={"source": "two-centre tight-binding model"})
