"""ABACUS text inputs and logs: STRU, INPUT, orbital-file headers and running_*.log geometry.

Units in: lattice constant in Bohr (STRU ``LATTICE_CONSTANT``), lattice vectors in units of it;
positions per ``ATOMIC_POSITIONS`` mode (``Direct``; ``Cartesian`` in units of the lattice constant;
``Cartesian_au`` Bohr; ``Cartesian_angstrom`` Å; ``Cartesian_angstrom_center_{xy,xz,yz,xyz}`` Å
shifted to the cell centre along those axes). Out: Å, cell rows (docs/conventions.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from ..basis.orbitals import L_LETTERS, ElementBasis
from .errors import FormatError

BOHR_ANGSTROM = 0.529177210903  # CODATA 2018 (docs/conventions.md)

STRU_SECTIONS = ("ATOMIC_SPECIES", "NUMERICAL_ORBITAL", "LATTICE_CONSTANT", "LATTICE_VECTORS",
                 "LATTICE_PARAMETERS", "ATOMIC_POSITIONS", "NUMERICAL_DESCRIPTOR", "ABFS_ORBITAL",
                 "ABFS_JLES_ORBITAL", "PAW_FILES")
POSITION_MODES = ("Direct", "Cartesian", "Cartesian_au", "Cartesian_angstrom", "Cartesian_angstrom_center_xy",
                  "Cartesian_angstrom_center_xz", "Cartesian_angstrom_center_yz", "Cartesian_angstrom_center_xyz")
_CENTER = {"xy": (0.5, 0.5, 0.0), "xz": (0.5, 0.0, 0.5), "yz": (0.0, 0.5, 0.5), "xyz": (0.5, 0.5, 0.5)}


@dataclass
class Geometry:
    """A crystal read from an ABACUS file: Å, cell rows; species labels and orbital files per atom type."""

    cell: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    labels: list[str]          # per atom type, in file order
    counts: list[int]          # atoms per type
    orbital_files: list[str]   # per atom type ([] where not given)
    source: str


def element_of_label(label: str, path=None, line=None) -> str:
    """Chemical element of an ABACUS species label (``Fe``, ``Fe1``, ``Fe_up`` -> ``Fe``)."""
    m = re.match(r"[A-Za-z]+", label)
    letters = m.group(0) if m else ""
    for n in (2, 1):
        cand = letters[:n].capitalize()
        if len(letters) >= n and cand in atomic_numbers and cand != "X":
            return cand
    raise FormatError(path, f"species label {label!r} does not start with a chemical element", line=line)


def _strip_comment(s: str) -> str:
    for mark in ("#", "//"):
        k = s.find(mark)
        if k >= 0:
            s = s[:k]
    return s.strip()


# ---------------------------------------------------------------------------------------- INPUT
def read_input(path: str | os.PathLike) -> dict[str, str]:
    """``key value`` pairs of an ABACUS INPUT file (keys lower-case; comments dropped)."""
    path = Path(path)
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read: {exc}") from None
    for raw in lines:
        s = _strip_comment(raw)
        if not s or s.upper() == "INPUT_PARAMETERS":
            continue
        parts = s.split(None, 1)
        out[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    return out


# ---------------------------------------------------------------------------------------- lattice
def lattice_from_latname(latname: str, params: list[float], path=None, line=None) -> np.ndarray:
    """Lattice vectors (rows, units of the lattice constant) of an ABACUS ``latname`` with the numbers
    of ``LATTICE_PARAMETERS`` (as ABACUS's ``read_lattice_constant`` builds them)."""
    p = list(params)

    def need(n: int) -> list[float]:
        if len(p) < n:
            raise FormatError(path, f"latname {latname!r} needs {n} LATTICE_PARAMETERS, found {len(p)}", line=line)
        return p[:n]

    s3 = np.sqrt(3.0)
    if latname == "sc":
        return np.eye(3)
    if latname == "fcc":
        return np.array([[-0.5, 0, 0.5], [0, 0.5, 0.5], [-0.5, 0.5, 0]])
    if latname == "bcc":
        return np.array([[0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5]])
    if latname == "hexagonal":
        (c,) = need(1)
        return np.array([[1, 0, 0], [-0.5, s3 / 2, 0], [0, 0, c]])
    if latname == "trigonal":
        (cosab,) = need(1)
        t1, t2 = np.sqrt(1 + 2 * cosab), np.sqrt(1 - cosab)
        e11, e12, e13, e22 = t2 / np.sqrt(2), -t2 / np.sqrt(6), t1 / s3, np.sqrt(2) * t2 / s3
        return np.array([[e11, e12, e13], [0, e22, e13], [-e11, e12, e13]])
    if latname == "st":
        (c,) = need(1)
        return np.array([[1, 0, 0], [0, 1, 0], [0, 0, c]])
    if latname == "bct":
        c = need(1)[0] / 2
        return np.array([[0.5, -0.5, c], [0.5, 0.5, c], [-0.5, -0.5, c]])
    if latname == "so":
        b, c = need(2)
        return np.array([[1, 0, 0], [0, b, 0], [0, 0, c]])
    if latname == "baco":
        b, c = need(2)
        return np.array([[0.5, b / 2, 0], [-0.5, b / 2, 0], [0, 0, c]])
    if latname in ("fco", "bco"):
        b, c = (x / 2 for x in need(2))
        if latname == "fco":
            return np.array([[0.5, 0, c], [0.5, b, 0], [0, b, c]])
        return np.array([[0.5, b, c], [-0.5, b, c], [-0.5, -b, c]])
    if latname in ("sm", "bacm"):
        b, c, cosab = need(3)
        e21, e22 = b * cosab, b * np.sqrt(1 - cosab**2)
        if latname == "sm":
            return np.array([[1, 0, 0], [e21, e22, 0], [0, 0, c]])
        return np.array([[0.5, 0, -c / 2], [e21, e22, 0], [0.5, 0, c / 2]])
    if latname == "triclinic":
        b, c, cosab, cosac, cosbc = need(5)
        sinab = np.sqrt(1 - cosab**2)
        term = np.sqrt(1 + 2 * cosab * cosac * cosbc - cosab**2 - cosac**2 - cosbc**2) / sinab
        return np.array([[1, 0, 0], [b * cosab, b * sinab, 0],
                         [c * cosac, c * (cosbc - cosac * cosab) / sinab, c * term]])
    raise FormatError(path, f"unknown latname {latname!r} (ABACUS knows sc, fcc, bcc, hexagonal, trigonal, st, bct, "
                            "so, baco, fco, bco, sm, bacm, triclinic)", line=line)


# ---------------------------------------------------------------------------------------- STRU
def read_stru(path: str | os.PathLike, latname: str | None = None) -> Geometry:
    """Read an ABACUS STRU file. ``latname`` comes from INPUT (None or ``user_defined_lattice``: the
    file must give ``LATTICE_VECTORS``)."""
    path = Path(path)
    try:
        raw_lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read: {exc}") from None
    # (line number, text) of every non-empty line with comments removed
    lines = [(k, _strip_comment(s)) for k, s in enumerate(raw_lines, 1)]
    lines = [(k, s) for k, s in lines if s]
    sections: dict[str, list[tuple[int, str]]] = {}
    current = None
    for k, s in lines:
        key = s.split()[0]
        if key in STRU_SECTIONS:
            if key in sections:
                raise FormatError(path, f"section {key} appears twice", line=k)
            current = key
            sections[key] = []
            rest = s[len(key):].strip()
            if rest:
                sections[key].append((k, rest))
        elif current is None:
            raise FormatError(path, f"unknown STRU content {s[:40]!r} before any section keyword", line=k)
        else:
            sections[current].append((k, s))
    for req in ("ATOMIC_SPECIES", "LATTICE_CONSTANT", "ATOMIC_POSITIONS"):
        if req not in sections or not sections[req]:
            raise FormatError(path, f"missing or empty section {req}")
    species = [(k, s.split()[0]) for k, s in sections["ATOMIC_SPECIES"]]
    labels = [lab for _, lab in species]
    orbitals = [s.split()[0] for _, s in sections.get("NUMERICAL_ORBITAL", [])]
    k0, s0 = sections["LATTICE_CONSTANT"][0]
    lat0_bohr = _float(s0.split()[0], path, k0, "lattice constant")
    if lat0_bohr <= 0:
        raise FormatError(path, f"lattice constant {lat0_bohr} <= 0", line=k0)
    if latname in (None, "", "user_defined_lattice", "none"):
        if "LATTICE_PARAMETERS" in sections:
            raise FormatError(path, "LATTICE_PARAMETERS needs 'latname' in INPUT", line=sections["LATTICE_PARAMETERS"][0][0])
        rows = sections.get("LATTICE_VECTORS", [])
        if len(rows) < 3:
            raise FormatError(path, "LATTICE_VECTORS needs three lines (or set latname in INPUT)",
                              line=rows[-1][0] if rows else None)
        latvec = np.array([[_float(t, path, k, "lattice vector") for t in _first(s, 3, path, k)] for k, s in rows[:3]])
    else:
        if "LATTICE_VECTORS" in sections:
            raise FormatError(path, f"LATTICE_VECTORS together with latname {latname!r} (ABACUS refuses this)",
                              line=sections["LATTICE_VECTORS"][0][0])
        params = [_float(t, path, k, "lattice parameter") for k, s in sections.get("LATTICE_PARAMETERS", [])
                  for t in s.split()]
        latvec = lattice_from_latname(latname, params, path, sections.get("LATTICE_PARAMETERS", [(None, "")])[0][0])
    a0 = lat0_bohr * BOHR_ANGSTROM
    cell = latvec * a0
    if abs(np.linalg.det(cell)) < 1e-10:
        raise FormatError(path, "lattice vectors are linearly dependent")

    pos_lines = sections["ATOMIC_POSITIONS"]
    kmode, mode = pos_lines[0]
    mode = mode.split()[0]
    if mode not in POSITION_MODES:
        raise FormatError(path, f"unknown ATOMIC_POSITIONS mode {mode!r} (expected one of {', '.join(POSITION_MODES)})",
                          line=kmode)
    it = iter(pos_lines[1:])
    coords, numbers, type_labels, counts = [], [], [], []
    while True:
        try:
            k, lab = next(it)
        except StopIteration:
            break
        lab = lab.split()[0]
        if lab not in labels:
            raise FormatError(path, f"atom type {lab!r} is not listed in ATOMIC_SPECIES {labels}", line=k)
        try:
            k, _mag = next(it)
            k, cnt = next(it)
        except StopIteration:
            raise FormatError(path, f"atom type {lab}: file ends before the atom count", line=k) from None
        n = _int(cnt.split()[0], path, k, "number of atoms")
        z = atomic_numbers[element_of_label(lab, path, k)]
        for _ in range(n):
            try:
                k, s = next(it)
            except StopIteration:
                raise FormatError(path, f"atom type {lab}: expected {n} atom lines, file ends early", line=k) from None
            coords.append([_float(t, path, k, "coordinate") for t in _first(s, 3, path, k)])
            numbers.append(z)
        type_labels.append(lab)
        counts.append(n)
    if not coords:
        raise FormatError(path, "ATOMIC_POSITIONS holds no atoms", line=kmode)
    x = np.array(coords)
    if mode == "Direct":
        pos = x @ cell
    elif mode == "Cartesian":
        pos = x * a0
    elif mode == "Cartesian_au":
        pos = x * BOHR_ANGSTROM
    else:
        pos = x.copy()
        if mode.startswith("Cartesian_angstrom_center_"):
            pos += np.array(_CENTER[mode.rsplit("_", 1)[1]]) @ cell
    orb_by_label = dict(zip(labels, orbitals)) if orbitals else {}
    return Geometry(cell=cell, positions=pos, numbers=np.array(numbers, dtype=np.int64), labels=type_labels,
                    counts=counts, orbital_files=[orb_by_label.get(lab, "") for lab in type_labels] if orbitals else [],
                    source=str(path))


def _first(s: str, n: int, path, line) -> list[str]:
    toks = s.split()
    if len(toks) < n:
        raise FormatError(path, f"expected {n} numbers, found {s[:40]!r}", line=line)
    return toks[:n]


def _float(tok: str, path, line, what) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise FormatError(path, f"{what}: {tok[:30]!r} is not a number", line=line) from None
    if not np.isfinite(v):
        raise FormatError(path, f"{what}: {tok[:30]!r} is not finite", line=line)
    return v


def _int(tok: str, path, line, what) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise FormatError(path, f"{what}: {tok[:30]!r} is not an integer", line=line) from None
    if v < 0:
        raise FormatError(path, f"{what} = {v} < 0", line=line)
    return v


def write_stru(path: str | os.PathLike, cell: np.ndarray, positions: np.ndarray, labels: list[str],
               counts: list[int], orbital_files: list[str], pseudo_files: list[str] | None = None) -> Path:
    """Write a STRU in Å-exact form: ``LATTICE_CONSTANT`` = 1 Å in Bohr, vectors and ``Cartesian_angstrom``
    positions in Å (atoms grouped by type in the order of ``labels``)."""
    path = Path(path)
    pseudo_files = pseudo_files or [f"{lab}.upf" for lab in labels]
    out = ["ATOMIC_SPECIES"]
    out += [f"{lab} 1.0 {pp}" for lab, pp in zip(labels, pseudo_files)]
    out += ["", "NUMERICAL_ORBITAL"] + list(orbital_files)
    out += ["", "LATTICE_CONSTANT", repr(1.0 / BOHR_ANGSTROM), "", "LATTICE_VECTORS"]
    out += [" ".join(repr(float(x)) for x in row) for row in cell]
    out += ["", "ATOMIC_POSITIONS", "Cartesian_angstrom", ""]
    start = 0
    for lab, n in zip(labels, counts):
        out += [lab, "0.0", str(n)]
        out += [" ".join(repr(float(x)) for x in p) + " 1 1 1" for p in positions[start:start + n]]
        out.append("")
        start += n
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
    return path


# ---------------------------------------------------------------------------------------- orbitals
def read_orbital_header(path: str | os.PathLike) -> ElementBasis:
    """Shells of an ABACUS ``.orb`` file from its header (``Element``, ``Number of Sorbital--> n`` ...)."""
    path = Path(path)
    try:
        with open(path) as fh:
            head = [next(fh, "") for _ in range(40)]
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read: {exc}") from None
    element, counts = None, {}
    for k, s in enumerate(head, 1):
        parts = s.split()
        if len(parts) >= 2 and parts[0] == "Element":
            element = parts[1]
        m = re.match(r"\s*Number of ([A-Z])orbital-->\s*(\d+)", s)
        if m:
            letter = m.group(1).lower()
            if letter not in L_LETTERS:
                raise FormatError(path, f"unknown orbital letter {m.group(1)!r}", line=k)
            counts[L_LETTERS.index(letter)] = int(m.group(2))
        if s.startswith("SUMMARY") or "Mesh" in s:
            break
    if element is None or not counts:
        raise FormatError(path, "not an ABACUS orbital file: no 'Element' / 'Number of Xorbital-->' header")
    element = element_of_label(element, path)
    ls = [l for l in sorted(counts) for _ in range(counts[l])]
    if not ls:
        raise FormatError(path, "orbital file declares no shells")
    return ElementBasis.from_ls(element, ls)


def basis_from_orbital_name(name: str) -> str | None:
    """Zeta-count spec from a conventional orbital file name (``Si_gga_8au_60Ry_2s2p1d.orb`` -> ``2s2p1d``)."""
    m = re.search(r"_((?:\d+[spdfghi])+)\.orb$", os.path.basename(name))
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------- log
@dataclass
class LogInfo:
    geometry: Geometry | None
    basis: dict[str, list[int]]       # element -> shell ls (from "L=l, number of zeta = n")
    nspin: int | None
    fermi_energy_eV: float | None


def read_running_log(path: str | os.PathLike) -> LogInfo:
    """Geometry, basis, nspin and E_F from an ABACUS ``running_*.log``."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise FormatError(path, f"cannot read: {exc}") from None
    basis: dict[str, list[int]] = {}
    a0 = None
    labels, counts, current = [], [], None
    nspin = None
    ef = None
    geometry = None
    k = 0
    frac = cart = None
    latvec = None
    while k < len(lines):
        s = lines[k].strip()
        m = re.match(r"lattice constant \(Angstrom\)\s*=\s*(\S+)", s)
        if m and a0 is None:
            a0 = _float(m.group(1), path, k + 1, "lattice constant")
        m = re.match(r"atom label\s*=\s*(\S+)", s)
        if m:
            current = m.group(1)
            labels.append(current)
            basis.setdefault(element_of_label(current, path, k + 1), [])
        m = re.match(r"L=(\d+), number of zeta\s*=\s*(\d+)", s)
        if m and current is not None:
            ls = basis[element_of_label(current, path, k + 1)]
            if len(counts) == len(labels) - 1:  # first time we see this type's shells
                ls.extend([int(m.group(1))] * int(m.group(2)))
        m = re.match(r"number of atom for this type\s*=\s*(\d+)", s)
        if m:
            counts.append(int(m.group(1)))
        if (s.startswith("DIRECT COORDINATES") or s.startswith("CARTESIAN COORDINATES")) and frac is None and cart is None:
            n = sum(counts)
            rows = []
            j = k + 1
            while j < len(lines) and len(rows) < n:
                t = lines[j].split()
                if t and re.match(r"tau[cd]_", t[0]):
                    rows.append([_float(x, path, j + 1, "coordinate") for x in t[1:4]])
                j += 1
            if len(rows) != n:
                raise FormatError(path, f"expected {n} atom coordinates after {s[:30]!r}", line=k + 1)
            if s.startswith("DIRECT"):
                frac = np.array(rows)
            else:
                cart = np.array(rows)
            k = j
            continue
        if s.startswith("Lattice vectors") and latvec is None:
            try:
                latvec = np.array([[float(x) for x in lines[k + i].split()[:3]] for i in (1, 2, 3)])
            except (ValueError, IndexError):
                raise FormatError(path, "malformed lattice vectors", line=k + 1) from None
        m = re.match(r"nspin\s*=\s*(\d+)", s)
        if m and nspin is None:
            nspin = int(m.group(1))
        m = re.search(r"EFERMI\s*=\s*(\S+)\s*eV", s)
        if m:
            ef = _float(m.group(1), path, k + 1, "EFERMI")
        k += 1
    if a0 is not None and latvec is not None and (frac is not None or cart is not None) and labels:
        cell = latvec.reshape(3, 3) * a0
        pos = frac @ cell if frac is not None else cart * a0
        numbers = np.concatenate([[atomic_numbers[element_of_label(lab)]] * n for lab, n in zip(labels, counts)])
        geometry = Geometry(cell=cell, positions=pos, numbers=numbers.astype(np.int64), labels=labels, counts=counts,
                            orbital_files=[], source=str(path))
    return LogInfo(geometry=geometry, basis={e: ls for e, ls in basis.items() if ls}, nspin=nspin, fermi_energy_eV=ef)
