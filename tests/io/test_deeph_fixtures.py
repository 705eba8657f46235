"""DeepH readers/writers on the MoTe2 fixtures (kYangLi/DeepH-dock examples/convert/deeph, commit 49a94b0,
GPL-3.0): the legacy and new folders describe the same data and convert into each other exactly."""

from __future__ import annotations

import json

import h5py
import numpy as np

from nextham.io import read, write
from nextham.io.deeph_legacy import read_deeph_legacy
from nextham.io.deeph_new import read_deeph
from io_helpers import assert_records_equal, symmetry_error, symmetry_errors, symmetry_operations


def test_legacy_and_new_fixtures_give_the_same_record(mote2_legacy_dir, mote2_new_dir):
    a, b = read_deeph_legacy(mote2_legacy_dir), read_deeph(mote2_new_dir)
    assert_records_equal(a, b, exact=True, geom_atol=1e-14)
    assert a.fermi_energy_eV == -4.1934752874697425
    assert a.basis["Mo"].ls == (0, 0, 0, 1, 1, 2, 2) and a.n_orbitals == 57
    a.validate(hermitian_tol=1e-8)


def test_new_to_legacy_reproduces_the_legacy_fixture(mote2_new_dir, mote2_legacy_dir, tmp_path):
    write(read(mote2_new_dir), tmp_path / "legacy", "deeph-legacy")
    for fname in ("hamiltonians.h5", "overlaps.h5"):
        with h5py.File(mote2_legacy_dir / fname) as ref, h5py.File(tmp_path / "legacy" / fname) as out:
            assert set(ref.keys()) == set(out.keys())
            for key in ref.keys():
                assert np.array_equal(ref[key][()], out[key][()]), key
    np.testing.assert_allclose(np.loadtxt(tmp_path / "legacy" / "lat.dat"), np.loadtxt(mote2_legacy_dir / "lat.dat"),
                               rtol=0, atol=1e-14)
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "legacy" / "element.dat"),
                                  np.loadtxt(mote2_legacy_dir / "element.dat"))
    assert (tmp_path / "legacy" / "orbital_types.dat").read_text().split() == \
        (mote2_legacy_dir / "orbital_types.dat").read_text().split()


def test_legacy_to_new_reproduces_the_new_fixture(mote2_legacy_dir, mote2_new_dir, tmp_path):
    write(read(mote2_legacy_dir), tmp_path / "new", "deeph")
    for fname in ("hamiltonian.h5", "overlap.h5"):
        with h5py.File(mote2_new_dir / fname) as ref, h5py.File(tmp_path / "new" / fname) as out:
            ref_pairs, out_pairs = ref["atom_pairs"][()], out["atom_pairs"][()]
            # same set of blocks, each bitwise equal (the block order may differ)
            key = lambda p: [tuple(x) for x in p.tolist()]
            assert sorted(key(ref_pairs)) == sorted(key(out_pairs))
            pos = {k: e for e, k in enumerate(key(out_pairs))}
            for e, k in enumerate(key(ref_pairs)):
                r0, r1 = ref["chunk_boundaries"][e], ref["chunk_boundaries"][e + 1]
                o = pos[k]
                o0, o1 = out["chunk_boundaries"][o], out["chunk_boundaries"][o + 1]
                assert np.array_equal(ref["entries"][r0:r1], out["entries"][o0:o1])
    info_ref = json.loads((mote2_new_dir / "info.json").read_text())
    info_out = json.loads((tmp_path / "new" / "info.json").read_text())
    for k in ("atoms_quantity", "orbits_quantity", "spinful", "fermi_energy_eV", "elements_orbital_map"):
        assert info_ref[k] == info_out[k], k


def test_mote2_orbital_convention_by_symmetry(mote2_new_dir):
    """D3h MoTe2 (12 operations): S blocks map into each other with D^l for s, p, d to 1e-9; H to the
    OpenMX real-space-grid accuracy (~10 meV), while a wrong table is off by O(1)."""
    rec = read_deeph(mote2_new_dir)
    ops = symmetry_operations(rec)
    assert len(ops) == 12
    errs, _ = symmetry_errors(rec, "S", {"s": [0], "p": [1], "d": [2], "all": None}, ops=ops)
    assert max(errs.values()) < 1e-9, errs
    assert symmetry_error(rec, "H", ops=ops)[0] < 0.05
    # negative control: the legacy data read without the OpenMX -> m = -l..l permutation
    import nextham.io.deeph_legacy as dl
    from nextham.io import assemble
    real = assemble.orbital_tables
    try:
        dl.orbital_tables = lambda numbers, basis, code: real(numbers, basis, "deeph")
        wrong = dl.read_deeph_legacy(mote2_new_dir.parent / "MoTe2_legacy")
    finally:
        dl.orbital_tables = real
    assert symmetry_error(wrong, "S", ls_filter=[1, 2], ops=ops)[0] > 1e-2
