"""STRU in its forms, running_scf.log geometry/basis fallback, orbital-file headers.

The reference geometry is the Si2 STRU of deepmodeling/abacus-develop tests/integrate/207_NO_KP_OH2
(../shared/fixtures/abacus/Si2_nspin1, commit 729059f); the other forms are rewritten from it.
"""

from __future__ import annotations

import numpy as np
import pytest

from nextham.io.abacus import read_abacus
from nextham.io.abacus_stru import (BOHR_ANGSTROM, lattice_from_latname, read_orbital_header, read_running_log,
                                    read_stru)
from nextham.io.errors import FormatError

A = 10.2  # Bohr


def _stru(latblock: str, mode: str, coords: list[str]) -> str:
    return (f"ATOMIC_SPECIES\nSi 14 Si.upf upf201\n\nNUMERICAL_ORBITAL\nSi_gga_8au_60Ry_2s2p1d.orb\n\n"
            f"LATTICE_CONSTANT\n{A}  // Bohr\n\n{latblock}\nATOMIC_POSITIONS\n{mode}\n\nSi // label\n0.0 // magnetism\n"
            f"2 // number\n" + "\n".join(coords) + "\n")


def test_fixture_stru(si2_dir):
    g = read_stru(si2_dir / "STRU")
    a = A * BOHR_ANGSTROM
    np.testing.assert_allclose(g.cell, a * np.array([[0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]), atol=1e-14)
    np.testing.assert_allclose(g.positions[1], 0.25 * a * np.ones(3), atol=1e-14)
    assert g.orbital_files == ["Si_gga_8au_60Ry_2s2p1d.orb"] and list(g.numbers) == [14, 14]


@pytest.mark.parametrize("mode,coords", [
    ("Direct", ["0 0 0 1 1 1", "0.25 0.25 0.25 1 1 1"]),
    ("Cartesian", ["0 0 0", "0.25 0.25 0.25 m 1 1 1 mag 0.0"]),
    ("Cartesian_au", ["0 0 0", f"{0.25 * A} {0.25 * A} {0.25 * A}"]),
    ("Cartesian_angstrom", ["0 0 0", " ".join([repr(0.25 * A * BOHR_ANGSTROM)] * 3)]),
])
def test_position_modes_agree(tmp_path, mode, coords):
    p = tmp_path / "STRU"
    p.write_text(_stru("LATTICE_VECTORS\n0.5 0.5 0.0\n0.5 0.0 0.5\n0.0 0.5 0.5\n", mode, coords))
    g = read_stru(p)
    np.testing.assert_allclose(g.positions[1], 0.25 * A * BOHR_ANGSTROM * np.ones(3), atol=1e-12)


def test_centered_modes(tmp_path):
    p = tmp_path / "STRU"
    p.write_text(_stru("LATTICE_VECTORS\n1 0 0\n0 1 0\n0 0 2\n", "Cartesian_angstrom_center_xy", ["0 0 0", "0 0 1"]))
    g = read_stru(p)
    a = A * BOHR_ANGSTROM
    np.testing.assert_allclose(g.positions[0], [a / 2, a / 2, 0], atol=1e-12)
    p.write_text(_stru("LATTICE_VECTORS\n1 0 0\n0 1 0\n0 0 2\n", "Cartesian_angstrom_center_xyz", ["0 0 0", "0 0 1"]))
    np.testing.assert_allclose(read_stru(p).positions[1], [a / 2, a / 2, a + 1], atol=1e-12)


def test_latname_with_lattice_parameters(tmp_path):
    p = tmp_path / "STRU"
    p.write_text(_stru("", "Direct", ["0 0 0", "0.25 0.25 0.25"]))
    g = read_stru(p, latname="fcc")
    assert np.isclose(abs(np.linalg.det(g.cell)), (A * BOHR_ANGSTROM) ** 3 / 4)
    p.write_text(_stru("LATTICE_PARAMETERS\n1.6\n", "Direct", ["0 0 0", "0.5 0.5 0.5"]))
    g = read_stru(p, latname="hexagonal")
    a = A * BOHR_ANGSTROM
    np.testing.assert_allclose(g.cell, a * np.array([[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, 1.6]]), atol=1e-12)
    with pytest.raises(FormatError, match="LATTICE_VECTORS together with latname"):
        p.write_text(_stru("LATTICE_VECTORS\n1 0 0\n0 1 0\n0 0 1\n", "Direct", ["0 0 0", "0.5 0.5 0.5"]))
        read_stru(p, latname="sc")


@pytest.mark.parametrize("latname,params", [("sc", []), ("fcc", []), ("bcc", []), ("hexagonal", [1.5]),
                                            ("trigonal", [0.3]), ("st", [1.4]), ("bct", [1.4]), ("so", [1.2, 1.5]),
                                            ("baco", [1.2, 1.5]), ("fco", [1.2, 1.5]), ("bco", [1.2, 1.5]),
                                            ("sm", [1.2, 1.5, 0.2]), ("bacm", [1.2, 1.5, 0.2]),
                                            ("triclinic", [1.2, 1.5, 0.2, 0.1, 0.3])])
def test_every_latname_gives_a_proper_cell(latname, params):
    cell = lattice_from_latname(latname, params)
    assert cell.shape == (3, 3) and abs(np.linalg.det(cell)) > 1e-3


def test_orbital_header(orbitals_dir):
    eb = read_orbital_header(orbitals_dir / "Si_gga_8au_60Ry_2s2p1d.orb")
    assert eb.symbol == "Si" and eb.ls == (0, 0, 1, 1, 2)


LOG = """
                              ABACUS v3.x
 READING UNITCELL INFORMATION
                                    ntype = 1
                  lattice constant (Bohr) = 10.2
              lattice constant (Angstrom) = {a0}

 READING ATOM TYPE 1
                               atom label = Si
                      L=0, number of zeta = 2
                      L=1, number of zeta = 2
                      L=2, number of zeta = 1
             number of atom for this type = 2

                        TOTAL ATOM NUMBER = 2
 DIRECT COORDINATES
    atom                   x                   y                   z     mag                  vx                  vy                  vz
     taud_Si1        0.0000000000        0.0000000000        0.0000000000  0.0000        0.0000000000        0.0000000000        0.0000000000
     taud_Si2        0.2500000000        0.2500000000        0.2500000000  0.0000        0.0000000000        0.0000000000        0.0000000000

 Lattice vectors: (Cartesian coordinate: in unit of a_0)
             +0.5                  +0.5                     +0
             +0.5                     +0                  +0.5
               +0                  +0.5                  +0.5
                                    nspin = 1
 EFERMI = 6.4321 eV
"""


def test_geometry_and_basis_from_running_log(si2_copy):
    a0 = A * BOHR_ANGSTROM
    out = si2_copy / "OUT.autotest"
    out.mkdir()
    for f in ("data-HR-sparse_SPIN0.csr", "data-SR-sparse_SPIN0.csr"):
        (si2_copy / f).rename(out / f)
    (out / "running_scf.log").write_text(LOG.format(a0=repr(a0)))
    info = read_running_log(out / "running_scf.log")
    assert info.basis == {"Si": [0, 0, 1, 1, 2]} and info.nspin == 1 and info.fermi_energy_eV == 6.4321
    ref = read_abacus(si2_copy)
    (si2_copy / "STRU").unlink()
    for f in si2_copy.glob("*.orb"):
        f.unlink()
    rec = read_abacus(si2_copy)
    assert rec.metadata["source"]["geometry_source"] == "running_scf.log"
    assert rec.metadata["source"]["basis_source"] == "running_scf.log"
    assert rec.fermi_energy_eV == 6.4321 and ref.fermi_energy_eV == 6.4321
    np.testing.assert_allclose(rec.cell, ref.cell, atol=1e-12)
    np.testing.assert_allclose(rec.positions, ref.positions, atol=1e-12)
    assert np.array_equal(rec.blocks["H"], ref.blocks["H"])


def test_basis_from_orbital_file_name_when_files_are_missing(si2_dir):
    rec = read_abacus(si2_dir)  # the .orb files are not next to the fixture
    assert rec.basis["Si"].spec() == "2s2p1d"
    assert rec.metadata["source"]["basis_source"].startswith("orbital file names")
