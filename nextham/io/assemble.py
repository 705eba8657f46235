"""Vectorized assembly of a :class:`StructureRecord` from element lists, shared by the readers.

A reader converts its file contents to :class:`Elements` (one entry per stored matrix element, already
in nextham orbital order, sign convention, spin-major layout and units) and calls
:func:`build_record`, which takes the union of the supports, closes it under Hermitian conjugation,
sorts edges canonically and scatters every value into the packed block arrays with numpy index
arithmetic (no per-block Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..basis.conventions import Code, atom_permutation, inverse_permutation
from ..basis.orbitals import Basis
from ..blocks.layout import edge_columns, match_rows, unique_edges
from ..blocks.record import StructureRecord, conjugate_transpose_blocks
from ase.data import chemical_symbols


@dataclass
class Elements:
    """Matrix elements of one matrix: ``value`` at row ``row`` / column ``col`` of block (i, j, R).

    ``row``/``col`` index the block including spin for spinful matrices (``s * n_i + k``).
    """

    R: np.ndarray      # (m, 3) int64
    i: np.ndarray      # (m,) int64
    j: np.ndarray      # (m,) int64
    row: np.ndarray    # (m,) int64
    col: np.ndarray    # (m,) int64
    value: np.ndarray  # (m,) float64 / complex128

    def columns(self) -> list[np.ndarray]:
        """``(Rx, Ry, Rz, i, j, row, col)``: the integer coordinates that identify each element."""
        return [*edge_columns(self.i, self.j, self.R), self.row, self.col]

    def select(self, mask: np.ndarray) -> "Elements":
        return Elements(self.R[mask], self.i[mask], self.j[mask], self.row[mask], self.col[mask], self.value[mask])


def require_onsite(elements: Elements, n_atoms: int, path, name: str) -> None:
    """Every atom's on-site block (i, i, R = 0) must be stored: DFT codes always write it, and a missing
    one would silently become zeros (FormatError naming ``path`` and the first atom without it)."""
    from .errors import FormatError

    onsite = (elements.i == elements.j) & np.all(elements.R == 0, axis=1)
    have = np.zeros(n_atoms, dtype=bool)
    have[elements.i[onsite]] = True
    if not have.all():
        missing = np.flatnonzero(~have)
        raise FormatError(path, f"no on-site {name} block (R = 0) for atom {int(missing[0])} (0-based)"
                                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}: cut or edited file?")


def finite_fermi(value, path) -> float | None:
    """A Fermi level read from a file: None stays None, anything else must be a finite number (eV)."""
    from .errors import FormatError

    if value is None:
        return None
    try:
        ef = float(value)
    except (TypeError, ValueError):
        raise FormatError(path, f"Fermi level {value!r} is not a number") from None
    if not np.isfinite(ef):
        raise FormatError(path, f"Fermi level {value!r} is not finite")
    return ef


def orbital_tables(numbers: np.ndarray, basis: Basis, code: Code) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell-wide orbital ``o`` of ``code``'s order: (atom, nextham local index, sign, atom offsets).

    ``value_nextham = value_code * sign[o_row] * sign[o_col]`` placed at local index ``local[o]``.
    """
    offsets = basis.atom_offsets(numbers)
    n = int(offsets[-1])
    atom = np.repeat(np.arange(len(numbers)), np.diff(offsets))
    local = np.empty(n, dtype=np.int64)
    sign = np.empty(n, dtype=np.float64)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for a, z in enumerate(numbers):
        if z not in cache:
            idx, sg = atom_permutation(code, basis[chemical_symbols[z]])
            inv, _ = inverse_permutation(idx, sg)
            # old position p -> new position inv[p], with the sign of the new position
            cache[z] = (inv, sg[inv])
        inv, sg_old = cache[z]
        local[offsets[a]:offsets[a + 1]] = inv
        sign[offsets[a]:offsets[a + 1]] = sg_old
    return atom, local, sign, offsets


def build_record(numbers, cell, positions, pbc, basis: Basis, elements: dict[str, Elements], spinful: bool,
                 fermi_energy_eV: float | None = None, metadata: dict | None = None) -> StructureRecord:
    """Record whose edges are the union of the supports of all ``elements`` (plus self-loops and
    Hermitian partners), in canonical (R, i, j) order, with every matrix scattered into packed blocks.

    A block present for one matrix only through its partner (j, i, -R) is filled with the partner's
    adjoint; a block absent from a matrix altogether is zero.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    n_atoms = len(numbers)
    parts = [(e.R, e.i, e.j) for e in elements.values()]
    R_all = np.concatenate([p[0] for p in parts] + [np.zeros((n_atoms, 3), np.int64)]).astype(np.int64)
    i_all = np.concatenate([p[1] for p in parts] + [np.arange(n_atoms)]).astype(np.int64)
    j_all = np.concatenate([p[2] for p in parts] + [np.arange(n_atoms)]).astype(np.int64)
    # close under (i, j, R) -> (j, i, -R)
    R_all, i_all, j_all = np.concatenate([R_all, -R_all]), np.concatenate([i_all, j_all]), np.concatenate([j_all, i_all])
    first, _ = unique_edges(i_all, j_all, R_all)
    edge_R, ei, ej = R_all[first], i_all[first], j_all[first]
    record = StructureRecord(cell=cell, positions=positions, numbers=numbers, pbc=pbc, basis=basis.restrict(numbers),
                             edge_index=np.stack([ei, ej], 1), edge_R=edge_R, blocks={}, spinful=spinful,
                             fermi_energy_eV=fermi_energy_eV, metadata=dict(metadata or {}))
    blocks = {}
    for name, el in elements.items():
        shapes = record.block_shapes(name)
        off = record.block_offsets(name)
        e = record.find_edges(el.i, el.j, el.R)
        if np.any(el.row >= shapes[e, 0]) or np.any(el.col >= shapes[e, 1]) or np.any(el.row < 0) or np.any(el.col < 0):
            raise ValueError(f"matrix {name}: element outside its block")  # reader bug, not user input
        dtype = np.complex128 if (spinful and name != "S") else np.float64
        data = np.zeros(int(off[-1]), dtype=dtype)
        data[off[e] + el.row * shapes[e, 1] + el.col] = el.value
        present = np.zeros(record.n_edges, dtype=bool)
        present[e] = True
        rev = record.reverse_edges
        fill = ~present & present[rev]
        if fill.any():
            adj = conjugate_transpose_blocks(record, name, data)
            sizes = shapes[:, 0] * shapes[:, 1]
            mask = np.repeat(fill, sizes)
            data[mask] = adj[mask]
        blocks[name] = data
    record.blocks = blocks
    return record


def elements_of(record: StructureRecord, name: str) -> Elements:
    """Every packed element of matrix ``name`` as :class:`Elements` (inverse of :func:`build_record`)."""
    c = record.coordinates(name)
    return Elements(record.edge_R[c.edge], record.edge_index[c.edge, 0], record.edge_index[c.edge, 1],
                    c.p, c.q, record.blocks[name])


def attach_h0(record: StructureRecord, h0_record: StructureRecord, where=None, s_tol: float = 1e-6) -> StructureRecord:
    """``record`` with ``H0`` = the ``H`` of ``h0_record`` (a zeroth-step calculation of the same structure).

    Checks atoms, cell, basis and spin agree and that both overlaps agree on their common support
    (they come from the same basis and geometry); the edge list becomes the union of all supports.
    """
    from .errors import FormatError

    if "H" not in h0_record.blocks:
        raise FormatError(where, "the H0 source holds no Hamiltonian")
    if "H0" in record.blocks:
        raise FormatError(where, "the record already holds H0")
    same = (record.n_atoms == h0_record.n_atoms and np.array_equal(record.numbers, h0_record.numbers)
            and np.allclose(record.cell, h0_record.cell, atol=1e-5)
            and np.allclose(record.positions, h0_record.positions, atol=1e-5))
    if not same:
        raise FormatError(where, "the H0 calculation is of a different structure (atoms, cell or positions differ)")
    if record.basis != h0_record.basis:
        raise FormatError(where, f"the H0 calculation uses another basis ({h0_record.basis.to_json()} vs "
                                 f"{record.basis.to_json()})")
    if record.spinful != h0_record.spinful:
        raise FormatError(where, "the H0 calculation differs in spin treatment (spinful vs spinless)")
    a, b = elements_of(record, "S"), elements_of(h0_record, "S")
    in_a = match_rows(a.columns(), b.columns())  # element of ``a`` at the position of each of ``b``
    common = in_a >= 0
    if not common.any() or np.max(np.abs(a.value[in_a[common]] - b.value[common])) > s_tol:
        raise FormatError(where, "the overlap of the H0 calculation differs from this overlap "
                                 "(different basis, structure or settings?)")
    elements = {k: elements_of(record, k) for k in record.blocks}
    elements["H0"] = elements_of(h0_record, "H")
    meta = dict(record.metadata)
    meta["h0_source"] = h0_record.metadata.get("source", {})
    return build_record(record.numbers, record.cell, record.positions, record.pbc, record.basis, elements,
                        record.spinful, record.fermi_energy_eV, meta)
