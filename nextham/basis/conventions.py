"""Per-code orbital conversion tables (permutation and sign), docs/conventions.md.

A code's orbitals of one shell are converted to nextham order by ``new[k] = old[idx[k]] * sign[k]``,
where ``k`` runs over ``m = -l..l`` of nextham's real-harmonic table.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .orbitals import ElementBasis

Code = Literal["nextham", "abacus", "openmx", "deeph-legacy", "siesta", "deeph"]


def _abacus_idx(l: int) -> list[int]:
    # ABACUS writes m = 0, +1, -1, +2, -2, ...; position of m in that list:
    def pos(m: int) -> int:
        return 0 if m == 0 else (2 * m - 1 if m > 0 else -2 * m)
    return [pos(m) for m in range(-l, l + 1)]


_OPENMX_IDX = {0: [0], 1: [1, 2, 0], 2: [2, 4, 0, 3, 1], 3: [6, 4, 2, 0, 1, 3, 5]}


def shell_permutation(code: Code, l: int) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, sign)`` for one shell of angular momentum ``l`` written by ``code``.

    Returns int64 ``idx`` and float64 ``sign``, each of shape ``(2l+1,)``.
    """
    m = np.arange(-l, l + 1)
    if code in ("nextham", "deeph"):
        return np.arange(2 * l + 1), np.ones(2 * l + 1)
    if code == "abacus":
        return np.array(_abacus_idx(l)), (-1.0) ** np.abs(m)
    if code in ("openmx", "deeph-legacy"):
        if l not in _OPENMX_IDX:
            raise ValueError(f"OpenMX orbital order is tabulated for l <= 3, got l={l}")
        return np.array(_OPENMX_IDX[l]), np.ones(2 * l + 1)
    if code == "siesta":
        return np.arange(2 * l + 1), (-1.0) ** np.abs(m)
    raise ValueError(f"unknown orbital convention {code!r}")


def atom_permutation(code: Code, element: ElementBasis) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, sign)`` over all orbitals of one atom (shells concatenated), shape ``(norb,)``."""
    idx, sign = [], []
    for offset, shell in zip(element.shell_offsets[:-1], element.shells):
        i, s = shell_permutation(code, shell.l)
        idx.append(i + offset)
        sign.append(s)
    return np.concatenate(idx), np.concatenate(sign)


def inverse_permutation(idx: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(idx, sign)`` that undoes ``new[k] = old[idx[k]] * sign[k]`` (signs are +-1)."""
    inv = np.empty_like(idx)
    inv[idx] = np.arange(len(idx))
    return inv, sign[inv]


def convert_block(block: np.ndarray, row: tuple[np.ndarray, np.ndarray],
                  col: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Apply row and column ``(idx, sign)`` to a (..., n_i, n_j) block (spinless)."""
    (ri, rs), (ci, cs) = row, col
    return block[..., ri, :][..., :, ci] * rs[:, None] * cs[None, :]
