"""DeePTB data folders both ways, on DeePTB's own Si64 example.

Fixture: ../shared/fixtures/deeptb/data (deepmodeling/DeePTB examples/e3/data, commit 86c60c7, LGPL-3.0): one
trajectory ``Si64.0`` (64 Si, basis 1s1p, ABACUS data, eV, float32 blocks ``i_j_Rx_Ry_Rz`` in group "0").
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from nextham.basis.rotations import wigner_D
from nextham.blocks.h5io import read_record
from nextham.blocks.record import hermitian_error
from nextham.cli import convert
from nextham.io import FormatError, detect_format, read
from nextham.io.deeptb import read_deeptb, read_deeptb_all, write_deeptb
from nextham.physics.bands import eigenvalues
from nextham.testing.fixtures import require_fixtures
from io_helpers import assert_records_equal, bloch_dense

K_TEST = np.array([[0, 0, 0], [0.5, 0, 0], [0.25, 0.25, 0.25], [0.13, -0.37, 0.41]])


@pytest.fixture(scope="module")
def si64_root() -> Path:
    return require_fixtures("deeptb", "data")


@pytest.fixture(scope="module")
def si64(si64_root):
    return read_deeptb(si64_root)


def test_si64_reads(si64_root, si64):
    assert detect_format(si64_root) == "deeptb" and detect_format(si64_root / "Si64.0") == "deeptb"
    assert si64.n_atoms == 64 and si64.basis["Si"].spec() == "1s1p" and not si64.spinful
    with h5py.File(si64_root / "Si64.0/hamiltonians.h5") as h5:
        n_h = len(h5["0"])
    assert si64.n_edges == n_h == 9434  # H reaches farther than S (5562 blocks)
    assert hermitian_error(si64, "S") == 0.0 and hermitian_error(si64, "H") == 0.0
    for k in K_TEST:
        assert np.linalg.eigvalsh(bloch_dense(si64, "S", k)).min() > 0.05
    np.testing.assert_array_equal(si64.cell, np.loadtxt(si64_root / "Si64.0/cell.dat"))


def _overlap_axis_errors(record, p_order) -> tuple[float, float]:
    """Two-centre test of the orbital convention on S (exact for an overlap, whatever the geometry):
    a rotation Q about the bond axis leaves every S block invariant, D(Q) S D(Q)^T = S, and the s-p row
    points along the bond. ``p_order``: how the file's p components are read (nextham: m = -1, 0, 1 = y, z, x)."""
    rng = np.random.default_rng(3)
    perm = np.r_[0, 1 + np.array(p_order)]
    worst_rot, worst_dir = 0.0, 0.0
    vec = record.edge_vectors
    # blocks above 1e-4: far tails are cut element by element by ABACUS (e.g. a lone 1.7e-10 entry)
    big = np.array([np.abs(record.block("S", e)).max() > 1e-4 for e in range(record.n_edges)])
    for e in np.flatnonzero(~record.onsite_mask & big):
        d = vec[e] / np.linalg.norm(vec[e])
        Q = Rotation.from_rotvec(d * rng.uniform(0.3, 2.8)).as_matrix()
        D = np.zeros((4, 4))
        D[0, 0] = 1.0
        D[1:, 1:] = wigner_D(1, Q)
        B = record.block("S", e)[np.ix_(perm, perm)]
        worst_rot = max(worst_rot, np.abs(D @ B @ D.T - B).max() / np.abs(B).max())
        sp = B[0, 1:]
        if np.linalg.norm(sp) > 1e-3:
            yzx = d[[1, 2, 0]]
            worst_dir = max(worst_dir, 1 - abs(sp @ yzx) / np.linalg.norm(sp))
    return worst_rot, worst_dir


def test_deeptb_orbital_convention_is_ours(si64):
    """DeePTB's m order and signs equal nextham's: S blocks are invariant under rotations about their bond
    (Wigner D of nextham) to float32 rounding, and the s-p overlap points along the bond in (y, z, x) order.
    Negative control: reading p as (x, y, z) breaks both by orders of magnitude."""
    rot, direction = _overlap_axis_errors(si64, [0, 1, 2])
    assert rot < 1e-5 and direction < 1e-6, (rot, direction)
    rot_bad, dir_bad = _overlap_axis_errors(si64, [2, 0, 1])  # file's (y, z, x) read as (x, y, z)
    assert rot_bad > 1e-2 and dir_bad > 1e-2


def test_si64_round_trip_bit_for_bit(si64_root, si64, tmp_path):
    out = write_deeptb(si64, tmp_path / "Si64.0")
    for name in ("hamiltonians.h5", "overlaps.h5"):
        with h5py.File(si64_root / "Si64.0" / name) as a, h5py.File(out / name) as b:
            assert set(a["0"]) == set(b["0"]), name
            for key in a["0"]:
                x, y = a["0"][key], b["0"][key]
                assert x.dtype == y.dtype == np.float32 and np.array_equal(x[()], y[()]), (name, key)
    back = read_deeptb(out)
    assert_records_equal(si64, back, exact=True)
    e_in, _ = eigenvalues(si64, K_TEST)
    e_out, _ = eigenvalues(back, K_TEST)
    assert np.array_equal(e_in, e_out)


def _records():
    """Real records of other codes: ABACUS nspin 1 and 4 (*_nao.csr), DeepH MoTe2, and the sp3s* model
    whose shells (s, p, s*) are not sorted by l."""
    from nextham.io.abacus import read_abacus
    from nextham.tightbinding.examples import silicon_vogl

    nao = require_fixtures("abacus_nao")
    yield "abacus Si2", read_abacus(nao / "scf_out_hsr", orbital_dirs=[nao / "orbitals"])
    yield "abacus C nspin 4", read_abacus(nao / "scf_out_hsr_spin4", orbital_dirs=[nao / "orbitals"])
    yield "deeph MoTe2", read(require_fixtures("deeph", "MoTe2_new"))
    yield "sp3s* SOC", silicon_vogl(spinful=True)


def test_records_exported_to_deeptb_keep_their_eigenvalues(tmp_path):
    for name, rec in _records():
        out = write_deeptb(rec, tmp_path / name.replace(" ", "_"))
        back = read_deeptb(out)
        assert back.spinful == rec.spinful
        e_ref, _ = eigenvalues(rec, K_TEST)
        e_back, _ = eigenvalues(back, K_TEST)
        assert np.abs(e_back - e_ref).max() < 1e-8, name
        assert back.fermi_energy_eV == rec.fermi_energy_eV
        # the full range: every bond of the record with a non-zero block is written
        assert back.edge_lengths.max() == pytest.approx(rec.edge_lengths[
            np.array([np.any(rec.block("H", e)) or np.any(rec.block("S", e)) for e in range(rec.n_edges)])].max())


@pytest.fixture
def small_trajectory(tmp_path) -> Path:
    """A small trajectory written by us from a real ABACUS record (Si2, *_nao.csr), to edit quickly."""
    from nextham.io.abacus import read_abacus

    nao = require_fixtures("abacus_nao")
    rec = read_abacus(nao / "scf_out_hsr", orbital_dirs=[nao / "orbitals"])
    return write_deeptb(rec, tmp_path / "data" / "Si2.0")


def test_all_frames_of_a_trajectory(small_trajectory):
    """Two frames (0-based groups, info.json in the parent), and DeePTB's older 1-based groups."""
    traj = small_trajectory
    pos = np.loadtxt(traj / "positions.dat")
    np.savetxt(traj / "positions.dat", np.concatenate([pos, pos + 0.01]))
    for name in ("hamiltonians.h5", "overlaps.h5"):
        with h5py.File(traj / name, "a") as h5:
            h5.copy("0", "1")
            for key in list(h5["1"])[:1]:
                h5["1"][key][...] *= 2
    (traj / "info.json").unlink()
    (traj.parent / "info.json").write_text('{"nframes": 2, "pos_type": "cart", "pbc": true}')
    frames = read_deeptb_all(traj.parent)
    assert [n for n, _ in frames] == ["Si2.0/0", "Si2.0/1"]
    np.testing.assert_allclose(frames[1][1].positions - frames[0][1].positions, 0.01, atol=1e-12)
    assert not np.array_equal(frames[0][1].blocks["H"], frames[1][1].blocks["H"])
    with pytest.raises(FormatError, match="holds 2 frames"):
        read_deeptb(traj.parent)
    assert_records_equal(read_deeptb(traj, frame=1), frames[1][1])
    # 1-based groups ("1", "2") as DeePTB's ABACUS parser once wrote them
    for name in ("hamiltonians.h5", "overlaps.h5"):
        with h5py.File(traj / name, "a") as h5:
            h5.move("1", "2")
            h5.move("0", "1")
    again = read_deeptb_all(traj.parent)
    assert all(np.array_equal(a[1].blocks["H"], b[1].blocks["H"]) for a, b in zip(frames, again))
    # the CLI converts every frame: DST/<trajectory>_<frame>.h5
    out = traj.parent.parent / "records"
    res = CliRunner().invoke(_app(), ["convert", str(traj.parent), str(out)])
    assert res.exit_code == 0, res.output
    for k in (0, 1):
        assert_records_equal(read_record(out / f"Si2.0_{k}.h5"), frames[k][1])


def test_missing_onsite_block_is_an_error(small_trajectory):
    with h5py.File(small_trajectory / "hamiltonians.h5", "a") as h5:
        del h5["0"]["1_1_0_0_0"]
    with pytest.raises(FormatError, match=r"hamiltonians.h5: no on-site H block \(R = 0\) for atom 1"):
        read_deeptb(small_trajectory)


def _app():
    app = typer.Typer()
    convert.register(app)
    app.command("noop")(lambda: None)
    return app


def test_cli_both_ways(small_trajectory, tmp_path):
    ref = read_deeptb(small_trajectory)
    res = CliRunner().invoke(_app(), ["convert", str(small_trajectory.parent), str(tmp_path / "si.h5")])
    assert res.exit_code == 0, res.output
    assert_records_equal(read_record(tmp_path / "si.h5"), ref)
    res = CliRunner().invoke(_app(), ["convert", str(tmp_path / "si.h5"), str(tmp_path / "dptb"), "--to", "deeptb"])
    assert res.exit_code == 0, res.output
    assert_records_equal(read_deeptb(tmp_path / "dptb"), ref)


@pytest.mark.slow
def test_cli_si64_both_ways(si64_root, si64, tmp_path):
    res = CliRunner().invoke(_app(), ["convert", str(si64_root), str(tmp_path / "si64.h5")])
    assert res.exit_code == 0, res.output
    assert_records_equal(read_record(tmp_path / "si64.h5"), si64)
    res = CliRunner().invoke(_app(), ["convert", str(tmp_path / "si64.h5"), str(tmp_path / "dptb"), "--to", "deeptb"])
    assert res.exit_code == 0, res.output
    assert_records_equal(read_deeptb(tmp_path / "dptb"), si64)
