"""Built-in example: diamond silicon in the sp3s* model of Vogl, Hjalmarson and Dow (1983).

J. Phys. Chem. Solids 44, 365 (1983), Table I (Si): E_s = -4.2, E_p = 1.715, E_s* = 6.685 eV;
V_ss = -8.3, V_xx = 1.715, V_xy = 4.575, V_sp = 5.7292, V_s*p = 5.3749 eV (nearest neighbours).
Two-centre integrals from the k-space parameters: ss_sigma = V_ss/4, sp_sigma = sqrt(3) V_sp/4,
pp_sigma = (V_xx + 2 V_xy)/4, pp_pi = (V_xx - V_xy)/4, s*p_sigma = sqrt(3) V_s*p/4.
An orthonormal model (S = 1): gap about 1.2 eV (indirect), valence width about 12 eV.
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from ..basis.orbitals import Basis, ElementBasis, Shell
from ..blocks.record import StructureRecord
from .slater_koster import TwoCentreModel

_VSS, _VXX, _VXY, _VSP, _VSSP = -8.3, 1.715, 4.575, 5.7292, 5.3749
_SIGMA = {(0, 0): _VSS / 4, (0, 1): np.sqrt(3) * _VSP / 4, (1, 1): (_VXX + 2 * _VXY) / 4}
_PI = (_VXX - _VXY) / 4
_SSTAR_P = np.sqrt(3) * _VSSP / 4

SILICON_BASIS = Basis((ElementBasis("Si", (Shell(0, "s"), Shell(0, "s*"), Shell(1, "p"))),))


def _vogl_hopping(Zi, Zj, l1, l2, a, b, r):
    if l1 == 0 and l2 == 0:
        return [_VSS / 4 if (a == 0 and b == 0) else 0.0]
    if l1 == 1 and l2 == 1:
        return [_SIGMA[(1, 1)], _PI]
    # s-p (sign: s on i, p on j along +d) and p-s = -(s-p) by parity
    s_shell = a if l1 == 0 else b
    v = _SIGMA[(0, 1)] if s_shell == 0 else _SSTAR_P
    return [v if l1 == 0 else -v]


def silicon_vogl(a: float = 5.431, spinful: bool = False, soc_p: float = 0.044) -> StructureRecord:
    """Record of diamond Si (lattice constant ``a`` Å) in the sp3s* model; ``spinful`` adds on-site
    ``lambda L.S`` on the p shell (lambda = ``soc_p`` eV, giving a split-off gap of 3 lambda / 2)."""
    model = TwoCentreModel(SILICON_BASIS, onsite={"Si": [-4.2, 6.685, 1.715]}, hopping=_vogl_hopping,
                           cutoff=a * np.sqrt(3) / 4 + 0.1, soc={"Si": [0.0, 0.0, soc_p]})
    rec = model.record(bulk("Si", "diamond", a=a), spinful=spinful)
    rec.metadata.update(source="sp3s* model of Vogl, Hjalmarson and Dow (1983)", n_electrons=8)
    return rec
