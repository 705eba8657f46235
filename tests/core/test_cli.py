"""`nextham eig`, `bands`, `info` and clear errors, through typer's test runner."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nextham.blocks.h5io import write_record
from nextham.cli.main import app
from nextham.physics.bands import eigenvalues
from nextham.tightbinding import silicon_vogl

runner = CliRunner()


@pytest.fixture(scope="module")
def record_file(tmp_path_factory):
    rec = silicon_vogl(spinful=True).replace(fermi_energy_eV=0.5)
    rec = rec.with_blocks(H0=rec.blocks["H"] * 1.05)
    return write_record(tmp_path_factory.mktemp("rec") / "si.h5", rec), rec


def test_eig_json(record_file, tmp_path):
    path, rec = record_file
    res = runner.invoke(app, ["eig", str(path), "--k", "0 0 0", "--k", "0.5 0 0.5", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["kpoints"] == [[0, 0, 0], [0.5, 0, 0.5]]
    ref, _ = eigenvalues(rec, np.array(out["kpoints"]))
    assert np.allclose(out["eigenvalues_eV"], ref, atol=1e-12)
    kfile = tmp_path / "k.txt"
    kfile.write_text("# kx ky kz\n0 0 0\n0.25 0.25 0\n")
    res = runner.invoke(app, ["eig", str(path), "--kpoints", str(kfile), "--which", "H0", "--json"])
    assert res.exit_code == 0, res.output
    ref0, _ = eigenvalues(rec, np.array([[0, 0, 0], [0.25, 0.25, 0]]), which="H0")
    assert np.allclose(json.loads(res.output)["eigenvalues_eV"], ref0)


def test_bands_and_info(record_file, tmp_path):
    path, _ = record_file
    res = runner.invoke(app, ["bands", str(path), "--out", str(tmp_path / "b.png"), "--json", str(tmp_path / "b.json"),
                              "--with-h0"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data) == 2 and data[0]["special_points"][0][1] == "Γ"
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0 and json.loads(res.output)["n_orbitals"] == 10


def test_clear_errors(record_file, tmp_path):
    path, _ = record_file
    res = runner.invoke(app, ["eig", str(tmp_path / "missing.h5"), "--k", "0 0 0"])
    assert res.exit_code == 2 and "missing.h5: no such file" in res.output
    res = runner.invoke(app, ["eig", str(path), "--k", "0 0"])
    assert res.exit_code == 2 and "three fractional coordinates" in res.output
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    res = runner.invoke(app, ["eig", str(bad), "--k", "0 0 0"])
    assert res.exit_code == 2 and "bad.h5: not a readable HDF5 file" in res.output
    res = runner.invoke(app, ["eig", str(path), "--k", "0 0 0", "--which", "H7"])
    assert res.exit_code == 2 and "--which must be H or H0" in res.output
