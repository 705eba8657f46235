"""k-points: Monkhorst-Pack grids and high-symmetry paths for the user's own cell.

All k-points are fractional coordinates of the reciprocal lattice of the cell they are given for.
Paths come from seekpath (Hinuma et al. 2017), computed on the spglib-standardised cell and mapped
back to the user's cell: seekpath's Cartesian k (standardised frame) is rotated into the user's frame
with ``rotation_matrix`` and expressed in the user's reciprocal basis (``k_frac = cell @ k_cart / 2pi``).
The user's cell is never silently replaced by a rotated standard cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms


def monkhorst_pack(mesh: tuple[int, int, int] | list[int], shift: bool | tuple[float, float, float] = False) -> np.ndarray:
    """Monkhorst-Pack grid (n1*n2*n3, 3), fractional.

    ``shift=False`` gives a Gamma-centred grid ``k_a = i_a / n_a``; ``shift=True`` the MP offset
    (half a step along even directions, i.e. ``(2i - n + 1) / 2n``); a tuple adds that offset (in grid
    steps) to the Gamma-centred grid.
    """
    mesh = np.asarray(mesh, dtype=int)
    if mesh.shape != (3,) or np.any(mesh < 1):
        raise ValueError(f"k-mesh must be three positive integers, got {mesh.tolist()}")
    grids = np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij")
    k = np.stack([g.ravel() for g in grids], axis=1).astype(np.float64)
    if shift is True:
        k = (2 * k - mesh + 1) / (2 * mesh)
    else:
        off = np.zeros(3) if shift is False else np.asarray(shift, dtype=float)
        k = (k + off) / mesh
    return k


@dataclass(frozen=True)
class KPath:
    """kpts : (n_k, 3) fractional in the user's cell; x : (n_k,) path coordinate (1/Å, includes 2pi);
    labels : [(index, label)] of the special points; segments : list of (start, stop) index ranges."""

    kpts: np.ndarray
    x: np.ndarray
    labels: list[tuple[int, str]]
    segments: list[tuple[int, int]]


def high_symmetry_path(atoms: Atoms, density: float = 40.0) -> KPath:
    """seekpath's path for ``atoms`` expressed in ``atoms``' own reciprocal coordinates.

    ``density``: points per 1/Å (seekpath's ``reference_distance = 1/density``). Non-periodic
    directions (pbc False) are not handled by seekpath: the cell must be fully periodic.
    """
    import seekpath

    if not atoms.pbc.all():
        raise ValueError("high-symmetry paths need a fully periodic cell (pbc = True, True, True)")
    cell = atoms.cell.array
    res = seekpath.get_explicit_k_path((cell, atoms.get_scaled_positions(), atoms.numbers),
                                       reference_distance=1.0 / density)
    k_cart_std = np.asarray(res["explicit_kpoints_abs"])
    k_cart_user = k_cart_std @ np.asarray(res["rotation_matrix"])
    kpts = k_cart_user @ cell.T / (2 * np.pi)
    x = np.asarray(res["explicit_kpoints_linearcoord"])
    labels = [(i, _pretty(lab)) for i, lab in enumerate(res["explicit_kpoints_labels"]) if lab]
    segments = [tuple(s) for s in res["explicit_segments"]]
    return KPath(kpts, x, labels, segments)


def path_from_points(atoms: Atoms, points: list[tuple[str, tuple[float, float, float]]], n_per_segment: int = 30) -> KPath:
    """Straight segments through user-given fractional points ``[("G", (0,0,0)), ("X", (0.5,0,0.5)), ...]``."""
    cell = atoms.cell.array
    B = 2 * np.pi * np.linalg.inv(cell).T
    kpts, labels, segments, x = [], [], [], []
    xs = 0.0
    for (la, a), (lb, b) in zip(points[:-1], points[1:]):
        t = np.linspace(0.0, 1.0, n_per_segment)
        seg = np.asarray(a) + t[:, None] * (np.asarray(b) - np.asarray(a))
        start = len(kpts) and sum(len(k) for k in kpts)
        kpts.append(seg)
        length = np.linalg.norm((np.asarray(b) - np.asarray(a)) @ B)
        x.append(xs + t * length)
        xs += length
        labels += [(start, la), (start + n_per_segment - 1, lb)]
        segments.append((start, start + n_per_segment))
    return KPath(np.concatenate(kpts), np.concatenate(x), labels, segments)


def _pretty(label: str) -> str:
    return "Γ" if label.upper() == "GAMMA" else label.replace("_", "")
