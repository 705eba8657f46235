"""ABACUS LCAO outputs -> :class:`StructureRecord` (and back, legacy CSR).

A calculation folder holds ``INPUT``, ``STRU`` (optional where a log or a new-format CSR header gives the
geometry) and the matrices, either in it or in ``OUT.<suffix>/``:

==========  =====================================================  ===========================
matrix      legacy (``out_mat_hs2``, ABACUS <= 3.8)                 HContainer (ABACUS >= 3.9)
==========  =====================================================  ===========================
H (spin k)  ``data-HR-sparse_SPIN{k-1}.csr`` (or ``.bin``)          ``hrs{k}_nao.csr``
S           ``data-SR-sparse_SPIN0.csr`` (or ``.bin``), ``SR.csr``   ``srs1_nao.csr``, ``sr_nao.csr``
H0          ``data-H0R-sparse_SPIN{k-1}.csr``                       ``h0rs{k}_nao.csr``
==========  =====================================================  ===========================

Conversion: H in Ry -> eV; orbitals from ABACUS order (m = 0, +1, -1, +2, -2, ..., harmonics with an
extra (-1)^m) to nextham's table; nspin 4 matrices interleave spin as the fastest index and are
de-interleaved into spin-major blocks; nspin 2 becomes a spinful record with zero up-down blocks; the
spinful S of nspin 4 must be spin-diagonal and is stored spinless. The edge list is the union of the
supports of S, H0 and H. ``H0`` comes from files in the same folder or from a ``calculation get_hs``
folder passed as ``h0``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.data import chemical_symbols

from ..basis.orbitals import Basis, BasisError, ElementBasis
from ..blocks.layout import edge_columns, match_rows
from ..blocks.record import StructureRecord, hermitian_error
from ..structure.lattice_shift import translate_edges
from . import abacus_csr
from .abacus_csr import CSRFile
from .abacus_stru import (Geometry, basis_from_orbital_name, element_of_label, read_input,
                          read_orbital_header, read_running_log, read_stru, write_stru)
from .assemble import Elements, attach_h0, build_record, finite_fermi, orbital_tables
from .errors import FormatError

RYDBERG_EV = 13.605693122994  # CODATA 2018 (docs/conventions.md)

H_FILES = {  # spin channel -> candidate names, in order of preference within a family
    "nao": (["hrs1_nao.csr"], ["hrs2_nao.csr"]),
    "legacy": (["data-HR-sparse_SPIN0.csr", "data-HR-sparse_SPIN0.bin"], ["data-HR-sparse_SPIN1.csr", "data-HR-sparse_SPIN1.bin"]),
}
H0_FILES = {
    "nao": (["h0rs1_nao.csr"], ["h0rs2_nao.csr"]),
    "legacy": (["data-H0R-sparse_SPIN0.csr"], ["data-H0R-sparse_SPIN1.csr"]),
}
S_FILES = {"nao": ["srs1_nao.csr", "sr_nao.csr"], "legacy": ["data-SR-sparse_SPIN0.csr", "data-SR-sparse_SPIN0.bin", "SR.csr"]}
HERMITIAN_TOL_EV = 1e-4
"""Largest accepted ``|H_ij(R) - H_ji(-R)^dagger|`` (eV) of a read H; ABACUS prints 8 digits."""


@dataclass
class AbacusFolder:
    """Where the pieces of one ABACUS calculation are."""

    root: Path
    out: Path
    input: dict[str, str]
    family: str
    h_files: list[Path]
    s_file: Path | None
    h0_files: list[Path] = field(default_factory=list)


def looks_like_abacus(path: str | os.PathLike) -> bool:
    """Cheap test used by auto-detection: a folder with ABACUS matrix files (or an OUT.* folder with them)."""
    path = Path(path)
    if not path.is_dir():
        return False
    dirs = [path] + sorted(p for p in path.glob("OUT.*") if p.is_dir())
    names = {n for fam in H_FILES.values() for ch in fam for n in ch} | {n for fam in S_FILES.values() for n in fam}
    return any((d / n).is_file() for d in dirs for n in names)


def locate(path: str | os.PathLike, overlap: str | os.PathLike | None = None) -> AbacusFolder:
    """Find the matrix files of one calculation; ``overlap``: an S file to use when the folder has none
    (S depends only on geometry and basis, e.g. the ``srs1_nao.csr`` of another run of the same structure)."""
    root = Path(path)
    if not root.is_dir():
        raise FormatError(root, "not a folder (an ABACUS calculation is a folder with INPUT/STRU and matrix files)")
    inp = read_input(root / "INPUT") if (root / "INPUT").is_file() else {}
    outs = sorted(p for p in root.glob("OUT.*") if p.is_dir())
    if outs:
        wanted = root / f"OUT.{inp.get('suffix', 'ABACUS')}"
        out = wanted if wanted in outs else (outs[0] if len(outs) == 1 else None)
        if out is None:
            raise FormatError(root, f"several output folders {[p.name for p in outs]} and none matches INPUT suffix "
                                    f"{inp.get('suffix')!r}")
    else:
        out = root
    found = {}
    for fam in ("nao", "legacy"):
        hs = [_first_existing([out, root], names) for names in H_FILES[fam]]
        s = _first_existing([out, root], S_FILES[fam])
        h0 = [_first_existing([out, root], names) for names in H0_FILES[fam]]
        if hs[0] or s or h0[0]:
            found[fam] = ([h for h in hs if h], s, [h for h in h0 if h])
    if not found:
        raise FormatError(out, "no ABACUS matrix files (expected hrs1_nao.csr/srs1_nao.csr or "
                               "data-HR-sparse_SPIN0.csr/data-SR-sparse_SPIN0.csr; set out_mat_hs2 1 in INPUT)")
    if len(found) > 1:
        raise FormatError(out, "holds both legacy (data-HR-sparse_*) and new (hrs*_nao.csr) matrix files; "
                               "keep one set")
    fam, (hs, s, h0) = next(iter(found.items()))
    if overlap is not None:
        if s is not None:
            raise FormatError(overlap, f"an overlap file was given but the folder has its own ({s.name})")
        s = Path(overlap)
        if not s.is_file():
            raise FormatError(s, "no such overlap file")
    if s is None:
        raise FormatError(out, f"missing overlap file: expected one of {S_FILES[fam]} (or name one from another run "
                               "of the same structure with overlap= / --overlap)")
    return AbacusFolder(root=root, out=out, input=inp, family=fam, h_files=hs, s_file=s, h0_files=h0)


def _first_existing(dirs: Sequence[Path], names: Sequence[str]) -> Path | None:
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


# ---------------------------------------------------------------------------------------- geometry + basis
def _geometry(folder: AbacusFolder, csr: CSRFile) -> tuple[Geometry, dict]:
    inp = folder.input
    stru = folder.root / inp.get("stru_file", "STRU")
    log = next((p for p in [folder.out / "running_scf.log", folder.out / "running_get_hs.log",
                            folder.out / "running_get_S.log", *sorted(folder.out.glob("running_*.log"))]
                if p.is_file()), None)
    uc = csr.header.get("ucell")
    header_geom = None
    if uc is not None:
        cell = uc["latvec"] * uc["lat0_angstrom"]
        numbers = np.concatenate([[_z(lab, csr.path)] * n for lab, n in zip(uc["labels"], uc["counts"])])
        header_geom = Geometry(cell=cell, positions=uc["frac"] @ cell, numbers=numbers.astype(np.int64),
                               labels=uc["labels"], counts=uc["counts"], orbital_files=[], source=csr.path)
    if stru.is_file():
        geom = read_stru(stru, latname=inp.get("latname"))
        if header_geom is not None:
            _same_geometry(geom, header_geom, stru, csr.path)
        return geom, {"geometry_source": "STRU"}
    if header_geom is not None:
        return header_geom, {"geometry_source": "CSR header (6 significant digits for the cell)"}
    if log is not None:
        info = read_running_log(log)
        if info.geometry is not None:
            return info.geometry, {"geometry_source": log.name}
    raise FormatError(folder.root, f"no geometry: no {stru.name}, no unit cell in {Path(csr.path).name}, "
                                   "no running_*.log with coordinates")


def _same_geometry(stru: Geometry, header: Geometry, stru_path: Path, csr_path, tol: float = 1e-4) -> None:
    """The STRU must describe the structure the CSR header prints (6 significant digits: 1e-4 relative)."""
    scale = max(1.0, float(np.abs(stru.cell).max()))
    frac_s = stru.positions @ np.linalg.inv(stru.cell)
    frac_h = header.positions @ np.linalg.inv(header.cell)
    d = frac_s - frac_h
    ok = (np.array_equal(stru.numbers, header.numbers) and np.abs(stru.cell - header.cell).max() <= tol * scale
          and np.abs(d - np.round(d)).max(initial=0.0) <= tol)
    if not ok:
        raise FormatError(stru_path, f"describes another structure than the unit cell printed in "
                                     f"{Path(csr_path).name} (atoms, cell or positions differ)")


def _z(label: str, path) -> int:
    from ase.data import atomic_numbers
    return atomic_numbers[element_of_label(label, path)]


def _basis(folder: AbacusFolder, geom: Geometry, basis, orbital_dirs: Sequence[str | os.PathLike]) -> tuple[Basis, str]:
    elements = sorted({chemical_symbols[z] for z in geom.numbers})
    if basis is not None:
        b = basis if isinstance(basis, Basis) else Basis.from_specs(basis)
        return b.restrict(geom.numbers), "given"
    # 1) orbital files named in STRU
    if geom.orbital_files:
        dirs = [Path(d) for d in orbital_dirs]
        if "orbital_dir" in folder.input:
            dirs.append(folder.root / folder.input["orbital_dir"])
        dirs += [folder.root, folder.out]
        per_el: dict[str, ElementBasis] = {}
        missing = []
        for lab, fname in zip(geom.labels, geom.orbital_files):
            el = element_of_label(lab)
            hit = next((d / fname for d in dirs if (d / fname).is_file()), None)
            if hit is None:
                missing.append(fname)
                continue
            eb = read_orbital_header(hit)
            if eb.symbol != el:
                raise FormatError(hit, f"orbital file is for element {eb.symbol}, STRU uses it for {lab}")
            if el in per_el and per_el[el].ls != eb.ls:
                raise FormatError(hit, f"two species of {el} use different shells ({per_el[el].spec()} vs {eb.spec()})")
            per_el[el] = eb
        if not missing:
            return Basis(tuple(per_el.values())), "orbital files"
    # 1b) no STRU (geometry from a CSR header): the one .orb file of each element in orbital_dirs
    if not geom.orbital_files and orbital_dirs:
        per_el = {}
        for d in orbital_dirs:
            for f in sorted(Path(d).glob("*.orb")):
                try:
                    eb = read_orbital_header(f)
                except FormatError:
                    continue
                per_el.setdefault(eb.symbol, {})[f.name] = eb
        if all(len(per_el.get(e, {})) == 1 for e in elements):
            return (Basis(tuple(next(iter(per_el[e].values())) for e in elements)),
                    "the only .orb file of each element in orbital_dirs")
        several = {e: sorted(per_el[e]) for e in elements if len(per_el.get(e, {})) > 1}
        if several:
            raise FormatError(folder.root, f"no STRU names the orbital files, and orbital_dirs hold several for "
                                           f"{several}; pass basis or a folder with one file per element")
    # 2) a basis file written by nextham's ABACUS writer
    if (folder.root / "nextham_basis.json").is_file():
        try:
            specs = json.loads((folder.root / "nextham_basis.json").read_text())
            b = Basis.from_specs({k: [int(l) for l in v] for k, v in specs.items()})
        except (ValueError, TypeError, AttributeError, BasisError) as exc:
            raise FormatError(folder.root / "nextham_basis.json", f"bad basis file: {exc}") from None
        if all(e in b for e in elements):
            return b.restrict(geom.numbers), "nextham_basis.json"
    # 3) the running log
    for log in sorted(folder.out.glob("running_*.log")):
        info = read_running_log(log)
        if all(e in info.basis for e in elements):
            return Basis.from_specs({e: info.basis[e] for e in elements}), log.name
    # 4) the conventional orbital file name (..._2s2p1d.orb)
    if geom.orbital_files:
        specs = {}
        for lab, fname in zip(geom.labels, geom.orbital_files):
            spec = basis_from_orbital_name(fname)
            if spec:
                specs[element_of_label(lab)] = spec
        if all(e in specs for e in elements):
            return Basis.from_specs(specs), "orbital file names (files not found; pass orbital_dirs to read them)"
    raise FormatError(folder.root, "cannot determine the orbital basis: orbital files "
                                   f"{geom.orbital_files or '(none named in STRU)'} not found (pass orbital_dirs or "
                                   "basis), and no running_*.log lists 'L=l, number of zeta'")


# ---------------------------------------------------------------------------------------- matrices
def _elements(csr: CSRFile, numbers, basis: Basis, nspin: int, unit: float, name: str) -> Elements:
    """ABACUS CSR elements -> nextham elements (order, sign, spin layout, unit)."""
    atom, local, sign, offsets = orbital_tables(numbers, basis, "abacus")
    n = int(offsets[-1])
    interleaved = nspin == 4
    expect = 2 * n if interleaved else n
    if csr.dim != expect:
        raise FormatError(csr.path, f"matrix dimension {csr.dim} does not match the basis: {n} orbitals "
                                    f"({_basis_text(basis, numbers)}){' x 2 spins (nspin 4)' if interleaved else ''} "
                                    f"= {expect}", line=csr.header.get("dim_line"))
    rows, cols, vals = csr.rows, csr.cols, csr.values
    R = csr.R[csr.R_index]
    if interleaved:
        o_r, s_r, o_c, s_c = rows // 2, rows % 2, cols // 2, cols % 2
    else:
        o_r, o_c = rows, cols
        s_r = s_c = np.zeros_like(rows)
    i, j = atom[o_r], atom[o_c]
    ni, nj = offsets[i + 1] - offsets[i], offsets[j + 1] - offsets[j]
    v = vals * (sign[o_r] * sign[o_c] * unit)
    if name == "S" and interleaved:
        v = _spin_diagonal_overlap(csr, R, i, j, local[o_r], local[o_c], s_r, s_c, v)
        keep = (s_r == 0) & (s_c == 0)
        return Elements(R[keep], i[keep], j[keep], local[o_r][keep], local[o_c][keep], v.real[keep].copy())
    if name != "S" and nspin == 4:
        return Elements(R, i, j, s_r * ni + local[o_r], s_c * nj + local[o_c], v.astype(np.complex128))
    if np.iscomplexobj(v):
        if np.max(np.abs(v.imag), initial=0.0) > 1e-8:
            raise FormatError(csr.path, f"complex values in a spinless (nspin {nspin}) matrix")
        v = v.real.copy()
    return Elements(R, i, j, local[o_r], local[o_c], v)


def _spin_diagonal_overlap(csr, R, i, j, lr, lc, s_r, s_c, v, tol=1e-7):
    off = (s_r != s_c) & (np.abs(v) > tol)
    if off.any() or np.max(np.abs(v.imag), initial=0.0) > tol:
        raise FormatError(csr.path, "overlap of an nspin 4 file has up-down or imaginary entries; S must be "
                                    "spin-independent")
    up = (s_r == 0) & (s_c == 0)
    dn = (s_r == 1) & (s_c == 1)
    columns = [*edge_columns(i, j, R), lr, lc]
    dn_of_up = match_rows([c[dn] for c in columns], [c[up] for c in columns])
    if up.sum() != dn.sum() or np.any(dn_of_up < 0) or \
            np.max(np.abs(v[up] - v[dn][dn_of_up]), initial=0.0) > tol:
        raise FormatError(csr.path, "overlap of an nspin 4 file differs between spin up and spin down")
    return v


def _basis_text(basis: Basis, numbers) -> str:
    from collections import Counter
    c = Counter(chemical_symbols[z] for z in numbers)
    return ", ".join(f"{c[e.symbol]} {e.symbol} x {e.spec()} ({e.norb})" for e in basis.elements if e.symbol in c)


def _read_matrices(folder: AbacusFolder, step, s: CSRFile | None = None):
    hs = [abacus_csr.read_csr(p, step=step, label=None) for p in folder.h_files]
    h0 = [abacus_csr.read_csr(p, step=step) for p in folder.h0_files]
    s = s if s is not None else abacus_csr.read_csr(folder.s_file, step=step)
    return hs, h0, s


def _nspin(folder: AbacusFolder, hs: list[CSRFile], s: CSRFile, n_orb: int) -> int:
    if "nspin" in folder.input:
        try:
            nspin = int(folder.input["nspin"])
        except ValueError:
            raise FormatError(folder.root / "INPUT", f"nspin {folder.input['nspin']!r} is not an integer") from None
    elif len(hs) == 2:
        nspin = 2
    elif hs and hs[0].dim == 2 * n_orb:
        nspin = 4
    else:
        nspin = 1
    if nspin not in (1, 2, 4):
        raise FormatError(folder.root / "INPUT", f"nspin {nspin} (expected 1, 2 or 4)")
    if nspin == 2 and len(hs) == 1:
        raise FormatError(hs[0].path, "nspin 2 needs the spin-down Hamiltonian too (SPIN1 / hrs2 file is missing)")
    return nspin


def _collect(folder: AbacusFolder, geom: Geometry, basis: Basis, step, s: CSRFile | None = None
             ) -> tuple[dict[str, list], int, dict]:
    hs, h0s, s = _read_matrices(folder, step, s)
    for csr in [*hs, *h0s, s]:
        _check_partners(csr)
    n_orb = int(basis.atom_offsets(geom.numbers)[-1])
    nspin = _nspin(folder, hs, s, n_orb)
    out: dict[str, list] = {"S": [_elements(s, geom.numbers, basis, 4 if s.dim == 2 * n_orb else 1, 1.0, "S")]}
    for name, files in (("H", hs), ("H0", h0s)):
        if not files:
            continue
        if nspin == 2:
            up, dn = (_elements(f, geom.numbers, basis, 2, RYDBERG_EV, name) for f in files[:2])
            ni = np.diff(basis.atom_offsets(geom.numbers))
            out[name] = [Elements(up.R, up.i, up.j, up.row, up.col, up.value.astype(np.complex128)),
                         Elements(dn.R, dn.i, dn.j, dn.row + ni[dn.i], dn.col + ni[dn.j], dn.value.astype(np.complex128))]
        else:
            out[name] = [_elements(files[0], geom.numbers, basis, nspin, RYDBERG_EV, name)]
    meta = {"files": {k: [Path(f.path).name for f in v] for k, v in (("H", hs), ("H0", h0s), ("S", [s])) if v},
            "csr_format": s.kind, "step": s.header.get("step")}
    fermi = {h.header["fermi_energy_eV"] for h in hs if "fermi_energy_eV" in h.header}
    if len(fermi) > 1:
        raise FormatError(hs[-1].path, f"the spin channels print different E_Fermi {sorted(fermi)}")
    if fermi:
        meta["header_fermi"] = (fermi.pop(), f"{Path(hs[0].path).name} header")
    return out, nspin, meta


def _check_partners(csr: CSRFile) -> None:
    """ABACUS writes every R block together with its -R partner, and always R = 0: a file without them
    is cut or edited (filling the gap with the partner's adjoint would hide that)."""
    if not len(csr.R):
        raise FormatError(csr.path, "holds no R block")
    nnz = np.diff(csr.block_start)
    keys = {tuple(r) for r in csr.R.tolist()}
    if (0, 0, 0) not in keys:
        raise FormatError(csr.path, "has no R = (0, 0, 0) block (ABACUS always writes it): cut or edited file?")
    for k, r in enumerate(csr.R.tolist()):
        if nnz[k] and (-r[0], -r[1], -r[2]) not in keys:
            raise FormatError(csr.path, f"R = {tuple(r)} has no -R = {(-r[0], -r[1], -r[2])} partner block "
                                        "(ABACUS writes both): cut or edited file?", line=int(csr.line_of_R[k]) or None)


def _merge(parts: list[Elements]) -> Elements:
    return Elements(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("R", "i", "j", "row", "col", "value")))


def read_abacus(path: str | os.PathLike, *, h0: str | os.PathLike | None = None, basis=None,
                orbital_dirs: Sequence[str | os.PathLike] = (), step: int | None = None,
                hermitian_tol: float | None = HERMITIAN_TOL_EV,
                overlap: str | os.PathLike | None = None) -> StructureRecord:
    """Read one ABACUS LCAO calculation folder into a record (eV, Å, nextham orbital order).

    Parameters
    ----------
    path : calculation folder (INPUT, STRU, matrix files here or in ``OUT.<suffix>/``).
    h0 : a ``calculation get_hs`` (``init_chg atomic``) folder of the same structure; its H becomes
        ``H0`` (its S must equal this S).
    basis : override the basis (``Basis`` or ``{"Si": "2s2p1d"}``).
    orbital_dirs : extra folders in which to look for the orbital files named in STRU.
    step : ionic step to read from files holding several (default: the last).
    hermitian_tol : largest accepted ``|H_ij(R) - H_ji(-R)^dagger|`` (eV); None skips the check.
    overlap : S file to use when the folder holds none (another run of the same structure and basis).
    """
    folder = locate(path, overlap)
    probe = abacus_csr.read_csr(folder.s_file, step=step)
    geom, gmeta = _geometry(folder, probe)
    b, basis_source = _basis(folder, geom, basis, orbital_dirs)
    parts, nspin, meta = _collect(folder, geom, b, step, probe)
    if "H" not in parts:
        meta["note"] = "no H file: S only"
    ef, ef_source = None, None
    log = folder.out / "running_scf.log"
    if log.is_file():
        ef, ef_source = read_running_log(log).fermi_energy_eV, log.name
    if ef is None and "header_fermi" in meta:
        ef, ef_source = meta.pop("header_fermi")
    ef = finite_fermi(ef, folder.out / (ef_source or ""))
    if ef_source is not None:
        meta["fermi_source"] = ef_source
    spinful = nspin in (2, 4)
    metadata = {"source": {"code": "abacus", "path": str(folder.root), "nspin": nspin, "basis_source": basis_source,
                           "units_in": "H: Ry, S: 1, lengths: Bohr", **gmeta, **meta}}
    record = build_record(geom.numbers, geom.cell, geom.positions, [True, True, True], b,
                          {k: _merge(v) for k, v in parts.items()}, spinful, ef, metadata)
    # ABACUS moves atoms into [0, 1) before computing (UnitCell::check_dtau), so its R belong to the
    # wrapped positions; keep the file's positions and relabel R (nextham.structure.lattice_shift).
    # Rounding to 1e-12 removes the Cartesian round trip's noise (-3e-18 for a written 0.0).
    wrap_offsets = np.floor(np.round(geom.positions @ np.linalg.inv(geom.cell), 12)).astype(np.int64)
    if wrap_offsets.any():
        record = record.replace(edge_R=translate_edges(record.edge_index, record.edge_R, wrap_offsets))
    _check_hermitian(record, folder, hermitian_tol)
    if h0 is not None:
        if "H0" in record.blocks:
            raise FormatError(folder.root, "holds its own H0 files and an H0 folder was given too")
        h0_record = read_abacus(h0, basis=record.basis, orbital_dirs=orbital_dirs, hermitian_tol=hermitian_tol)
        record = attach_h0(record, h0_record, where=h0)
    return record


def _check_hermitian(record: StructureRecord, folder: AbacusFolder, tol: float | None) -> None:
    if tol is None:
        return
    for name in record.blocks:
        err = hermitian_error(record, name)
        if err > tol:
            raise FormatError(folder.out, f"matrix {name} is not Hermitian: max |{name}_ij(R) - {name}_ji(-R)^dagger| "
                                          f"= {err:.3e} (a corrupted or mixed-up file?)")


# ---------------------------------------------------------------------------------------- writing
CSR_FORMATS = ("legacy", "nao")
"""``legacy``: ``data-HR-sparse_SPIN*.csr`` (ABACUS <= 3.8); ``nao``: ``hrs*_nao.csr`` (ABACUS >= 3.9)."""


def to_rydberg(values_eV: np.ndarray) -> np.ndarray:
    """eV -> Ry, choosing among the nearest floats of ``x / Ry`` one whose product with Ry gives ``x``
    back exactly (so that write + read is bitwise); where none does, the nearest quotient (1 ulp off after
    reading back). Values read from ABACUS always have one; about 1 in 10 arbitrary floats has none."""
    y = np.asarray(values_eV) / RYDBERG_EV
    if np.iscomplexobj(y):
        return to_rydberg(np.real(values_eV)) + 1j * to_rydberg(np.imag(values_eV))
    x = np.asarray(values_eV)
    best = y.copy()
    for cand in (np.nextafter(y, np.inf), np.nextafter(y, -np.inf)):
        fix = (best * RYDBERG_EV != x) & (cand * RYDBERG_EV == x)
        best[fix] = cand[fix]
    return best


def _source(record: StructureRecord) -> dict:
    """``metadata["source"]`` as a dict (records of the built-in models carry a plain string there)."""
    src = record.metadata.get("source", {})
    return src if isinstance(src, dict) else {"description": str(src)}


def write_abacus(record: StructureRecord, path: str | os.PathLike, csr_format: str = "legacy") -> Path:
    """Write ``record`` as an ABACUS folder: STRU, INPUT (nspin), ``nextham_basis.json`` and the matrices.

    ``csr_format="legacy"``: ``data-HR-sparse_SPIN*.csr``, ``data-SR-sparse_SPIN0.csr`` (and
    ``data-H0R-sparse_SPIN*.csr`` for H0), the layout of ABACUS <= 3.8. ``csr_format="nao"``:
    ``hrs{1,2}_nao.csr``, ``srs1_nao.csr`` (and ``h0rs*_nao.csr``) as ABACUS >= 3.9 writes them (unit cell
    and E_Fermi in the header; S of an nspin 4 record written 2n x 2n, spin interleaved, as ABACUS does).

    H in Ry, ABACUS orbital order and signs, nspin 4 interleaved spin (spinful records whose metadata
    says nspin 2 are written as two spin channels). Atoms are grouped by element (ABACUS lists atoms per
    species); the record's atom order must already be grouped, else a ``FormatError`` is raised. Values
    keep full float64 precision and explicit zeros, and eV -> Ry is chosen to invert exactly
    (:func:`to_rydberg`), so reading the folder back gives the same record (bitwise for records read from
    ABACUS; arbitrary eV values can move by 1 ulp).
    """
    if csr_format not in CSR_FORMATS:
        raise FormatError(path, f"unknown ABACUS CSR format {csr_format!r} (choose from {', '.join(CSR_FORMATS)})")
    path = Path(path)
    numbers = record.numbers
    change = np.flatnonzero(np.diff(numbers)) + 1
    runs = np.split(numbers, change)
    symbols = [chemical_symbols[r[0]] for r in runs]
    if len(set(symbols)) != len(symbols):
        raise FormatError(path, "ABACUS lists atoms grouped by species; reorder the record's atoms by element first")
    source = _source(record)
    nspin = source.get("nspin") if record.spinful else 1
    if record.spinful and nspin != 2:
        nspin = 4
    orbs = [f"{s}_{record.basis[s].spec()}.orb" for s in symbols]
    counts = [len(r) for r in runs]
    write_stru(path / "STRU", record.cell, record.positions, symbols, counts, orbs)
    (path / "INPUT").write_text(f"INPUT_PARAMETERS\nbasis_type lcao\nnspin {nspin}\nout_mat_hs2 1\n"
                                f"# written by nextham from {json.dumps(str(source.get('path', '')))}\n")
    if record.fermi_energy_eV is not None and csr_format == "legacy":  # ABACUS <= 3.8 reports E_F only in its log
        (path / "running_scf.log").write_text(f" (written by nextham: only the Fermi level)\n"
                                              f" EFERMI = {record.fermi_energy_eV!r} eV\n")
    basis_json = {s: list(record.basis[s].ls) for s in symbols}
    (path / "nextham_basis.json").write_text(json.dumps(basis_json))
    n = record.n_orbitals
    if csr_format == "legacy":
        def emit(file_name, label, spin_index, csr):
            abacus_csr.write_csr_legacy(path / file_name, label, *csr)
        names = {"S": "data-SR-sparse_SPIN0.csr", "H": "data-HR-sparse_SPIN{}.csr", "H0": "data-H0R-sparse_SPIN{}.csr"}
        first = 0
    else:
        frac = record.positions @ np.linalg.inv(record.cell)
        header = dict(cell=record.cell, labels=symbols, counts=counts, frac=frac, nspin=2 if nspin == 2 else 1)

        def emit(file_name, label, spin_index, csr):
            ef = record.fermi_energy_eV if label == "H" else None
            abacus_csr.write_csr_nao(path / file_name, label, *csr, spin_index=spin_index, fermi_energy_eV=ef,
                                     **header)
        names = {"S": "srs1_nao.csr", "H": "hrs{}_nao.csr", "H0": "h0rs{}_nao.csr"}
        first = 1
    s_nspin = 4 if (csr_format == "nao" and nspin == 4) else 1
    emit(names["S"], "S", 1, _csr_arrays(record, "S", 1.0, s_nspin, n, None))
    for name in ("H", "H0"):
        if name not in record.blocks:
            continue
        channels = (0, 1) if nspin == 2 else (None,)
        for k, ch in enumerate(channels):
            emit(names[name].format(first + k), "H", k + 1, _csr_arrays(record, name, None, 2 if nspin == 2 else nspin, n, ch))
    return path


def _csr_arrays(record: StructureRecord, name: str, unit: float | None, nspin: int, n: int, channel: int | None):
    """Packed blocks -> (dim, R, block_start, rows, cols, values) in ABACUS global (row, col) order per R.

    ``unit``: factor applied to the values (None: eV -> Ry through :func:`to_rydberg`). ``nspin`` 4 with
    a spinless matrix (S) repeats it on both spin diagonals (ABACUS's 2n x 2n overlap)."""
    atom, local, sign, offsets = orbital_tables(record.numbers, record.basis, "abacus")
    # nextham local index of atom a -> ABACUS global orbital
    to_abacus = np.empty(n, dtype=np.int64)
    to_abacus[offsets[atom] + local] = np.arange(n)
    sign_new = np.empty(n)
    sign_new[offsets[atom] + local] = sign
    coords = record.coordinates(name)
    e, r_loc, c_loc = coords.edge, coords.p, coords.q
    i, j = record.edge_index[e, 0], record.edge_index[e, 1]
    ni, nj = np.diff(offsets)[i], np.diff(offsets)[j]
    val = record.blocks[name]
    f = record.spin_factor(name)
    if f == 2:
        s_r, k_r, s_c, k_c = r_loc // ni, r_loc % ni, c_loc // nj, c_loc % nj
    else:
        s_r = s_c = np.zeros_like(r_loc)
        k_r, k_c = r_loc, c_loc
    g_r, g_c = offsets[i] + k_r, offsets[j] + k_c
    v = val * sign_new[g_r] * sign_new[g_c]
    v = to_rydberg(v) if unit is None else v * unit
    if channel is not None:  # nspin 2: one spin channel, real
        keep = (s_r == channel) & (s_c == channel)
        rows, cols, v = to_abacus[g_r][keep], to_abacus[g_c][keep], v[keep].real
        e = e[keep]
        dim = n
    elif nspin == 4:
        if f == 1:  # spinless S on both spin diagonals
            e, g_r, g_c, v = (np.concatenate([x, x]) for x in (e, g_r, g_c, v))
            s_r = s_c = np.repeat([0, 1], len(v) // 2)
        rows, cols = 2 * to_abacus[g_r] + s_r, 2 * to_abacus[g_c] + s_c
        dim = 2 * n
        v = v.astype(np.complex128)
    else:
        rows, cols, dim = to_abacus[g_r], to_abacus[g_c], n
    R = record.edge_R[e]
    rkey = record.layout.r_of_edge[e]  # lattice vectors in lexicographic order
    order = np.lexsort((cols, rows, rkey))
    rkey, rows, cols, v, R = rkey[order], rows[order], cols[order], v[order], R[order]
    _, start = np.unique(rkey, return_index=True)
    block_start = np.concatenate([start, [len(rkey)]])
    return dim, R[start], block_start, rows, cols, v
