"""sisl bridge: records to ``sisl.Hamiltonian`` and back, and ``--to tshs``; sisl's own ``eigh`` against ours.

Records: ABACUS Si2 nspin 1 and C nspin 4 (../shared/fixtures/abacus_nao, abacus-develop tests/03_NAO_multik,
LGPL-3.0), DeepH MoTe2 (DeepH-dock commit 49a94b0), and the built-in sp3s* silicon with spin-orbit coupling.
"""

from __future__ import annotations

import numpy as np
import pytest

sisl = pytest.importorskip("sisl", reason="sisl is the optional extra nextham[sisl]")

from nextham.blocks.record import StructureRecord
from nextham.io import read, write
from nextham.io.abacus import read_abacus
from nextham.io.sisl_bridge import from_sisl, to_sisl
from nextham.physics.bands import eigenvalues
from nextham.testing.fixtures import require_fixtures
from nextham.tightbinding.examples import silicon_vogl
from io_helpers import assert_records_equal, bloch_dense

KPTS = np.random.default_rng(11).uniform(-0.5, 0.5, size=(6, 3))


def _hermitized(rec: StructureRecord) -> StructureRecord:
    """MoTe2's OpenMX H is Hermitian to 9e-9 eV only; eigen-solvers read different triangles of a
    non-Hermitian H(k) (ours averages H and H^dagger, LAPACK takes one triangle), so compare on (H + H^dagger)/2."""
    from nextham.blocks.record import conjugate_transpose_blocks

    return rec.with_blocks(**{n: 0.5 * (rec.blocks[n] + conjugate_transpose_blocks(rec, n)) for n in rec.blocks})


def _cases():
    nao = require_fixtures("abacus_nao")
    return {
        "abacus Si2": read_abacus(nao / "scf_out_hsr", orbital_dirs=[nao / "orbitals"]),
        "abacus C nspin 4": read_abacus(nao / "scf_out_hsr_spin4", orbital_dirs=[nao / "orbitals"]),
        "deeph MoTe2": _hermitized(read(require_fixtures("deeph", "MoTe2_new"))),
        "sp3s* without SOC": silicon_vogl(),
        "sp3s* with SOC": silicon_vogl(spinful=True),
    }


@pytest.fixture(scope="module")
def cases():
    return _cases()


@pytest.mark.parametrize("name", ["abacus Si2", "abacus C nspin 4", "deeph MoTe2", "sp3s* without SOC", "sp3s* with SOC"])
def test_sisl_eigh_equals_ours(cases, name):
    rec = cases[name]
    H = to_sisl(rec)
    assert H.spin.is_spinorbit == rec.spinful and not H.orthogonal
    ours, _ = eigenvalues(rec, KPTS)
    theirs = np.array([H.eigh(k) for k in KPTS])
    assert np.abs(theirs - ours).max() < 1e-8


@pytest.mark.parametrize("name", ["abacus Si2", "sp3s* with SOC"])
def test_sisl_bloch_matrix_element_by_element(cases, name):
    """sisl's H(k) (gauge "lattice", spin interleaved) equals ours (spin-major) up to SIESTA's (-1)^m signs:
    the phase sign exp(+2 pi i k.R) and the spin-orbit component layout are the same, not only the spectrum."""
    rec = cases[name]
    H = to_sisl(rec)
    n = rec.n_orbitals
    from nextham.io.sisl_bridge import _siesta_sign

    sign = _siesta_sign(rec)
    for k in KPTS[:3]:
        ours = bloch_dense(rec, "H", k)
        theirs = H.Hk(k, gauge="lattice").toarray()
        if rec.spinful:  # sisl row 2 o + s -> ours s n + o
            order = (np.arange(2)[:, None] * 1 + 2 * np.arange(n)[None, :]).ravel()
            theirs = theirs[np.ix_(order, order)]
            sign2 = np.concatenate([sign, sign])
        else:
            sign2 = sign
        assert np.abs(theirs * np.outer(sign2, sign2) - ours).max() < 1e-12
        Sk = H.Sk(k, gauge="lattice").toarray()
        Sk = Sk[::2, ::2] if rec.spinful else Sk
        assert np.abs(Sk * np.outer(sign, sign) - bloch_dense(rec, "S", k)).max() < 1e-12


@pytest.mark.parametrize("name", ["abacus Si2", "abacus C nspin 4", "deeph MoTe2", "sp3s* with SOC"])
def test_round_trip_through_sisl(cases, name):
    rec = cases[name]
    back = from_sisl(to_sisl(rec), fermi_energy_eV=rec.fermi_energy_eV)
    assert back.spinful == rec.spinful
    ours, _ = eigenvalues(rec, KPTS)
    again, _ = eigenvalues(back, KPTS)
    assert np.abs(again - ours).max() < 1e-8
    if name.startswith("abacus"):  # canonical edge order: the same record, bit for bit
        assert_records_equal(back, rec)


def test_sisl_real_spin_orbit_layout_is_read(cases):
    """sisl's 8-component real spin-orbit layout (what a .TSHS of SIESTA gives) reads like the complex one."""
    rec = cases["sp3s* with SOC"]
    H_real = to_sisl(rec).astype(np.float64)
    assert H_real.spin.size(H_real.dtype) == 8
    back = from_sisl(H_real)
    ours, _ = eigenvalues(rec, KPTS)
    again, _ = eigenvalues(back, KPTS)
    assert np.abs(again - ours).max() < 1e-8


@pytest.mark.parametrize("name", ["abacus Si2", "sp3s* with SOC"])
def test_tshs_written_and_read_by_sisl(cases, name, tmp_path):
    rec = cases[name]
    path = write(rec, tmp_path / "out.TSHS", "tshs")
    H = sisl.get_sile(str(path)).read_hamiltonian()
    ours, _ = eigenvalues(rec, KPTS)
    theirs = np.array([H.eigh(k) for k in KPTS])
    assert np.abs(theirs - ours).max() < 1e-8


def test_cli_to_tshs(tmp_path):
    import typer
    from typer.testing import CliRunner

    from nextham.cli import convert

    app = typer.Typer()
    convert.register(app)
    app.command("noop")(lambda: None)
    nao = require_fixtures("abacus_nao")
    res = CliRunner().invoke(app, ["convert", str(nao / "scf_out_hsr"), str(tmp_path / "si.TSHS"), "--to", "tshs",
                                   "--orbital-dir", str(nao / "orbitals")])
    assert res.exit_code == 0, res.output
    H = sisl.get_sile(str(tmp_path / "si.TSHS")).read_hamiltonian()
    rec = read_abacus(nao / "scf_out_hsr", orbital_dirs=[nao / "orbitals"])
    assert np.abs(np.array([H.eigh(k) for k in KPTS]) - eigenvalues(rec, KPTS)[0]).max() < 1e-8
