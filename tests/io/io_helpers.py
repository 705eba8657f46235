"""Shared helpers of the io tests: independent Bloch sums, symmetry checks, record comparison."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import spglib
from ase.data import chemical_symbols
from scipy.linalg import block_diag

from nextham.basis.rotations import su2_from_rotation, wigner_D


def bloch_dense(record, name: str, k) -> np.ndarray:
    """``sum_R exp(+2 pi i k.R) M(R)`` from the record's dense per-R matrices (independent of physics/)."""
    mats = record.to_dense(name)
    return sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in mats.items())


def symmetry_operations(record, symprec: float = 1e-4):
    """Cartesian rotations Q, atom maps and lattice shifts of the space group (spglib)."""
    A = record.cell
    frac = record.positions @ np.linalg.inv(A)
    ds = spglib.get_symmetry((A, frac, record.numbers), symprec=symprec)
    ops = []
    for W, t in zip(ds["rotations"], ds["translations"]):
        new = frac @ W.T + t
        amap, shift = [], []
        for a in range(record.n_atoms):
            d = new[a] - frac
            b = int(np.argmin(np.linalg.norm(d - np.round(d), axis=1)))
            amap.append(b)
            shift.append(np.round(new[a] - frac[b]).astype(np.int64))
        Q = A.T @ W @ np.linalg.inv(A.T)
        ops.append((Q, W, np.array(amap), np.array(shift)))
    return ops


def symmetry_errors(record, name: str, groups: dict, spin: bool = False, ops=None) -> tuple[dict, int]:
    """Max over space-group operations and edges of ``|D_i B_ij(R) D_j^dagger - B_i'j'(R')|`` for each
    group of shells (``{"p": [1], "all": None}``: rows and columns restricted to shells with these l),
    and the number of operations.

    ``spin``: rotate the spin index too (``U(Q) ⊗ D``); ``ops``: operations (default: spglib's).
    """
    worst = {g: 0.0 for g in groups}
    n_ops = 0
    i, j = record.edge_index.T
    blocks = record.block_list(name)
    spinful = record.spinful and name != "S"
    masks = {}
    for z in set(record.numbers.tolist()):
        ol = record.basis[chemical_symbols[z]].orbital_l
        for g, ls in groups.items():
            m = np.ones(len(ol), bool) if ls is None else np.isin(ol, ls)
            masks[z, g] = np.concatenate([m, m]) if spinful else m
    for Q, W, amap, shift in (ops if ops is not None else symmetry_operations(record)):
        n_ops += 1
        D = {}
        for z in set(record.numbers.tolist()):
            Dz = block_diag(*[wigner_D(l, Q) for l in record.basis[chemical_symbols[z]].ls])
            if spinful:
                Dz = np.kron(su2_from_rotation(Q) if spin else np.eye(2), Dz)
            D[z] = Dz
        R2 = shift[j] + record.edge_R @ W.T - shift[i]
        e2 = record.find_edges(amap[i], amap[j], R2)
        assert (e2 >= 0).all(), "symmetry image of an edge is missing"
        zi_all, zj_all = record.numbers[i], record.numbers[j]
        for zi, zj in set(zip(zi_all.tolist(), zj_all.tolist())):
            sel = np.flatnonzero((zi_all == zi) & (zj_all == zj))
            B = np.stack([blocks[e] for e in sel])
            B2 = np.stack([blocks[e] for e in e2[sel]])
            diff = np.abs(D[zi] @ B @ D[zj].conj().T - B2)
            for g in groups:
                sub = diff[:, masks[zi, g]][:, :, masks[zj, g]]
                worst[g] = max(worst[g], float(sub.max(initial=0.0)))
    return worst, n_ops


def symmetry_error(record, name: str, ls_filter=None, spin: bool = False, ops=None) -> tuple[float, int]:
    """:func:`symmetry_errors` for one group of shells (all shells when ``ls_filter`` is None)."""
    worst, n_ops = symmetry_errors(record, name, {"g": ls_filter}, spin=spin, ops=ops)
    return worst["g"], n_ops


def assert_records_equal(a, b, exact: bool = True, rtol: float = 1e-14, geom_atol: float = 1e-12) -> None:
    """Same structure, basis, edges (same order) and blocks (bitwise, or to ``rtol`` of the largest value)."""
    assert a.basis == b.basis, (a.basis, b.basis)
    assert np.array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.cell, b.cell, rtol=0, atol=geom_atol)
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=geom_atol)
    assert a.spinful == b.spinful
    assert np.array_equal(a.edge_index, b.edge_index) and np.array_equal(a.edge_R, b.edge_R)
    assert set(a.blocks) == set(b.blocks), (set(a.blocks), set(b.blocks))
    for name in a.blocks:
        assert a.blocks[name].dtype == b.blocks[name].dtype, name
        if exact:
            assert np.array_equal(a.blocks[name], b.blocks[name]), name
        else:
            scale = np.abs(a.blocks[name]).max()
            np.testing.assert_allclose(a.blocks[name], b.blocks[name], rtol=0, atol=rtol * scale, err_msg=name)
    assert (a.fermi_energy_eV is None) == (b.fermi_energy_eV is None)
    if a.fermi_energy_eV is not None:
        assert a.fermi_energy_eV == b.fermi_energy_eV


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst
