"""Datasets as first-class inputs: DATASET@N everywhere, slices for convert, info of datasets and
models, checksums and recomputation, generate's exit status and settings reuse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from nextham.blocks.h5io import read_record, write_record
from nextham.cli.main import app
from nextham.data.store import DatasetStore
from nextham.physics.bands import eigenvalues

runner = CliRunner()


def ok(args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, f"{args}:\n{res.output}\n{res.exception!r}"
    return res


def test_eig_bands_info_on_dataset_records(dataset, tmp_path):
    with DatasetStore(dataset) as st:
        first, last = st[0], st[-1]
    res = ok(["eig", f"{dataset}@0", "--k", "0 0 0", "--json"])
    ref, _ = eigenvalues(first, np.zeros((1, 3)))
    assert np.allclose(json.loads(res.stdout)["eigenvalues_eV"][0], ref[0][~np.isnan(ref[0])])
    res = ok(["eig", f"{dataset}@-1", "--k", "0 0 0", "--json"])
    ref, _ = eigenvalues(last, np.zeros((1, 3)))
    assert np.allclose(json.loads(res.stdout)["eigenvalues_eV"][0], ref[0][~np.isnan(ref[0])])
    ok(["bands", f"{dataset}@-1", "--out", tmp_path / "b.png"])
    assert (tmp_path / "b.png").stat().st_size > 5000
    info = json.loads(ok(["info", f"{dataset}@1"]).stdout)
    assert info["index"] == 1 and info["source"].endswith("si_1.cif") and info["formula"] == "Si2"
    info = json.loads(ok(["info", dataset, "--per-structure"]).stdout)
    rows = info["structures"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert sorted(r["source"] for r in rows) == [f"si_{i}.cif" for i in range(4)]
    assert all(r["formula"] == "Si2" and len(r["key"]) == 20 for r in rows)


def test_convert_slices_and_export(dataset, tmp_path):
    res = ok(["convert", f"{dataset}@0:3", tmp_path / "out", "--to", "deeph"])
    assert "converted 3 records" in res.stdout
    dirs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert dirs == ["00000-Si2", "00001-Si2", "00002-Si2"]
    from nextham.io import read

    with DatasetStore(dataset) as st:
        rec = st[1]
        st.export_hdf5(tmp_path / "export.h5")
    back = read(tmp_path / "out" / "00001-Si2")
    assert np.allclose(back.blocks["H"], rec.blocks["H"]) or back.n_edges == rec.n_edges
    ok(["convert", f"{dataset}@-1", tmp_path / "last.h5"])
    assert np.array_equal(read_record(tmp_path / "last.h5").blocks["H"], DatasetStore(dataset)[-1].blocks["H"])
    # the HDF5 export is readable by info and by every command taking a record
    info = json.loads(ok(["info", tmp_path / "export.h5", "--per-structure"]).stdout)
    assert info["format"] == "nextham-dataset-hdf5" and info["records"] == 4
    ok(["eig", f"{tmp_path / 'export.h5'}@2", "--k", "0 0 0"])
    ok(["bands", f"{tmp_path / 'export.h5'}@-1", "--out", tmp_path / "e.png"])


def test_model_card(model_file):
    card = json.loads(ok(["info", model_file]).stdout)
    assert card["format"] == "nextham-checkpoint" and card["model"]["kind"] == "toy"
    assert card["basis"] == {"Si": "sp"} or "Si" in card["basis"]
    assert card["training_data"]["engine"] == "toy" and "cutoff" in card["training_data"]["settings"]
    assert card["spinful"] is False and card["n_parameters"] > 0 and "metrics" in card


def test_check_and_recompute_damaged_records(dataset, inputs_dir, tmp_path):
    ds = tmp_path / "copy.lmdb"
    shutil.copy(dataset, ds)
    ok(["info", ds, "--check"])
    raw = bytearray(ds.read_bytes())
    with DatasetStore(ds) as st:
        blob = st.raw(1)
        good_h = st[1].blocks["H"].copy()
    pos = bytes(raw).find(blob)
    raw[pos + len(blob) - 5] ^= 0x01
    ds.write_bytes(bytes(raw))
    res = runner.invoke(app, ["info", str(ds), "--check"])
    assert res.exit_code == 1 and "record 1 " in res.output and "checksum mismatch" in res.output
    res = runner.invoke(app, ["generate", str(inputs_dir), "--out", str(ds), "--engine", "toy", "--workers", "0",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["recomputed_damaged"] == 1
    ok(["info", ds, "--check"])
    with DatasetStore(ds) as st:
        assert len(st) == 4 and np.allclose(st[1].blocks["H"], good_h)


def test_generate_exit_status_and_stale_failures(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write(d / "a.cif", bulk("Si", "diamond", a=5.43))
    (d / "b.cif").write_text("garbage")
    out = tmp_path / "g.lmdb"
    args = ["generate", str(d), "--out", str(out), "--engine", "toy", "--workers", "0", "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "1 of 2 structures are not in" in res.stderr and "b.cif" in res.stderr
    res = runner.invoke(app, args)  # still failing (earlier failure, not retried): still non-zero
    assert res.exit_code == 1 and "--retry-failed" in res.stderr
    write(d / "b.cif", bulk("Si", "diamond", a=5.6))  # the user fixes the file
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["failures_cleared"] == 1
    with DatasetStore(out) as st:
        assert len(st) == 2 and st.failures() == {}


def test_generate_like_dataset(dataset, inputs_dir, tmp_path):
    out = tmp_path / "like.lmdb"
    res = runner.invoke(app, ["generate", str(inputs_dir / "si_0.cif"), "--out", str(out), "--like", str(dataset),
                              "--workers", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    with DatasetStore(out) as a, DatasetStore(dataset) as b:
        assert a.manifest["run_settings"] == b.manifest["run_settings"]
    res = runner.invoke(app, ["generate", str(inputs_dir / "si_0.cif"), "--out", str(tmp_path / "x.lmdb"),
                              "--like", str(dataset), "--engine", "gpaw"])
    assert res.exit_code == 2 and "contradicts --like" in res.output


def test_compare_refuses_other_settings(record_file, tmp_path):
    from nextham.engines import get_engine

    other = get_engine("toy", cutoff=4.0).compute(bulk("Si", "diamond", a=5.43))
    write_record(tmp_path / "other.h5", other)
    res = runner.invoke(app, ["bands", str(record_file), "--compare", str(tmp_path / "other.h5"),
                              "--out", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and "cutoff 5.0 vs 4.0" in res.stderr and not (tmp_path / "c.png").exists()
    res = runner.invoke(app, ["bands", str(record_file), "--compare", str(tmp_path / "other.h5"),
                              "--out", str(tmp_path / "c.png"), "--allow-mismatch"])
    assert res.exit_code == 0 and "WARNING" in res.stderr
    same = get_engine("toy").compute(bulk("Si", "diamond", a=5.43))
    write_record(tmp_path / "same.h5", same)
    res = runner.invoke(app, ["bands", str(record_file), "--compare", str(tmp_path / "same.h5"),
                              "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 0 and "WARNING" not in res.stderr


def test_predict_stages_and_fermi_level(model_file, tmp_path):
    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.45))
    res = runner.invoke(app, ["predict", str(tmp_path / "si.cif"), "--model", str(model_file),
                              "--out", str(tmp_path / "p.h5")])
    assert res.exit_code == 0, res.output
    for stage in ("loading the model", "computing S and H0", "predicting H", "writing"):
        assert stage in res.stderr
    res = runner.invoke(app, ["predict", str(tmp_path / "si.cif"), "--model", str(model_file),
                              "--out", str(tmp_path / "p.h5"), "--force"])
    assert res.exit_code == 0, res.output


def test_fermi_level_of_predicted_bands():
    """On the sp3s* Si model (8 valence electrons) the Fermi level lies in the gap of its own bands."""
    from nextham.inference import predicted_fermi_level
    from nextham.physics.kpoints import monkhorst_pack
    from nextham.tightbinding import silicon_vogl

    rec = silicon_vogl()
    ef, info = predicted_fermi_level(rec)
    eps, _ = eigenvalues(rec, monkhorst_pack((8, 8, 8)))
    vbm, cbm = np.nanmax(eps[:, :4]), np.nanmin(eps[:, 4:])
    assert vbm < ef < cbm and info["fermi_level"]["n_valence"] == rec.metadata["n_electrons"]
    ef_soc, _ = predicted_fermi_level(silicon_vogl(spinful=True))
    assert ef_soc == pytest.approx(ef, abs=0.3)


def test_generate_like_model_and_evaluate_warning(model_file, inputs_dir, tmp_path):
    out = tmp_path / "ref.lmdb"
    res = runner.invoke(app, ["generate", str(inputs_dir / "si_2.cif"), "--out", str(out), "--like", str(model_file),
                              "--workers", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "settings of" in res.stderr and "engine toy" in res.stderr
    res = runner.invoke(app, ["evaluate", str(out), "--model", str(model_file), "--split", "all", "--out",
                              str(tmp_path / "rep"), "--k-mesh", "2,2,2", "--band-plots", "0"])
    assert res.exit_code == 0, res.output
    assert "WARNING" not in res.stderr
    other = tmp_path / "other.lmdb"
    res = runner.invoke(app, ["generate", str(inputs_dir / "si_2.cif"), "--out", str(other), "--like", str(model_file),
                              "--set", "cutoff=4.5", "--workers", "0", "--no-progress"])
    assert res.exit_code == 0 and "overrides" in res.stderr
    res = runner.invoke(app, ["evaluate", str(other), "--model", str(model_file), "--split", "all", "--out",
                              str(tmp_path / "rep2"), "--k-mesh", "2,2,2", "--band-plots", "0"])
    assert res.exit_code == 0, res.output
    assert "WARNING" in res.stderr and "cutoff" in res.stderr


def test_records_without_checksum_still_read(dataset, tmp_path):
    """Datasets written before checksums (format NXHREC1) read unchanged, unchecked."""
    import lmdb

    from nextham.data import store as store_mod

    ds = tmp_path / "old.lmdb"
    shutil.copy(dataset, ds)
    with DatasetStore(ds) as st:
        blob, rec = st.raw(0), st[0]
    assert blob.startswith(store_mod._MAGIC2)
    old = store_mod._MAGIC + blob[len(store_mod._MAGIC2) + 4:]
    env = lmdb.open(str(ds), subdir=False, map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b"rec/0000000000", old)
    env.close()
    with DatasetStore(ds) as st:
        assert st.verify(0) is None and np.array_equal(st[0].blocks["H"], rec.blocks["H"])
    ok(["info", ds, "--check"])
