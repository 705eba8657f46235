"""Records to and from ``sisl.Hamiltonian`` (optional extra ``nextham[sisl]``), and SIESTA/TBtrans ``.TSHS``.

Conventions (sisl 0.15+):

* units: eV and Å on both sides; ``H(k) = sum_R H(R) exp(+2 pi i k.R)`` with ``gauge="lattice"`` (sisl's
  default), k in reduced coordinates: the same Bloch sum as nextham's ``physics.bloch``.
* sparse layout: rows are the ``no`` orbitals of the unit cell, columns ``io + isc * no`` where ``isc`` is the
  supercell index of R (``geometry.lattice.sc_index(R)``; ``nsc`` is set to cover every R of the record).
* orbitals: ``sisl.AtomicOrbital(l, m, zeta)`` per orbital, m = -l..l; values are written in SIESTA's real
  harmonics, which differ from nextham's by (-1)^m (``basis/conventions.py``, code "siesta"). Eigenvalues do
  not depend on this; orbital projections then match SIESTA/sisl tools.
* spin: spinless -> ``Spin("unpolarized")``; spinful -> ``Spin("spin-orbit")`` with complex components
  ``[uu, dd, ud, du]`` (sisl's complex layout; its H(k) interleaves spin as the fastest index, nextham's
  blocks are spin-major). Reading also accepts sisl's real 8-component spin-orbit layout
  ``[Re uu, Re dd, Re ud, Im ud, Im uu, Im dd, Re du, Im du]``, non-collinear and polarized matrices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from ..basis.conventions import atom_permutation
from ..basis.orbitals import Basis, ElementBasis
from ..blocks.record import StructureRecord
from .assemble import Elements, build_record, elements_of, finite_fermi
from .errors import FormatError


def _sisl():
    try:
        import sisl
    except ImportError as exc:  # the optional extra
        raise ImportError("sisl is not installed: pip install 'nextham[sisl]'") from exc
    return sisl


def _siesta_sign(record: StructureRecord) -> np.ndarray:
    """(n_orbitals,) factor taking nextham values to SIESTA's real harmonics (and back: it is +-1)."""
    out = []
    for z in record.numbers:
        e = record.basis[chemical_symbols[z]]
        idx, sign = atom_permutation("siesta", e)
        assert np.array_equal(idx, np.arange(e.norb))  # SIESTA: m = -l..l as nextham, signs only
        out.append(sign)
    return np.concatenate(out)


def _geometry(record: StructureRecord):
    sisl = _sisl()
    atoms = {}
    for z in sorted(set(record.numbers.tolist())):
        e = record.basis[chemical_symbols[z]]
        zeta = {}
        orbitals = []
        for shell in e.shells:
            zeta[shell.l] = zeta.get(shell.l, 0) + 1
            orbitals += [sisl.AtomicOrbital(n=shell.l + 1, l=shell.l, m=m, zeta=zeta[shell.l], R=-1.0)
                         for m in range(-shell.l, shell.l + 1)]
        atoms[z] = sisl.Atom(int(z), orbitals=orbitals)
    nsc = 2 * np.abs(record.edge_R).max(axis=0, initial=0) + 1
    lattice = sisl.Lattice(record.cell, nsc=nsc.tolist())
    return sisl.Geometry(record.positions, atoms=[atoms[z] for z in record.numbers.tolist()], lattice=lattice)


def to_sisl(record: StructureRecord, name: str = "H"):
    """``sisl.Hamiltonian`` (non-orthogonal, overlap = the record's S) of matrix ``name`` ("H" or "H0")."""
    sisl = _sisl()
    from scipy.sparse import csr_matrix

    if name not in record.blocks or "S" not in record.blocks:
        raise FormatError(None, f"to_sisl needs the record's S and {name} (it holds {sorted(record.blocks)})")
    geom = _geometry(record)
    no = record.n_orbitals
    offsets = record.atom_offsets
    norb = record.atom_norb
    sign = _siesta_sign(record)
    n_sc = geom.lattice.n_s

    def sparse(el: Elements):
        r, c = offsets[el.i] + el.row, offsets[el.j] + el.col
        col = c + geom.lattice.sc_index(el.R) * no
        v = el.value * sign[r] * sign[c]
        return csr_matrix((v, (r, col)), shape=(no, no * n_sc))

    S = sparse(elements_of(record, "S"))
    el = elements_of(record, name)
    if not record.spinful:
        return sisl.Hamiltonian.fromsp(geom, [sparse(el)], S=S)
    ni, nj = norb[el.i], norb[el.j]
    s_r, s_c = el.row // ni, el.col // nj
    local = Elements(el.R, el.i, el.j, el.row % ni, el.col % nj, el.value)
    comps = [sparse(local.select((s_r == a) & (s_c == b))) for a, b in ((0, 0), (1, 1), (0, 1), (1, 0))]
    return sisl.Hamiltonian.fromsp(geom, comps, S=S, spin=sisl.Spin("spin-orbit"))


def from_sisl(H, fermi_energy_eV: float | None = None, source: str = "sisl") -> StructureRecord:
    """Record from a non-orthogonal ``sisl.Hamiltonian`` whose orbitals are ``AtomicOrbital`` (l, m)."""
    geom = H.geometry
    if H.orthogonal:
        raise FormatError(source, "orthogonal sisl Hamiltonian (no overlap); nextham records carry S")
    numbers = np.array([a.Z for a in geom.atoms], dtype=np.int64)[geom.atoms.species]
    per_el: dict[str, ElementBasis] = {}
    perm_all = []
    for atom in geom.atoms.atom:
        ls, k = [], 0
        orbs = atom.orbitals
        while k < len(orbs):
            l = getattr(orbs[k], "l", None)
            if l is None:
                raise FormatError(source, f"orbitals of {atom.symbol} carry no l (use sisl.AtomicOrbital)")
            ms = [getattr(o, "m", None) for o in orbs[k:k + 2 * l + 1]]
            if sorted(m for m in ms if m is not None) != list(range(-l, l + 1)) or len(ms) != 2 * l + 1:
                raise FormatError(source, f"orbitals of {atom.symbol}: shell l={l} at orbital {k} does not hold "
                                          f"m = -{l}..{l}")
            perm_all.append((atom.Z, k, [ms.index(m) for m in range(-l, l + 1)]))
            ls.append(l)
            k += 2 * l + 1
        eb = ElementBasis.from_ls(chemical_symbols[atom.Z], ls)
        if per_el.setdefault(eb.symbol, eb).ls != eb.ls:
            raise FormatError(source, f"two species of {eb.symbol} use different shells")
    basis = Basis(tuple(per_el.values()))
    # per species: old orbital (sisl order) -> nextham local index
    to_local = {}
    for z, k, p in perm_all:
        to_local.setdefault(z, {})
        for new_m, old in enumerate(p):
            to_local[z][k + old] = k + new_m
    no = geom.no
    o2a = geom.o2a(np.arange(no))
    first = geom.firsto[:-1]
    local = np.array([to_local[numbers[o2a[o]]][o - first[o2a[o]]] for o in range(no)], dtype=np.int64)
    sc_off = np.asarray(geom.lattice.sc_off, dtype=np.int64)

    def elements(csr, spin_row: int = 0, spin_col: int = 0, spinful: bool = False) -> Elements:
        coo = csr.tocoo()
        r, c = coo.row.astype(np.int64), coo.col.astype(np.int64)
        jo, isc = c % no, c // no
        i, j = o2a[r], o2a[jo]
        norb = basis.norb_per_atom(numbers)
        row = local[r] + (spin_row * norb[i] if spinful else 0)
        col = local[jo] + (spin_col * norb[j] if spinful else 0)
        return Elements(sc_off[isc], i, j, row, col, coo.data)

    spin = H.spin
    S_el = elements(H.tocsr(H.S_idx))
    sign = np.concatenate([atom_permutation("siesta", basis[chemical_symbols[z]])[1] for z in numbers])
    offsets = basis.atom_offsets(numbers)

    def to_nextham(el: Elements) -> Elements:
        norb = np.diff(offsets)
        kr, kc = el.row % norb[el.i], el.col % norb[el.j]
        v = el.value * sign[offsets[el.i] + kr] * sign[offsets[el.j] + kc]
        return Elements(el.R, el.i, el.j, el.row, el.col, v)

    comps = [H.tocsr(k) for k in range(spin.size(H.dtype))]
    cplx = np.iscomplexobj(comps[0].data)
    if spin.is_unpolarized:
        parts = [elements(comps[0])]
        spinful = False
    else:
        spinful = True
        if spin.is_polarized:
            blocks = {(0, 0): comps[0], (1, 1): comps[1]}
        elif spin.is_noncolinear:
            ud = comps[2] if cplx else comps[2] + 1j * comps[3]
            blocks = {(0, 0): comps[0], (1, 1): comps[1], (0, 1): ud, (1, 0): ud.conj()}
        elif spin.is_spinorbit:
            if cplx:
                blocks = {(0, 0): comps[0], (1, 1): comps[1], (0, 1): comps[2], (1, 0): comps[3]}
            else:
                blocks = {(0, 0): comps[0] + 1j * comps[4], (1, 1): comps[1] + 1j * comps[5],
                          (0, 1): comps[2] + 1j * comps[3], (1, 0): comps[6] + 1j * comps[7]}
        else:
            raise FormatError(source, f"sisl spin configuration {spin} is not supported")
        parts = [elements(m.astype(np.complex128), a, b, True) for (a, b), m in blocks.items()]
    H_el = Elements(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("R", "i", "j", "row", "col", "value")))
    H_el = Elements(H_el.R, H_el.i, H_el.j, H_el.row, H_el.col,
                    H_el.value.astype(np.complex128 if spinful else np.float64))
    S_el = Elements(S_el.R, S_el.i, S_el.j, S_el.row, S_el.col, np.real(S_el.value).astype(np.float64))
    meta = {"source": {"code": "sisl", "path": str(source), "spin": str(spin)}}
    return build_record(numbers, geom.cell, geom.xyz, [True, True, True], basis,
                        {"S": to_nextham(S_el), "H": to_nextham(H_el)}, spinful,
                        finite_fermi(fermi_energy_eV, source), meta)


def write_tshs(record: StructureRecord, path: str | os.PathLike) -> Path:
    """SIESTA/TBtrans ``.TSHS`` file of the record's H and S through sisl (E_F written where known)."""
    path = Path(path)
    if path.suffix != ".TSHS":
        path = path.with_suffix(".TSHS") if path.suffix else path / "siesta.TSHS"
    path.parent.mkdir(parents=True, exist_ok=True)
    H = to_sisl(record)
    kwargs = {} if record.fermi_energy_eV is None else {"Ef": float(record.fermi_energy_eV)}
    H.write(str(path), **kwargs)
    return path
