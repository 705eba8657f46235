"""Structure sets: reproducible, physically spaced, covering the 67 GPAW elements; file reading."""

from ase.build import bulk
from ase.io import write
from ase.neighborlist import neighbor_list

from nextham.data.structures import (GPAW_ELEMENTS, PROTOTYPES, coverage_set, gather_inputs, prototype_set,
                                     read_structures)


def test_67_elements():
    assert len(GPAW_ELEMENTS) == 67 and "Tc" not in GPAW_ELEMENTS
    assert GPAW_ELEMENTS[0] == "H" and GPAW_ELEMENTS[-1] == "Bi" and "La" not in GPAW_ELEMENTS


def test_prototype_set_is_reproducible_and_sane():
    a, b = prototype_set(40, seed=3), prototype_set(40, seed=3)
    assert [x.key for x in a] == [x.key for x in b]
    assert [x.key for x in prototype_set(40, seed=4)] != [x.key for x in a]
    for x in a:
        assert 1 <= len(x.atoms) <= 8
        d = neighbor_list("d", x.atoms, 1.5)
        assert len(d) == 0 or d.min() > 0.7, x.name
    protos = {x.name.split("-")[3] for x in prototype_set(300, seed=0)}
    assert set(PROTOTYPES) <= protos


def test_coverage_set():
    cs = coverage_set()
    assert len(cs) == 67 and all(len(x.atoms) <= 2 for x in cs)


def test_read_files_and_bad_files(tmp_path):
    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.43))
    write(tmp_path / "POSCAR", bulk("GaAs", "zincblende", a=5.65), format="vasp")
    write(tmp_path / "two.extxyz", [bulk("Cu"), bulk("Al")])
    (tmp_path / "empty.cif").write_text("")
    (tmp_path / "junk.xyz").write_text("garbage\n")
    items = read_structures([tmp_path, tmp_path / "missing.cif"])
    ok = [x for x in items if x.error is None]
    bad = {x.name.split("/")[-1]: x.error for x in items if x.error}
    assert len(ok) == 4
    assert "empty file" in bad["empty.cif"] and "cannot read" in bad["junk.xyz"]
    assert "no such file" in bad["missing.cif"]
    assert len(gather_inputs(["set:prototypes:3:1", str(tmp_path / "si.cif")])) == 4
