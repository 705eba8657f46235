"""Random two-centre test models with s, p, d and f shells (non-orthogonal, optional SOC)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ..basis.orbitals import Basis
from ..tightbinding.slater_koster import TwoCentreModel

TEST_BASIS = Basis.from_specs({"Ga": [0, 0, 1, 2], "As": [0, 1, 1, 3]})


def random_two_centre_model(seed: int = 0, cutoff: float = 4.2, overlap: bool = True,
                            basis: Basis = TEST_BASIS) -> TwoCentreModel:
    """A model with random two-centre parameters that decay as exp(-r/1.5 Å).

    Parameters are tabulated for ordered shell pairs ((Z, shell) <= (Z', shell')); the reversed pair
    uses the parity sign (-1)^(l1+l2), so that H and S are exactly Hermitian.
    """
    rng = np.random.default_rng(seed)
    table: dict = {}
    keys = [(atomic_numbers[e.symbol], a, s.l) for e in basis.elements for a, s in enumerate(e.shells)]
    for k1 in keys:
        for k2 in keys:
            if k1 <= k2:
                n = min(k1[2], k2[2]) + 1
                table[(k1, k2)] = (rng.normal(size=n), rng.normal(size=n))

    def lookup(which, Zi, Zj, l1, l2, a, b, r):
        k1, k2 = (Zi, a, l1), (Zj, b, l2)
        sign = 1.0
        if k1 > k2:
            k1, k2, sign = k2, k1, (-1.0) ** (l1 + l2)
        h, s = table[(k1, k2)]
        amp = np.exp(-r / 1.5)
        return sign * amp * (2.0 * h if which == "H" else 0.08 * s)

    onsite = {e.symbol: list(rng.normal(size=len(e.shells)) * 3.0) for e in basis.elements}
    soc = {e.symbol: list(np.abs(rng.normal(size=len(e.shells))) * 0.3) for e in basis.elements}
    return TwoCentreModel(basis, onsite, lambda *a: lookup("H", *a), cutoff,
                          overlap=(lambda *a: lookup("S", *a)) if overlap else None, soc=soc)


def random_crystal(seed: int = 0, n_atoms: int = 2, symbols: tuple[str, ...] = ("Ga", "As"),
                   a: float = 3.6) -> Atoms:
    """A random triclinic cell with atoms at least 1.9 Å apart."""
    rng = np.random.default_rng(seed)
    cell = a * (max(n_atoms, 2) / 2) ** (1 / 3) * (np.eye(3) + 0.15 * rng.normal(size=(3, 3)))
    for _ in range(10000):
        frac = rng.random((n_atoms, 3))
        atoms = Atoms([symbols[i % len(symbols)] for i in range(n_atoms)], scaled_positions=frac, cell=cell, pbc=True)
        if n_atoms == 1 or atoms.get_all_distances(mic=True)[np.triu_indices(n_atoms, 1)].min() > 1.9:
            return atoms
    raise RuntimeError("could not place atoms 1.9 Å apart; use a larger cell")
