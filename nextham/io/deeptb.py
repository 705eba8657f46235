"""DeePTB (``dptb``) data folders: read and write.

Layout, as DeePTB's ``DefaultDataset`` reads it (deepmodeling/DeePTB ``dptb/data/dataset/_default_dataset.py``)::

    <root>/info.json              nframes, pos_type ("cart" | "frac"), pbc (bool or 3 bools), r_max, natoms;
                                  may also sit inside each trajectory folder (that one wins)
    <root>/<name>.<k>/            one folder per trajectory:
        cell.dat                  (3, 3) fixed cell or (nframes * 3, 3), Å, lattice vectors as rows
        positions.dat             (nframes * natoms, 3), Å ("cart") or fractional ("frac")
        atomic_numbers.dat        (natoms,) or (nframes * natoms,)
        pbc.dat                   optional, 3 flags
        basis.dat                 {'Si': '1s1p'} (DeePTB takes the basis from its input; we need it here)
        hamiltonians.h5           one group per frame ("0", "1", ...; DeePTB also accepts 1-based groups),
        overlaps.h5               datasets "i_j_Rx_Ry_Rz" (0-based atoms), blocks (n_i, n_j) in eV;
                                  spinful blocks are complex (2 n_i, 2 n_j), spin-major
        hamiltonians_0.h5         nextham extension: H0 (ignored by DeePTB)
        nextham.json              nextham extension: Fermi level (ignored by DeePTB)

Orbitals: shells grouped by l ascending (basis "2s2p1d" = s, s, p, p, d), m = -l..l in the real harmonics of
DeePTB's E3 models. DeePTB's ABACUS interface (``dptb/utils/constants.py`` ``ABACUS2DeePTB``, used by
``dptb/data/interfaces/abacus.py``) maps ABACUS orbitals with the permutations p [2, 0, 1], d [4, 2, 0, 1, 3],
f [6, 4, 2, 0, 1, 3, 5] and the sign (-1)^m, exactly nextham's ABACUS table: DeePTB blocks are nextham blocks.
A block stored for (i, j, R) only is completed with its adjoint for (j, i, -R), as DeePTB does.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import h5py
import numpy as np
from ase.data import chemical_symbols

from ..basis.orbitals import Basis, BasisError, ElementBasis
from ..blocks.record import StructureRecord
from .assemble import Elements, build_record, elements_of, finite_fermi, require_onsite
from .deeph_legacy import read_json
from .errors import FormatError

MATRIX_FILES = {"S": "overlaps.h5", "H": "hamiltonians.h5", "H0": "hamiltonians_0.h5"}
TRAJECTORY_FILES = ("positions.dat", "atomic_numbers.dat")


def _is_trajectory(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in TRAJECTORY_FILES) and (
        (path / "hamiltonians.h5").is_file() or (path / "overlaps.h5").is_file())


def looks_like_deeptb(path: str | os.PathLike) -> bool:
    """A DeePTB trajectory folder, or a data root whose trajectory folders have an ``info.json`` (theirs or the
    root's)."""
    path = Path(path)
    if _is_trajectory(path):
        return True
    return path.is_dir() and any(_is_trajectory(p) and ((p / "info.json").is_file() or (path / "info.json").is_file())
                                 for p in path.iterdir())


def trajectories(path: str | os.PathLike) -> list[Path]:
    """The trajectory folders of ``path`` (itself, or its sub-folders, sorted by name)."""
    path = Path(path)
    if _is_trajectory(path):
        return [path]
    found = sorted(p for p in path.iterdir() if _is_trajectory(p)) if path.is_dir() else []
    if not found:
        raise FormatError(path, "not a DeePTB folder: no trajectory folder with positions.dat, atomic_numbers.dat "
                                "and hamiltonians.h5/overlaps.h5")
    return found


# ---------------------------------------------------------------------------------------- reading
def _info(traj: Path) -> tuple[dict, Path]:
    for p in (traj / "info.json", traj.parent / "info.json"):
        if p.is_file():
            return read_json(p), p
    raise FormatError(traj, "no info.json in the trajectory folder or its parent")


def _loadtxt(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FormatError(path, "missing file")
    try:
        out = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise FormatError(path, f"not a table of numbers ({exc})") from None
    if not np.all(np.isfinite(out)):
        raise FormatError(path, "non-finite number")
    return out


def _basis(traj: Path, numbers: np.ndarray, basis) -> Basis:
    if basis is not None:
        b = basis if isinstance(basis, Basis) else Basis.from_specs(basis)
        return b.restrict(numbers)
    f = traj / "basis.dat"
    if not f.is_file():
        raise FormatError(f, "missing file: DeePTB keeps the basis in its input (common_options.basis); "
                             "write it here as {'Si': '1s1p'} or pass basis=")
    text = f.read_text().strip()
    try:
        specs = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        specs = None
    if not isinstance(specs, dict):  # DeePTB's ABACUS parser writes one spec per atom, e.g. "1s1p"
        lines = text.split()
        if len(lines) != len(numbers):
            raise FormatError(f, f"expected {{'El': 'spec'}} or one basis line per atom ({len(numbers)}), "
                                 f"found {len(lines)} lines")
        specs = {}
        for z, spec in zip(numbers, lines):
            if specs.setdefault(chemical_symbols[z], spec) != spec:
                raise FormatError(f, f"atoms of {chemical_symbols[z]} have different bases")
    try:
        b = Basis.from_specs({str(k): str(v) for k, v in specs.items()})
    except (BasisError, ValueError, TypeError) as exc:
        raise FormatError(f, f"bad basis {text[:60]!r}: {exc}") from None
    missing = sorted({chemical_symbols[z] for z in numbers} - set(b.symbols))
    if missing:
        raise FormatError(f, f"no basis for {missing}")
    if any(list(e.ls) != sorted(e.ls) for e in b.elements):
        raise FormatError(f, "DeePTB groups shells by l ascending (e.g. '2s2p1d'); found another order")
    return b.restrict(numbers)


def _frame_group(h5: h5py.File, frame: int, path: Path) -> h5py.Group:
    key = str(frame) if "0" in h5 else str(frame + 1)  # DeePTB: 0-based groups, or 1-based where "0" is absent
    if key not in h5 or not isinstance(h5[key], h5py.Group):
        raise FormatError(path, f"no group {key!r} for frame {frame} (groups: {sorted(h5.keys())[:5]})")
    return h5[key]


def _read_blocks(path: Path, frame: int, numbers: np.ndarray, basis: Basis, spinful: bool, name: str) -> Elements:
    n_atoms = len(numbers)
    norb = basis.norb_per_atom(numbers)
    f = 2 if spinful else 1
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, f"not a readable HDF5 file ({exc})") from None
    with h5:
        group = _frame_group(h5, frame, path)
        keys = list(group.keys())
        try:
            idx = np.array([[int(t) for t in k.split("_")] for k in keys], dtype=np.int64).reshape(-1, 5)
            if any(len(k.split("_")) != 5 for k in keys):
                raise ValueError
        except ValueError:
            bad = next(k for k in keys if len(k.split("_")) != 5 or not all(t.lstrip("-").isdigit() for t in k.split("_")))
            raise FormatError(path, f"frame {frame}: dataset name {bad!r} is not 'i_j_Rx_Ry_Rz'") from None
        if not len(keys):
            raise FormatError(path, f"frame {frame} holds no blocks")
        onsite = (idx[:, 0] == idx[:, 1]) & np.all(idx[:, 2:] == 0, axis=1)
        first = 1 if (idx[:, :2].min() >= 1 and onsite.any() and idx[onsite, 0].max() == n_atoms) else 0
        i, j = idx[:, 0] - first, idx[:, 1] - first
        if i.min() < 0 or j.min() < 0 or i.max() >= n_atoms or j.max() >= n_atoms:
            raise FormatError(path, f"frame {frame}: atom index outside 0..{n_atoms - 1}")
        shapes = np.stack([norb[i], norb[j]], 1) * f
        values = []
        gid = group.id
        for k, key in enumerate(keys):  # h5py's low-level API: about twice as fast as group[key][()]
            try:
                ds = h5py.h5d.open(gid, key.encode())
            except (KeyError, ValueError, TypeError):
                raise FormatError(path, f"frame {frame}: {key} is not a dataset") from None
            if ds.shape != tuple(shapes[k]):
                raise FormatError(path, f"frame {frame}, block {key}: shape {ds.shape}, the basis gives "
                                        f"{tuple(shapes[k].tolist())}{' (spinful)' if spinful else ''}")
            buf = np.empty(ds.shape, dtype=ds.dtype)
            ds.read(h5py.h5s.ALL, h5py.h5s.ALL, buf)
            values.append(buf.ravel())
    vals = np.concatenate(values)
    if not np.all(np.isfinite(vals)):
        raise FormatError(path, f"frame {frame}: non-finite values")
    if np.iscomplexobj(vals) and not spinful:
        raise FormatError(path, f"frame {frame}: complex blocks of spinless size")
    sizes = shapes[:, 0] * shapes[:, 1]
    e = np.repeat(np.arange(len(keys)), sizes)
    loc = np.arange(len(vals)) - np.concatenate([[0], np.cumsum(sizes)])[e]
    dtype = np.complex128 if spinful else np.float64
    el = Elements(idx[e, 2:], i[e], j[e], loc // shapes[e, 1], loc % shapes[e, 1], vals.astype(dtype))
    require_onsite(el, n_atoms, path, name)
    return el


def _is_spinful(traj: Path, numbers: np.ndarray, basis: Basis) -> bool:
    """Spinful where the on-site H block of atom 0 is (2 n_0, 2 n_0)."""
    path = traj / "hamiltonians.h5"
    if not path.is_file():
        return False
    n0 = int(basis.norb_per_atom(numbers)[0])
    with h5py.File(path, "r") as h5:
        group = _frame_group(h5, 0, path)
        for key in ("0_0_0_0_0", "1_1_0_0_0"):
            if key in group:
                return group[key].shape == (2 * n0, 2 * n0)
    return False


def read_trajectory(traj: str | os.PathLike, basis=None) -> list[StructureRecord]:
    """Every frame of one DeePTB trajectory folder as a record (eV, Å, nextham orbital order)."""
    traj = Path(traj)
    info, info_path = _info(traj)
    try:
        nframes = int(info.get("nframes", 1))
    except (TypeError, ValueError):
        raise FormatError(info_path, f"nframes {info.get('nframes')!r} is not an integer") from None
    if nframes < 1:
        raise FormatError(info_path, f"nframes = {nframes} must be positive")
    pos = _loadtxt(traj / "positions.dat")
    if pos.shape[1] != 3 or pos.shape[0] % nframes:
        raise FormatError(traj / "positions.dat", f"expected (nframes * natoms, 3) = ({nframes} x natoms, 3), "
                                                  f"found {pos.shape}")
    natoms = pos.shape[0] // nframes
    if int(info.get("natoms", -1)) not in (-1, natoms):
        raise FormatError(info_path, f"natoms = {info['natoms']} but positions.dat holds {natoms} per frame")
    pos = pos.reshape(nframes, natoms, 3)
    z = _loadtxt(traj / "atomic_numbers.dat").ravel()
    if z.size not in (natoms, natoms * nframes) or np.any(z != np.round(z)) or np.any(z < 1) or np.any(z > 118):
        raise FormatError(traj / "atomic_numbers.dat", f"expected {natoms} (or {natoms * nframes}) atomic numbers 1..118")
    z = np.broadcast_to(z.astype(np.int64).reshape(-1, natoms), (nframes, natoms))
    if not (traj / "cell.dat").is_file():
        raise FormatError(traj / "cell.dat", "missing file (non-periodic DeePTB data without a cell are not supported)")
    cell = _loadtxt(traj / "cell.dat")
    if cell.shape == (3, 3):
        cell = np.broadcast_to(cell, (nframes, 3, 3))
    elif cell.shape == (nframes * 3, 3):
        cell = cell.reshape(nframes, 3, 3)
    else:
        raise FormatError(traj / "cell.dat", f"expected (3, 3) or ({nframes * 3}, 3), found {cell.shape}")
    pos_type = info.get("pos_type", "cart")
    if pos_type == "frac":
        pos = np.einsum("fai,fij->faj", pos, cell)
    elif pos_type not in ("cart", "ase"):
        raise FormatError(info_path, f"pos_type {pos_type!r} (expected 'cart' or 'frac')")
    pbc = info.get("pbc", True)
    pbc = [bool(pbc)] * 3 if isinstance(pbc, bool) else [bool(x) for x in pbc]
    if len(pbc) != 3:
        raise FormatError(info_path, f"pbc {info.get('pbc')!r} (expected a bool or 3 bools)")
    if not (traj / MATRIX_FILES["S"]).is_file():
        raise FormatError(traj / MATRIX_FILES["S"], "missing overlap file")
    extra = {}
    if (traj / "nextham.json").is_file():
        extra = json.loads((traj / "nextham.json").read_text())
    records = []
    for fr in range(nframes):
        b = _basis(traj, z[fr], basis)
        spinful = _is_spinful(traj, z[fr], b)
        elements = {name: _read_blocks(traj / fname, fr, z[fr], b, spinful and name != "S", name)
                    for name, fname in MATRIX_FILES.items() if (traj / fname).is_file()}
        fermi = extra.get("fermi_energy_eV", [None] * nframes)
        ef = finite_fermi(fermi[fr] if isinstance(fermi, list) and fr < len(fermi) else None, traj / "nextham.json")
        meta = {"source": {"code": "deeptb", "path": str(traj), "frame": fr}}
        records.append(build_record(z[fr], cell[fr], pos[fr], pbc, b, elements, spinful, ef, meta))
    return records


def read_deeptb_all(path: str | os.PathLike, basis=None) -> list[tuple[str, StructureRecord]]:
    """Every frame of every trajectory under ``path``: ``("<trajectory>/<frame>", record)``."""
    return [(f"{t.name}/{k}", rec) for t in trajectories(path) for k, rec in enumerate(read_trajectory(t, basis))]


def read_deeptb(path: str | os.PathLike, frame: int | None = None, basis=None) -> StructureRecord:
    """One structure: the only frame of ``path`` (or frame ``frame`` of its only trajectory)."""
    trajs = trajectories(path)
    if len(trajs) > 1:
        raise FormatError(path, f"holds {len(trajs)} trajectories; read one folder or use read_deeptb_all")
    records = read_trajectory(trajs[0], basis)
    if frame is None:
        if len(records) > 1:
            raise FormatError(trajs[0], f"holds {len(records)} frames; pass frame= or use read_deeptb_all")
        return records[0]
    if not 0 <= frame < len(records):
        raise FormatError(trajs[0], f"no frame {frame} (0..{len(records) - 1})")
    return records[frame]


# ---------------------------------------------------------------------------------------- writing
def _sorted_shells(record: StructureRecord) -> StructureRecord:
    """The record with every element's shells sorted by l (stable), as DeePTB's basis strings imply."""
    if all(list(e.ls) == sorted(e.ls) for e in record.basis.elements):
        return record
    perms, new = {}, []
    for e in record.basis.elements:
        order = np.argsort(e.ls, kind="stable")
        off = e.shell_offsets
        old_of_new = np.concatenate([np.arange(off[s], off[s + 1]) for s in order])
        new_of_old = np.empty_like(old_of_new)
        new_of_old[old_of_new] = np.arange(len(old_of_new))
        perms[e.symbol] = new_of_old
        new.append(ElementBasis.from_ls(e.symbol, [e.ls[s] for s in order]))
    norb = record.atom_norb
    elements = {}
    for name in record.blocks:
        el = elements_of(record, name)
        ni, nj = norb[el.i], norb[el.j]
        f = record.spin_factor(name)
        sr, kr = (el.row // ni, el.row % ni) if f == 2 else (0, el.row)
        sc, kc = (el.col // nj, el.col % nj) if f == 2 else (0, el.col)
        rows, cols = np.empty_like(el.row), np.empty_like(el.col)
        for z in set(record.numbers.tolist()):
            p = perms[chemical_symbols[z]]
            mi, mj = record.numbers[el.i] == z, record.numbers[el.j] == z
            rows[mi] = (sr * ni + p[kr])[mi] if f == 2 else p[kr][mi]
            cols[mj] = (sc * nj + p[kc])[mj] if f == 2 else p[kc][mj]
        elements[name] = Elements(el.R, el.i, el.j, rows, cols, el.value)
    return build_record(record.numbers, record.cell, record.positions, record.pbc, Basis(tuple(new)), elements,
                        record.spinful, record.fermi_energy_eV, dict(record.metadata))


def _storage_dtype(values: np.ndarray) -> np.dtype:
    """float32/complex64 where that holds every value exactly (DeePTB's own files), else 64-bit."""
    small = np.complex64 if np.iscomplexobj(values) else np.float32
    return np.dtype(small) if np.array_equal(values.astype(small), values) else values.dtype


def write_deeptb(record: StructureRecord, path: str | os.PathLike) -> Path:
    """Write ``record`` as one DeePTB trajectory folder (one frame) with its own ``info.json``.

    Every non-zero block of the record is written (the record's full range, no distance cut-off, both (i, j, R)
    and (j, i, -R); on-site blocks always); values in
    float32 where that is exact (as DeePTB's data), else float64. Shells are reordered by l where the record's
    basis has another order. ``r_max`` in info.json is the longest stored bond (Å), rounded up to 0.01 Å.
    """
    path = Path(path)
    rec = _sorted_shells(record)
    path.mkdir(parents=True, exist_ok=True)
    r_max = float(np.ceil(rec.edge_lengths.max(initial=0.0) * 100 + 1) / 100)
    pbc = rec.pbc.tolist()
    info = {"nframes": 1, "natoms": rec.n_atoms, "pos_type": "cart", "pbc": pbc[0] if len(set(pbc)) == 1 else pbc,
            "r_max": r_max}
    (path / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    np.savetxt(path / "cell.dat", rec.cell)
    np.savetxt(path / "positions.dat", rec.positions)
    np.savetxt(path / "atomic_numbers.dat", rec.numbers, fmt="%d")
    np.savetxt(path / "pbc.dat", rec.pbc.astype(float))
    (path / "basis.dat").write_text(repr({e.symbol: e.spec() for e in rec.basis.elements}))
    (path / "nextham.json").write_text(json.dumps({"fermi_energy_eV": [rec.fermi_energy_eV]}) + "\n")
    i, j = rec.edge_index.T
    names = [f"{a}_{b}_{R[0]}_{R[1]}_{R[2]}" for a, b, R in zip(i.tolist(), j.tolist(), rec.edge_R.tolist())]
    for name, fname in MATRIX_FILES.items():
        if name not in rec.blocks:
            continue
        dtype = _storage_dtype(rec.blocks[name])
        onsite = rec.onsite_mask
        with h5py.File(path / fname, "w") as h5:
            group = h5.create_group("0")
            for e, (key, block) in enumerate(zip(names, rec.block_list(name))):
                if onsite[e] or np.any(block):  # DeePTB reads an absent block as zero
                    group.create_dataset(key, data=block.astype(dtype))
    return path
