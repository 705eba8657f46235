"""The record layout: collision-free edge and element keys on large cells (regression: the old int64
packings wrapped for 64-atom Si with 6 Å pairs and above ~32 atoms in the ABACUS nspin-4 reader)."""

from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import primitive_neighbor_list

from nextham.basis.orbitals import Basis
from nextham.blocks.layout import match_rows, row_ids
from nextham.blocks.record import StructureRecord
from nextham.io.assemble import Elements, attach_h0, build_record, elements_of
from nextham.io.errors import FormatError

SUPERCELLS = {32: (2, 2, 1), 64: (2, 2, 2)}  # repeats of the 8-atom conventional Si cell; 300: 150 primitive cells


def _si_cell(n_atoms: int):
    if n_atoms == 300:
        return bulk("Si", "diamond", a=5.43).repeat((5, 6, 5))
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat(SUPERCELLS[n_atoms])


def _record(n_atoms: int, cutoff: float = 6.0, seed: int = 0) -> StructureRecord:
    """Si supercell with 1s1p blocks on every pair within ``cutoff`` (Å): random but Hermitian."""
    atoms = _si_cell(n_atoms)
    assert len(atoms) == n_atoms
    i, j, S = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, cutoff)
    basis = Basis.from_specs({"Si": "1s1p"})
    rng = np.random.default_rng(seed)
    m = len(i)
    rows, cols = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    el = Elements(R=np.repeat(S, 16, axis=0).astype(np.int64), i=np.repeat(i, 16).astype(np.int64),
                  j=np.repeat(j, 16).astype(np.int64), row=np.tile(rows.ravel(), m), col=np.tile(cols.ravel(), m),
                  value=rng.standard_normal(16 * m))
    rec = build_record(atoms.numbers, atoms.cell.array, atoms.positions, atoms.pbc, basis, {"S": el}, spinful=False)
    # make it Hermitian: average each element with its partner
    data = rec.blocks["S"]
    rec.blocks["S"] = 0.5 * (data + data[rec.partner_index("S")])
    return rec


def test_row_ids_match_python_tuples_including_the_wide_fallback():
    rng = np.random.default_rng(3)
    for scale in (3, 1 << 40):  # small ranges (mixed radix) and ranges too wide for int64 (fallback)
        cols = [rng.integers(-scale, scale, 4000) for _ in range(6)]
        cols = [np.concatenate([c, c[:500]]) for c in cols]  # guaranteed repeats
        ids = row_ids(cols)
        tuples = list(zip(*[c.tolist() for c in cols]))
        by_tuple: dict = {}
        for t, k in zip(tuples, ids):
            assert by_tuple.setdefault(t, k) == k
        assert len(set(by_tuple.values())) == len(by_tuple)
        order = sorted(by_tuple)  # ids follow lexicographic order
        assert [by_tuple[t] for t in order] == sorted(by_tuple.values())
        table = [np.array(c) for c in zip(*order)]
        found = match_rows(table, cols)
        assert np.all(found >= 0) and [tuple(int(c[f]) for c in table) for f in found[:50]] == tuples[:50]
        assert np.all(match_rows(table, [c + (2 * scale + 5) for c in cols]) == -1)


@pytest.mark.parametrize("n_atoms", [32, 64, 300])
def test_edges_and_partners_on_large_cells(n_atoms):
    rec = _record(n_atoms)
    assert rec.n_atoms == n_atoms
    rec.validate(hermitian_tol=1e-12)
    e = np.arange(rec.n_edges)
    assert np.array_equal(rec.find_edges(rec.edge_index[:, 0], rec.edge_index[:, 1], rec.edge_R), e)
    rev = rec.reverse_edges
    assert np.array_equal(rec.edge_index[rev], rec.edge_index[:, ::-1])
    assert np.array_equal(rec.edge_R[rev], -rec.edge_R)
    again = build_record(rec.numbers, rec.cell, rec.positions, rec.pbc, rec.basis, {"S": elements_of(rec, "S")}, False)
    assert np.array_equal(again.blocks["S"], rec.blocks["S"])


@pytest.mark.parametrize("n_atoms", [32, 64, 300])
def test_attach_h0_compares_every_overlap_element(n_atoms):
    """One changed overlap element anywhere must be found (before, colliding keys skipped most)."""
    rec = _record(n_atoms)
    h0 = rec.with_blocks(H=rec.blocks["S"].copy())
    rec = rec.with_blocks(H=rec.blocks["S"] * 2.0)
    assert "H0" in attach_h0(rec, h0).blocks
    rng = np.random.default_rng(n_atoms)
    for k in rng.choice(rec.blocks["S"].size, 5, replace=False):
        S = h0.blocks["S"].copy()
        S[k] += 1e-3
        with pytest.raises(FormatError, match="overlap of the H0 calculation differs"):
            attach_h0(rec, h0.with_blocks(S=S))


def test_abacus_nspin4_overlap_check_on_64_atoms():
    """The nspin-4 reader's up/down overlap comparison (private helper) on a 64-atom cell."""
    from nextham.io.abacus import _spin_diagonal_overlap

    rec = _record(64)
    el = elements_of(rec, "S")
    two = lambda a: np.concatenate([a, a])  # noqa: E731
    s = np.repeat([0, 1], len(el.value))
    v = two(el.value).astype(np.complex128)
    args = (two(el.R), two(el.i), two(el.j), two(el.row), two(el.col), s, s)
    csr = SimpleNamespace(path="SR.csr")
    _spin_diagonal_overlap(csr, *args, v.copy())
    v[-1] += 1e-3  # one spin-down element differs, at the largest key
    with pytest.raises(FormatError, match="differs between spin up and spin down"):
        _spin_diagonal_overlap(csr, *args, v)
