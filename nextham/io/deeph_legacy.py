"""The legacy DeepH folder format (DeepH-pack ``preprocess`` output): read and write.

Files (eV, Å)::

    lat.dat             3 x 3, lattice vectors as COLUMNS
    rlat.dat            3 x 3, reciprocal vectors (2 pi / a) as columns (written, not read)
    site_positions.dat  3 x N, Cartesian positions as COLUMNS
    element.dat         N atomic numbers
    orbital_types.dat   one line per atom: l of each shell, in order
    info.json           {"nsites", "isorthogonal", "isspinful", "fermi_level"}
    overlaps.h5         datasets "[Rx, Ry, Rz, i, j]" (1-based atoms), blocks (n_i, n_j)
    hamiltonians.h5     the same for H; spinful: complex (2 n_i, 2 n_j) spin-major
    hamiltonians_0.h5   nextham extension: H0, same layout (ignored by DeepH tools)

Orbitals follow OpenMX order (p: x, y, z; d: z², x²-y², xy, xz, yz), no extra signs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols

from ..basis.orbitals import Basis, BasisError, ElementBasis
from ..blocks.record import StructureRecord
from .assemble import Elements, build_record, finite_fermi, orbital_tables, require_onsite
from .errors import FormatError

CODE = "deeph-legacy"
REQUIRED = ("lat.dat", "site_positions.dat", "element.dat", "orbital_types.dat", "info.json")
MATRIX_FILES = {"S": "overlaps.h5", "H": "hamiltonians.h5", "H0": "hamiltonians_0.h5"}


def looks_like_deeph_legacy(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / f).is_file() for f in ("lat.dat", "element.dat", "site_positions.dat"))


def _loadtxt(path: Path, **kw) -> np.ndarray:
    if not path.is_file():
        raise FormatError(path, "missing file")
    try:
        out = np.loadtxt(path, ndmin=2, **kw)
    except ValueError as exc:
        raise FormatError(path, f"not a table of numbers ({exc})") from None
    if not np.all(np.isfinite(out)):
        raise FormatError(path, "non-finite number")
    return out


def read_deeph_legacy(path: str | os.PathLike) -> StructureRecord:
    """Read a legacy DeepH folder into a record (orbitals converted from OpenMX order)."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError(path, "not a folder")
    for f in REQUIRED:
        if not (path / f).is_file():
            raise FormatError(path / f, "missing file (a legacy DeepH folder needs " + ", ".join(REQUIRED) + ")")
    lat = _loadtxt(path / "lat.dat")
    if lat.shape != (3, 3):
        raise FormatError(path / "lat.dat", f"expected 3 x 3 numbers, found {lat.shape}")
    cell = lat.T
    numbers = _loadtxt(path / "element.dat").ravel()
    if np.any(numbers != np.round(numbers)) or np.any(numbers < 1) or np.any(numbers >= len(chemical_symbols)):
        raise FormatError(path / "element.dat", "atomic numbers must be integers 1..118")
    numbers = numbers.astype(np.int64)
    n = len(numbers)
    info = read_json(path / "info.json")
    if "nsites" in info and info["nsites"] != n:
        raise FormatError(path / "element.dat", f"lists {n} atoms but info.json says nsites = {info['nsites']}")
    sites = _loadtxt(path / "site_positions.dat")
    if sites.shape == (n, 3) and n != 3:
        raise FormatError(path / "site_positions.dat", "positions are stored as rows; the legacy format stores them "
                                                      "as columns (3 x N)")
    if sites.shape != (3, n):
        raise FormatError(path / "site_positions.dat", f"expected 3 x {n} numbers (columns = atoms), found {sites.shape}")
    positions = sites.T
    basis = _read_orbital_types(path / "orbital_types.dat", numbers)
    spinful = bool(info.get("isspinful", False))
    if not (path / MATRIX_FILES["S"]).is_file():
        raise FormatError(path / MATRIX_FILES["S"], "missing overlap file")
    elements = {}
    for name, fname in MATRIX_FILES.items():
        if (path / fname).is_file():
            elements[name] = _read_h5(path / fname, numbers, basis, spinful and name != "S")
            require_onsite(elements[name], n, path / fname, name)
    ef = finite_fermi(info.get("fermi_level"), path / "info.json")
    meta = {"source": {"code": CODE, "path": str(path), "isorthogonal": bool(info.get("isorthogonal", False))}}
    return build_record(numbers, cell, positions, [True, True, True], basis, elements, spinful,
                        ef, meta)


def read_json(path: Path) -> dict:
    """A JSON object from ``path`` (FormatError naming the file and line otherwise)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict):
        raise FormatError(path, "expected a JSON object")
    return data


def _read_orbital_types(path: Path, numbers: np.ndarray) -> Basis:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) != len(numbers):
        raise FormatError(path, f"{len(lines)} lines for {len(numbers)} atoms")
    per_el: dict[str, ElementBasis] = {}
    for k, (ln, z) in enumerate(zip(lines, numbers), 1):
        try:
            ls = [int(t) for t in ln.split()]
            eb = ElementBasis.from_ls(chemical_symbols[z], ls)
        except (ValueError, BasisError) as exc:
            raise FormatError(path, f"bad orbital types {ln.strip()[:40]!r}: {exc}", line=k) from None
        if eb.symbol in per_el and per_el[eb.symbol].ls != eb.ls:
            raise FormatError(path, f"atoms of {eb.symbol} have different orbital types", line=k)
        per_el[eb.symbol] = eb
    return Basis(tuple(per_el.values()))


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, f"not a readable HDF5 file ({exc})") from None


def _read_h5(path: Path, numbers, basis: Basis, spinful: bool) -> Elements:
    n_atoms = len(numbers)
    atom, local, sign, offsets = orbital_tables(numbers, basis, CODE)
    norb = np.diff(offsets)
    f = 2 if spinful else 1
    Rs, ii, jj, vals = [], [], [], []
    with _open_h5(path) as h5:
        for key in h5.keys():
            try:
                k = json.loads(key)
                if not (isinstance(k, list) and len(k) == 5 and all(isinstance(x, int) for x in k)):
                    raise ValueError
            except ValueError:
                raise FormatError(path, f"dataset name {key!r} is not '[Rx, Ry, Rz, i, j]'") from None
            i, j = k[3] - 1, k[4] - 1
            if not (0 <= i < n_atoms and 0 <= j < n_atoms):
                raise FormatError(path, f"dataset {key}: atom index outside 1..{n_atoms} (keys are 1-based)")
            ds = h5[key]
            if not isinstance(ds, h5py.Dataset):
                raise FormatError(path, f"{key} is not a dataset")
            B = ds[()]
            shape = (int(f * norb[i]), int(f * norb[j]))
            if B.shape != shape:
                raise FormatError(path, f"dataset {key}: shape {B.shape}, but the orbital types give {shape}"
                                        f"{' (spinful)' if spinful else ''}")
            if not np.all(np.isfinite(B)):
                raise FormatError(path, f"dataset {key}: non-finite values")
            Rs.append(k[:3])
            ii.append(i)
            jj.append(j)
            vals.append(B.ravel())
    if not vals:
        raise FormatError(path, "holds no blocks")
    sizes = np.array([len(v) for v in vals])
    e = np.repeat(np.arange(len(vals)), sizes)
    i_e, j_e = np.array(ii)[e], np.array(jj)[e]
    local_idx = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ncol = f * norb[j_e]
    r, c = local_idx // ncol, local_idx % ncol
    value = np.concatenate(vals)
    if not spinful and np.iscomplexobj(value):
        if np.max(np.abs(value.imag)) > 1e-10:
            raise FormatError(path, "complex blocks in a spinless record (info.json isspinful is false)")
        value = value.real
    return _to_nextham(np.array(Rs, dtype=np.int64)[e], i_e, j_e, r, c, value, atom, local, sign, offsets, f)


def _to_nextham(R, i, j, r, c, value, atom, local, sign, offsets, f) -> Elements:
    """Elements of blocks in a code's order -> nextham order (vectorized; spin-major kept)."""
    norb = np.diff(offsets)
    ni, nj = norb[i], norb[j]
    s_r, p_r = r // ni, r % ni
    s_c, p_c = c // nj, c % nj
    g_r, g_c = offsets[i] + p_r, offsets[j] + p_c
    v = value * (sign[g_r] * sign[g_c])
    return Elements(R, i, j, s_r * ni + local[g_r], s_c * nj + local[g_c],
                    v.astype(np.complex128) if f == 2 else v.astype(np.float64))


def _from_nextham(record: StructureRecord, name: str, code: str):
    """(edge, block-row, block-col, value) of every packed element converted to ``code``'s order."""
    atom, local, sign, offsets = orbital_tables(record.numbers, record.basis, code)
    n = record.n_orbitals
    inv = np.empty(n, dtype=np.int64)  # nextham global (offset + local) -> code global
    inv[offsets[atom] + local] = np.arange(n)
    sign_new = np.empty(n)
    sign_new[offsets[atom] + local] = sign
    shapes = record.block_shapes(name)
    off = record.block_offsets(name)
    coords = record.coordinates(name)
    e, r, c = coords.edge, coords.p, coords.q
    i, j = record.edge_index[e, 0], record.edge_index[e, 1]
    ni, nj = record.atom_norb[i], record.atom_norb[j]
    s_r, k_r, s_c, k_c = r // ni, r % ni, c // nj, c % nj
    g_r, g_c = offsets[i] + k_r, offsets[j] + k_c
    v = record.blocks[name] * sign_new[g_r] * sign_new[g_c]
    out = np.empty_like(v)
    pos = off[e] + (s_r * ni + inv[g_r] - offsets[i]) * shapes[e, 1] + (s_c * nj + inv[g_c] - offsets[j])
    out[pos] = v
    return out  # packed like the record, blocks in the code's orbital order


def write_deeph_legacy(record: StructureRecord, path: str | os.PathLike) -> Path:
    """Write ``record`` as a legacy DeepH folder (OpenMX orbital order, 1-based keys)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    np.savetxt(path / "rlat.dat", 2 * np.pi * np.linalg.inv(record.cell), fmt="%.16f")
    _savetxt_exact(path / "lat.dat", record.cell.T)
    _savetxt_exact(path / "site_positions.dat", record.positions.T)
    np.savetxt(path / "element.dat", record.numbers, fmt="%d")
    with open(path / "orbital_types.dat", "w") as fh:
        for z in record.numbers:
            fh.write("  ".join(str(l) for l in record.basis[chemical_symbols[z]].ls) + "\n")
    info = {"nsites": record.n_atoms, "isorthogonal": False, "isspinful": record.spinful,
            "fermi_level": record.fermi_energy_eV}
    (path / "info.json").write_text(json.dumps(info))
    for name, fname in MATRIX_FILES.items():
        if name not in record.blocks:
            continue
        data = _from_nextham(record, name, CODE)
        off = record.block_offsets(name)
        shapes = record.block_shapes(name)
        with h5py.File(path / fname, "w") as h5:
            for e in range(record.n_edges):
                R = record.edge_R[e]
                key = f"[{R[0]}, {R[1]}, {R[2]}, {record.edge_index[e, 0] + 1}, {record.edge_index[e, 1] + 1}]"
                h5.create_dataset(key, data=data[off[e]:off[e + 1]].reshape(shapes[e]))
    return path


def _savetxt_exact(path: Path, a: np.ndarray) -> None:
    """Text table with round-trip float precision (``repr``)."""
    path.write_text("\n".join(" ".join(repr(float(x)) for x in row) for row in np.atleast_2d(a)) + "\n")
