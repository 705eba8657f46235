"""The new DeepH folder format (DeepH-pack >= 2 / DeepH-dock): read and write.

Files (eV, Å)::

    POSCAR            VASP 5 structure (symbols line required), atoms as listed
    info.json         {"atoms_quantity", "orbits_quantity", "orthogonal_basis", "spinful",
                       "fermi_energy_eV", "elements_orbital_map": {"Mo": [0, 0, 0, 1, 1, 2, 2], ...}}
    overlap.h5        atom_pairs (E, 5) int64 [Rx, Ry, Rz, i, j] (0-based atoms),
                      chunk_shapes (E, 2), chunk_boundaries (E + 1,), entries (flat, row-major blocks)
    hamiltonian.h5    the same for H; spinful: complex (2 n_i, 2 n_j) spin-major blocks
    hamiltonian_0.h5  nextham extension: H0, same layout (ignored by DeepH tools)

Orbitals are ordered m = -l..l with the sign of nextham's real-harmonic table, so the packed blocks
are nextham's own layout; only the edge order and POSCAR/info.json need translating. Folders declaring
``split_hkb`` / ``hamiltonian_storage: spinless_plus_hkb`` are refused (they need the hkb.h5 part).
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
from .assemble import Elements, build_record, finite_fermi, require_onsite
from .deeph_legacy import _open_h5, read_json
from .errors import FormatError

MATRIX_FILES = {"S": "overlap.h5", "H": "hamiltonian.h5", "H0": "hamiltonian_0.h5"}
H5_KEYS = ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries")


def looks_like_deeph(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "POSCAR").is_file() and (path / "info.json").is_file()


def read_poscar(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell rows Å, Cartesian positions Å, atomic numbers) of a VASP 5 POSCAR, read with ``ase.io``."""
    import ase.io

    if not path.is_file():
        raise FormatError(path, "missing file")
    n_lines = len(path.read_text(errors="replace").splitlines())
    if n_lines < 9:
        raise FormatError(path, f"file ends early ({n_lines} lines): a VASP 5 POSCAR holds a comment, the scale, "
                                "3 lattice vectors, element symbols, counts, the coordinate mode and the positions")
    try:
        atoms = ase.io.read(path, format="vasp")
    except Exception as exc:  # ASE raises many types for malformed files
        raise FormatError(path, f"not a readable VASP POSCAR ({type(exc).__name__}: {exc})") from None
    cell, positions = atoms.cell.array, atoms.positions
    if not (np.all(np.isfinite(cell)) and np.all(np.isfinite(positions))):
        raise FormatError(path, "non-finite lattice vectors or positions")
    if abs(np.linalg.det(cell)) < 1e-10:
        raise FormatError(path, "lattice vectors are linearly dependent", line=3)
    return cell, positions, atoms.numbers.astype(np.int64)



def read_deeph(path: str | os.PathLike) -> StructureRecord:
    """Read a new-format DeepH folder into a record."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError(path, "not a folder")
    cell, positions, numbers = read_poscar(path / "POSCAR")
    if not (path / "info.json").is_file():
        raise FormatError(path / "info.json", "missing file")
    info = read_json(path / "info.json")
    if info.get("split_hkb") or info.get("hamiltonian_storage") not in (None, "full"):
        raise FormatError(path / "info.json", "split Hamiltonian storage (spinless H + hkb.h5) is not supported; "
                                              "reconstruct the full Hamiltonian first")
    omap = info.get("elements_orbital_map")
    if not isinstance(omap, dict):
        raise FormatError(path / "info.json", "missing 'elements_orbital_map' ({element: [l, ...]})")
    try:
        basis = Basis(tuple(ElementBasis.from_ls(el, [int(l) for l in ls]) for el, ls in omap.items()))
    except (BasisError, TypeError, ValueError) as exc:
        raise FormatError(path / "info.json", f"bad elements_orbital_map: {exc}") from None
    for z in set(numbers.tolist()):
        if chemical_symbols[z] not in basis:
            raise FormatError(path / "info.json", f"elements_orbital_map lacks {chemical_symbols[z]} (in POSCAR)")
    if "atoms_quantity" in info and info["atoms_quantity"] != len(numbers):
        raise FormatError(path / "info.json", f"atoms_quantity {info['atoms_quantity']} but POSCAR has {len(numbers)} atoms")
    n_orb = int(basis.atom_offsets(numbers)[-1])
    if "orbits_quantity" in info and info["orbits_quantity"] != n_orb:
        raise FormatError(path / "info.json", f"orbits_quantity {info['orbits_quantity']} but the orbital map and "
                                              f"POSCAR give {n_orb}")
    spinful = bool(info.get("spinful", False))
    if not (path / MATRIX_FILES["S"]).is_file():
        raise FormatError(path / MATRIX_FILES["S"], "missing overlap file")
    elements = {name: _read_h5(path / f, numbers, basis, spinful and name != "S")
                for name, f in MATRIX_FILES.items() if (path / f).is_file()}
    for name, el in elements.items():
        require_onsite(el, len(numbers), path / MATRIX_FILES[name], name)
    ef = finite_fermi(info.get("fermi_energy_eV"), path / "info.json")
    meta = {"source": {"code": "deeph", "path": str(path), "orthogonal_basis": bool(info.get("orthogonal_basis", False))}}
    return build_record(numbers, cell, positions, [True, True, True], basis, elements, spinful,
                        ef, meta)


def _read_h5(path: Path, numbers, basis: Basis, spinful: bool) -> Elements:
    with _open_h5(path) as h5:
        missing = [k for k in H5_KEYS if k not in h5]
        if missing:
            raise FormatError(path, f"missing datasets {missing} (expected {list(H5_KEYS)})")
        pairs, shapes, bounds, entries = (h5[k][()] for k in H5_KEYS)
    if pairs.ndim != 2 or pairs.shape[1] != 5 or shapes.shape != (len(pairs), 2) or bounds.shape != (len(pairs) + 1,):
        raise FormatError(path, f"inconsistent shapes: atom_pairs {pairs.shape}, chunk_shapes {shapes.shape}, "
                                f"chunk_boundaries {bounds.shape}")
    if entries.ndim != 1:
        raise FormatError(path, f"entries must be one-dimensional, found shape {entries.shape}")
    pairs, shapes, bounds = (np.asarray(a, dtype=np.int64) for a in (pairs, shapes, bounds))
    n_atoms = len(numbers)
    i, j = pairs[:, 3], pairs[:, 4]
    if np.any(i < 0) or np.any(i >= n_atoms) or np.any(j < 0) or np.any(j >= n_atoms):
        raise FormatError(path, f"atom_pairs refer to atoms outside 0..{n_atoms - 1} (0-based)")
    f = 2 if spinful else 1
    norb = basis.norb_per_atom(numbers)
    expect = np.stack([norb[i], norb[j]], 1) * f
    bad = np.flatnonzero(np.any(shapes != expect, axis=1))
    if len(bad):
        e = bad[0]
        raise FormatError(path, f"block {pairs[e].tolist()} has shape {shapes[e].tolist()}, the orbital map gives "
                                f"{expect[e].tolist()}{' (spinful)' if spinful else ''}")
    sizes = shapes[:, 0] * shapes[:, 1]
    if bounds[0] != 0 or np.any(np.diff(bounds) != sizes) or bounds[-1] != len(entries):
        raise FormatError(path, f"chunk_boundaries do not match chunk_shapes and the {len(entries)} entries")
    if not np.all(np.isfinite(entries)):
        raise FormatError(path, "non-finite entries")
    if not spinful and np.iscomplexobj(entries):
        if np.max(np.abs(entries.imag)) > 1e-10:
            raise FormatError(path, "complex entries in a spinless record (info.json spinful is false)")
        entries = entries.real
    e = np.repeat(np.arange(len(pairs)), sizes)
    loc = np.arange(bounds[-1]) - bounds[e]
    dtype = np.complex128 if spinful else np.float64
    return Elements(pairs[e, :3], i[e], j[e], loc // shapes[e, 1], loc % shapes[e, 1], entries.astype(dtype))


def write_poscar(path: Path, cell: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> None:
    """VASP 5 POSCAR (``ase.io``) with Cartesian Å positions in the record's atom order."""
    import ase.io
    from ase import Atoms

    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    ase.io.write(path, atoms, format="vasp", direct=False, sort=False)


def write_deeph(record: StructureRecord, path: str | os.PathLike) -> Path:
    """Write ``record`` as a new-format DeepH folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_poscar(path / "POSCAR", record.cell, record.positions, record.numbers)
    present = sorted({chemical_symbols[z] for z in record.numbers}, key=lambda s: list(record.symbols).index(s))
    info = {"atoms_quantity": record.n_atoms, "orbits_quantity": record.n_orbitals, "orthogonal_basis": False,
            "spinful": record.spinful, "fermi_energy_eV": record.fermi_energy_eV,
            "elements_orbital_map": {s: list(record.basis[s].ls) for s in present}}
    (path / "info.json").write_text(json.dumps(info))
    pairs = np.concatenate([record.edge_R, record.edge_index], axis=1).astype(np.int64)
    for name, fname in MATRIX_FILES.items():
        if name not in record.blocks:
            continue
        with h5py.File(path / fname, "w") as h5:
            h5.create_dataset("atom_pairs", data=pairs)
            h5.create_dataset("chunk_shapes", data=record.block_shapes(name).astype(np.int64))
            h5.create_dataset("chunk_boundaries", data=record.block_offsets(name).astype(np.int64))
            h5.create_dataset("entries", data=record.blocks[name])
    return path
