"""Structure sets: seeded, reproducible crystals over the periodic table, and ASE-readable files.

``prototype_set(n, seed)`` draws elemental and binary prototypes (fcc, bcc, hcp, diamond, rock salt,
zinc blende, wurtzite, CsCl, cubic perovskite ABX3, layered 2H-MX2) over the 67 elements that GPAW's
data cover (H-Ba and Hf-Bi without Tc, the element range of Materials-HAM-SOC), with random strain,
random displacements and small supercells. Lattice constants come from covalent radii (nearest
neighbour = sum of radii), so every structure is physically plausible but not relaxed: the data
teach the map H0 -> H, not equilibrium crystals. Same ``(n, seed, elements, options)`` -> same
structures, bit for bit.

``read_structures(paths)`` reads CIF, POSCAR, extxyz (anything ``ase.io.read`` reads, all frames),
turning unreadable or empty files into :class:`StructureInput` entries that carry the error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from ..structure.identity import structure_key

#: The 67 elements: H-Ba (Z 1-56) and Hf-Bi (Z 72-83), without Tc (no GPAW setup).
GPAW_ELEMENTS: tuple[str, ...] = tuple(
    chemical_symbols[z] for z in list(range(1, 57)) + list(range(72, 84)) if chemical_symbols[z] != "Tc")

ELEMENTAL_PROTOTYPES = ("fcc", "bcc", "hcp", "diamond")
BINARY_PROTOTYPES = ("rocksalt", "zincblende", "wurtzite", "cesiumchloride", "layered")
TERNARY_PROTOTYPES = ("perovskite",)
PROTOTYPES = ELEMENTAL_PROTOTYPES + BINARY_PROTOTYPES + TERNARY_PROTOTYPES


@dataclass
class StructureInput:
    """One structure to compute: a stable ``key`` (content hash), a readable ``name`` and either
    ``atoms`` or the ``error`` that made the input unusable."""

    key: str
    name: str
    atoms: Atoms | None = None
    error: str | None = None
    source: str = ""


def _radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def elemental(symbol: str, prototype: str, scale: float = 1.0) -> Atoms:
    """Primitive cell of an elemental prototype with nearest-neighbour distance ``2 r_cov * scale``
    (at least 1.0 Å, H2-like species are packed as crystals too)."""
    d = max(2 * _radius(symbol) * scale, 1.0)
    if prototype == "fcc":
        return bulk(symbol, "fcc", a=d * np.sqrt(2))
    if prototype == "bcc":
        return bulk(symbol, "bcc", a=d * 2 / np.sqrt(3))
    if prototype == "hcp":
        return bulk(symbol, "hcp", a=d, c=d * np.sqrt(8 / 3))
    if prototype == "diamond":
        return bulk(symbol, "diamond", a=d * 4 / np.sqrt(3))
    raise ValueError(f"unknown elemental prototype {prototype!r} (known: {ELEMENTAL_PROTOTYPES})")


def binary(a: str, b: str, prototype: str, scale: float = 1.0) -> Atoms:
    """Binary prototype AB (AB2 for ``layered``) with A-B distance ``(r_A + r_B) * scale``."""
    d = max((_radius(a) + _radius(b)) * scale, 1.0)
    if prototype == "rocksalt":
        return bulk(f"{a}{b}", "rocksalt", a=2 * d)
    if prototype == "zincblende":
        return bulk(f"{a}{b}", "zincblende", a=d * 4 / np.sqrt(3))
    if prototype == "wurtzite":
        a_lat = d * np.sqrt(8 / 3)
        return bulk(f"{a}{b}", "wurtzite", a=a_lat, c=a_lat * np.sqrt(8 / 3))
    if prototype == "cesiumchloride":
        return bulk(f"{a}{b}", "cesiumchloride", a=d * 2 / np.sqrt(3))
    if prototype == "layered":
        # 2H-MoS2-like AB2: trigonal prismatic A between two B layers, two layers per cell
        a_lat = d * 1.3
        z = d * 0.62  # B height above the A plane (gives A-B = d for the ideal prism)
        c = 2 * (2 * z + max(2.0 * _radius(b) + 1.2, 2.8))
        pos = [[0, 0, c / 4], [1 / 3, 2 / 3, c / 4 + z / 1.0], [1 / 3, 2 / 3, c / 4 - z],
               [0, 0, 3 * c / 4], [2 / 3, 1 / 3, 3 * c / 4 + z], [2 / 3, 1 / 3, 3 * c / 4 - z]]
        cell = np.array([[a_lat, 0, 0], [-a_lat / 2, a_lat * np.sqrt(3) / 2, 0], [0, 0, c]])
        frac = np.array(pos, float)
        frac[:, 2] /= c
        return Atoms(f"{a}{b}2{a}{b}2", scaled_positions=frac, cell=cell, pbc=True)
    raise ValueError(f"unknown binary prototype {prototype!r} (known: {BINARY_PROTOTYPES})")


def perovskite(a: str, b: str, x: str, scale: float = 1.0) -> Atoms:
    """Cubic perovskite ABX3 with B-X distance ``(r_B + r_X) * scale``."""
    d = max((_radius(b) + _radius(x)) * scale, 1.0)
    lat = 2 * d
    return Atoms(f"{a}{b}{x}3", cell=np.eye(3) * lat, pbc=True,
                 scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def perturb(atoms: Atoms, rng: np.random.Generator, strain: float = 0.03, displacement: float = 0.05) -> Atoms:
    """Random symmetric strain (each component ~ N(0, strain)) and Gaussian displacements (Å)."""
    out = atoms.copy()
    if strain > 0:
        e = rng.normal(0.0, strain, (3, 3))
        e = 0.5 * (e + e.T)
        out.set_cell(out.cell.array @ (np.eye(3) + e), scale_atoms=True)
    if displacement > 0:
        out.positions = out.positions + rng.normal(0.0, displacement, out.positions.shape)
    out.wrap()
    return out


@dataclass
class SetOptions:
    """Options of :func:`prototype_set` (defaults give 1-8 atom cells)."""

    elements: Sequence[str] = GPAW_ELEMENTS
    prototypes: Sequence[str] = PROTOTYPES
    strain: float = 0.03
    displacement: float = 0.05
    scale_range: tuple[float, float] = (0.95, 1.10)
    supercell_probability: float = 0.2
    max_atoms: int = 8


def prototype_set(n: int, seed: int = 0, options: SetOptions | None = None) -> list[StructureInput]:
    """``n`` random structures, reproducible from ``seed``."""
    opt = options or SetOptions()
    rng = np.random.default_rng(seed)
    elements = list(opt.elements)
    out: list[StructureInput] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 100:
            raise RuntimeError("cannot build the requested structures within max_atoms; relax the options")
        proto = str(rng.choice(list(opt.prototypes)))
        scale = float(rng.uniform(*opt.scale_range))
        picks = [str(s) for s in rng.choice(elements, size=3, replace=len(elements) < 3)]
        if proto in ELEMENTAL_PROTOTYPES:
            atoms, label = elemental(picks[0], proto, scale), f"{picks[0]}-{proto}"
        elif proto in BINARY_PROTOTYPES:
            atoms, label = binary(picks[0], picks[1], proto, scale), f"{picks[0]}{picks[1]}-{proto}"
        else:
            atoms, label = perovskite(*picks, scale=scale), f"{''.join(picks)}3-{proto}"
        if rng.random() < opt.supercell_probability:
            rep = [1, 1, 1]
            rep[int(rng.integers(3))] = 2
            if len(atoms) * 2 <= opt.max_atoms:
                atoms = atoms.repeat(rep)
                label += "-x" + "".join(map(str, rep))
        if len(atoms) > opt.max_atoms:
            continue
        atoms = perturb(atoms, rng, opt.strain, opt.displacement)
        name = f"set{seed}-{len(out):05d}-{label}"
        atoms.info["name"] = name
        out.append(StructureInput(structure_key(atoms), name, atoms, source=f"prototype_set(seed={seed})"))
    return out


def coverage_set(elements: Sequence[str] = GPAW_ELEMENTS) -> list[StructureInput]:
    """One small unperturbed crystal per element, for engine coverage runs: ASE's reference
    structure (``ase.build.bulk(symbol)``, 1-2 atoms, experimental lattice constant) where it has
    one, else fcc with a nearest-neighbour distance of max(2.2 r_cov, 2.0 Å) (H, N, O, halogens,
    noble gases, ...)."""
    out = []
    for s in elements:
        try:
            atoms = bulk(s)
            proto = atoms.info.get("crystalstructure", "ref") or "ref"
            if len(atoms) > 2:
                raise ValueError
        except Exception:  # noqa: BLE001 - no crystalline reference state
            atoms = elemental(s, "fcc", scale=max(1.1, 1.0 / _radius(s)))
            proto = "fcc"
        name = f"coverage-{s}-{proto}"
        atoms.info["name"] = name
        out.append(StructureInput(structure_key(atoms), name, atoms, source="coverage_set"))
    return out


def read_structures(paths: Iterable[str | Path]) -> list[StructureInput]:
    """Read every frame of every file (directories: all files inside, sorted). A file that is
    missing, empty or unreadable becomes one entry with ``error`` set (key ``file:<path>``)."""
    from ase.io import read

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")))
        else:
            files.append(p)
    out: list[StructureInput] = []
    for f in files:
        bad_key = "file-" + hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:16]
        if not f.exists():
            out.append(StructureInput(bad_key, str(f), error=f"{f}: no such file", source=str(f)))
            continue
        if f.stat().st_size == 0:
            out.append(StructureInput(bad_key, str(f), error=f"{f}: empty file", source=str(f)))
            continue
        try:
            frames = read(str(f), index=":")
        except Exception as exc:
            out.append(StructureInput(bad_key, str(f), error=f"{f}: cannot read structure "
                                      f"({type(exc).__name__}: {exc})", source=str(f)))
            continue
        if not frames:
            out.append(StructureInput(bad_key, str(f), error=f"{f}: no structures in file", source=str(f)))
            continue
        for k, atoms in enumerate(frames):
            if len(atoms) == 0:
                out.append(StructureInput(f"{bad_key}-{k}", f"{f}@{k}", error=f"{f} frame {k}: no atoms",
                                          source=str(f)))
                continue
            name = f"{f.name}@{k}" if len(frames) > 1 else f.name
            atoms.info["name"] = name
            out.append(StructureInput(structure_key(atoms), name, atoms, source=str(f)))
    return out


def parse_set_spec(spec: str) -> list[StructureInput]:
    """``set:prototypes:N[:SEED]`` or ``set:coverage[:El,El,...]`` -> structures."""
    parts = spec.split(":")
    if parts[0] != "set" or len(parts) < 2:
        raise ValueError(f"bad structure-set spec {spec!r}; use set:prototypes:N[:SEED] or set:coverage[:Si,Ga]")
    if parts[1] == "prototypes":
        if len(parts) < 3:
            raise ValueError(f"{spec!r}: give the number of structures, e.g. set:prototypes:100:0")
        return prototype_set(int(parts[2]), int(parts[3]) if len(parts) > 3 else 0)
    if parts[1] == "coverage":
        els = parts[2].split(",") if len(parts) > 2 and parts[2] else GPAW_ELEMENTS
        return coverage_set(els)
    raise ValueError(f"unknown structure set {parts[1]!r} in {spec!r} (known: prototypes, coverage)")


def gather_inputs(items: Sequence[str]) -> list[StructureInput]:
    """Structures from a mix of set specs (``set:...``) and file/directory paths."""
    out: list[StructureInput] = []
    paths = []
    for it in items:
        if it.startswith("set:"):
            out.extend(parse_set_spec(it))
        else:
            paths.append(it)
    out.extend(read_structures(paths))
    return out
