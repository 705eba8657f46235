"""`nextham convert` on the shared fixtures (ABACUS: abacus-develop commit 729059f; DeepH MoTe2: DeepH-dock
commit 49a94b0): one structure, a folder of many in parallel with broken ones listed, the --h0 option."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from nextham.blocks.h5io import read_record
from nextham.io import read
from io_helpers import writable_copy
from io_helpers import assert_records_equal


def test_convert_one_abacus_to_record(app, si2_dir, orbitals_dir, tmp_path):
    res = CliRunner().invoke(app, ["convert", str(si2_dir), str(tmp_path / "si.h5"), "--orbital-dir", str(orbitals_dir),
                                   "--h0", str(si2_dir)])
    assert res.exit_code == 0, res.output
    rec = read_record(tmp_path / "si.h5")
    assert set(rec.blocks) == {"S", "H", "H0"}
    assert_records_equal(rec, read(si2_dir, orbital_dirs=[orbitals_dir], h0=si2_dir))


def test_convert_between_deeph_formats(app, mote2_legacy_dir, mote2_new_dir, tmp_path):
    res = CliRunner().invoke(app, ["convert", str(mote2_legacy_dir), str(tmp_path / "new"), "--to", "deeph"])
    assert res.exit_code == 0, res.output
    assert_records_equal(read(tmp_path / "new"), read(mote2_new_dir))
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "new"), str(tmp_path / "old"), "--from", "deeph",
                                   "--to", "deeph-legacy"])
    assert res.exit_code == 0, res.output
    assert_records_equal(read(tmp_path / "old"), read(mote2_legacy_dir))


def test_convert_a_folder_of_many(app, si2_dir, c_soc_dir, mote2_legacy_dir, mote2_new_dir, orbitals_dir, tmp_path):
    root = tmp_path / "many"
    for d in (si2_dir, c_soc_dir, mote2_legacy_dir, mote2_new_dir):
        writable_copy(d, root / "set" / d.name)
    broken = writable_copy(c_soc_dir, root / "broken")
    (broken / "data-SR-sparse_SPIN0.csr").unlink()
    f = broken / "data-HR-sparse_SPIN0.csr"
    f.write_bytes(f.read_bytes()[:700])
    shutil.copy(c_soc_dir / "data-SR-sparse_SPIN0.csr", broken / "data-SR-sparse_SPIN0.csr")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a structure")
    res = CliRunner().invoke(app, ["convert", str(root), str(tmp_path / "out"), "--orbital-dir", str(orbitals_dir),
                                   "-j", "2"])
    assert res.exit_code == 1, res.output
    assert "converted 4 of 5 structures" in res.output
    assert "broken" in res.output and "data-HR-sparse_SPIN0.csr" in res.output and "notes" in res.output
    for name in ("Si2_nspin1", "C_soc_nspin4", "MoTe2_legacy", "MoTe2_new"):
        assert (tmp_path / "out" / "set" / f"{name}.h5").is_file()
    assert_records_equal(read_record(tmp_path / "out" / "set" / "MoTe2_new.h5"), read(mote2_new_dir))


def test_bad_options(app, si2_dir, tmp_path):
    res = CliRunner().invoke(app, ["convert", str(si2_dir), str(tmp_path / "x"), "--to", "vasp"])
    assert res.exit_code == 2 and "unknown --to 'vasp'" in res.output and "Traceback" not in res.output
