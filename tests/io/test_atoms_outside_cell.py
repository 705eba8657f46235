"""Readers with atoms outside the cell (fractional coordinates < 0 or >= 1, as in MD snapshots and
many POSCAR/CIF/STRU files): every block must sit on the edge of its geometry
``pos_j + R @ cell - pos_i``, with the positions the file gives.

ABACUS moves every atom into [0, 1) before it computes (``UnitCell::check_dtau``), so its matrix
files are the same whether the STRU holds wrapped positions or not; the reader must relabel R.
DeepH files store positions and R together; the reader must keep both as stored.
Fixtures: ../shared/fixtures/abacus/Si2_nspin1 (deepmodeling/abacus-develop 207_NO_KP_OH2, commit
729059f) and deeph/MoTe2_new (kYangLi/DeepH-dock).
"""

from __future__ import annotations

import numpy as np

from nextham.io.abacus import read_abacus
from nextham.io.deeph_new import read_deeph, write_deeph
from nextham.structure.lattice_shift import translate_atoms
from nextham.testing.geometry import geometric_twin_error

SHIFTS = np.array([[-1, 0, -1], [0, 2, 0]])  # atom 0 by -(a1 + a3), atom 1 by 2 a2


def test_abacus_stru_with_atoms_outside_the_cell(si2_copy):
    ref = read_abacus(si2_copy)
    stru = si2_copy / "STRU"
    text = stru.read_text()
    assert "0.00 0.00 0.00 1 1 1" in text and "0.25 0.25 0.25 1 1 1" in text
    stru.write_text(text.replace("0.00 0.00 0.00 1 1 1", "-1.00 0.00 -1.00 1 1 1")
                    .replace("0.25 0.25 0.25 1 1 1", "0.25 2.25 0.25 1 1 1"))
    rec = read_abacus(si2_copy)
    np.testing.assert_allclose(rec.positions, ref.positions + SHIFTS @ ref.cell, atol=1e-12)
    err = geometric_twin_error(ref, rec, names=("S", "H"))
    assert err == {"S": 0.0, "H": 0.0}, err
    rec.validate()


def test_deeph_keeps_positions_and_translations_as_stored(mote2_new_dir, tmp_path):
    ref = read_deeph(mote2_new_dir)
    moved = translate_atoms(ref, SHIFTS[[0, 1, 1]] * [1, 1, 0])  # in-plane shifts of a monolayer
    back = read_deeph(write_deeph(moved, tmp_path / "moved"))
    np.testing.assert_allclose(back.positions, moved.positions, atol=1e-12)
    names = tuple(n for n in ("S", "H0", "H") if n in ref.blocks)
    err = geometric_twin_error(ref, back, names=names)
    assert max(err.values()) == 0.0, err
