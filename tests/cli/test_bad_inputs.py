"""Everyday mistakes on the command line: each gives exit status 2, exactly one line starting with
``error:`` that names the input, no traceback, and leaves every file as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from nextham.cli.main import app
from nextham.data.store import DatasetStore

from cli_helpers import tree_digest

runner = CliRunner()


def probe(args: list[str], *needles: str, watch: tuple[Path, ...] = ()) -> str:
    """Run ``nextham ARGS``; assert the clear-error contract; return the error line."""
    before = tree_digest(*watch) if watch else None
    res = runner.invoke(app, [str(a) for a in args])
    out = res.output
    assert res.exit_code == 2, f"exit {res.exit_code} for {args}:\n{out}\n{res.exception!r}"
    assert "Traceback" not in out, out
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    line = errors[0]
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    if watch:
        assert tree_digest(*watch) == before, f"files changed by {args}"
    return line


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, dataset):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty_POSCAR").write_text("")
    (d / "garbage_POSCAR").write_text("this is not\na POSCAR file at all\n\x00\x01\n")
    write(d / "Xx.xyz", bulk("Si", "diamond", a=5.43))
    (d / "unknown_element.xyz").write_text((d / "Xx.xyz").read_text().replace("Si ", "Qq "))
    nan = bulk("Si", "diamond", a=5.43)
    write(d / "nan.xyz", nan)
    text = (d / "nan.xyz").read_text().splitlines()
    text[-1] = "Si nan nan nan"
    (d / "nan.xyz").write_text("\n".join(text) + "\n")
    write(d / "frames.xyz", [bulk("Si", "diamond", a=5.43), bulk("Si", "diamond", a=5.5)])
    write(d / "gaas.cif", bulk("GaAs", "zincblende", a=5.65))
    write(d / "si.cif", bulk("Si", "diamond", a=5.43))
    (d / "broken.yaml").write_text("data:\n  path: [unclosed\n  x: {\n")
    raw = dataset.read_bytes()
    (d / "half.lmdb").write_bytes(raw[:len(raw) // 2])
    with DatasetStore(dataset) as st:  # flip one bit in the middle of record 2's stored bytes
        blob = st.raw(2)
    pos = raw.find(blob)  # large values lie contiguously on LMDB overflow pages
    assert pos > 0 and raw.find(blob, pos + 1) < 0
    flipped = bytearray(raw)
    flipped[pos + len(blob) // 2] ^= 0x10
    (d / "flipped.lmdb").write_bytes(bytes(flipped))
    return d


def test_dataset_references(dataset, record_file):
    probe(["eig", f"{dataset}@4", "--k", "0 0 0"], "data.lmdb@4", "out of range", watch=(dataset,))
    probe(["eig", f"{dataset}@x", "--k", "0 0 0"], "expected a record index", watch=(dataset,))
    probe(["eig", dataset, "--k", "0 0 0"], "a dataset of 4 records", "@N", watch=(dataset,))
    probe(["eig", f"{dataset}@0:2", "--k", "0 0 0"], "not a slice", watch=(dataset,))
    probe(["eig", f"{record_file}@3", "--k", "0 0 0"], "single record", watch=(record_file,))


def test_corrupted_datasets(bad_files):
    probe(["info", bad_files / "half.lmdb"], "half.lmdb", "truncated", watch=(bad_files,))
    probe(["eig", f"{bad_files / 'half.lmdb'}@0", "--k", "0 0 0"], "truncated", watch=(bad_files,))
    probe(["info", bad_files / "flipped.lmdb"], "flipped.lmdb@2", "checksum", watch=(bad_files,))
    probe(["eig", f"{bad_files / 'flipped.lmdb'}@2", "--k", "0 0 0"], "flipped.lmdb@2", "checksum")


def test_structure_files_for_predict(bad_files, model_file, tmp_path):
    out = tmp_path / "p.h5"
    for name, needle in (("empty_POSCAR", "empty file"), ("garbage_POSCAR", "cannot read a structure"),
                         ("unknown_element.xyz", "cannot read a structure"), ("nan.xyz", "non-finite"),
                         ("frames.xyz", "holds 2 structures")):
        probe(["predict", bad_files / name, "--model", model_file, "--out", out], name, needle,
              watch=(bad_files, model_file))
        assert not out.exists()
    probe(["predict", bad_files, "--model", model_file, "--out", out], "is a directory")
    probe(["predict", bad_files / "gaas.cif", "--model", model_file, "--out", out], "Ga", "unknown to the model")
    assert not out.exists()
    res = runner.invoke(app, ["predict", str(bad_files / "gaas.cif"), "--model", str(model_file), "--out", str(out)])
    assert "computing S and H0" not in res.output  # refused before the engine ran


def test_devices_and_checkpoints(bad_files, model_file, tmp_path):
    out = tmp_path / "p.h5"
    si = bad_files / "si.cif"
    probe(["predict", si, "--model", model_file, "--out", out, "--device", "tpu"], "--device", "unknown device")
    if not torch.cuda.is_available():
        probe(["predict", si, "--model", model_file, "--out", out, "--device", "cuda:0"], "CUDA is not available")
    ck = torch.load(model_file, weights_only=True)
    ck["config"]["model"]["overrides"] = {**ck["config"]["model"].get("overrides", {}), "hidden": 7}
    other = tmp_path / "other_size.pt"
    torch.save(ck, other)
    probe(["predict", si, "--model", other, "--out", out], "other_size.pt", "do not fit")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        torch.save({"format": "nextham-checkpoint", "x": _Evil()}, fh, pickle_protocol=2)
    line = probe(["predict", si, "--model", evil, "--out", out], "evil.pt", "refuses to unpickle")
    assert "weights_only=False" not in line
    probe(["info", evil], "evil.pt", "refuses")
    assert not out.exists()


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_options_validated_before_work(dataset, record_file, bad_files, model_file, tmp_path):
    out = tmp_path / "new.lmdb"
    for bad, needle in (("h=abc", "expected a number"), ("h=-1", "must be positive"), ("hh=1", "unknown setting"),
                        ("kpt_density=0", "must be positive")):
        probe(["generate", bad_files / "si.cif", "--out", out, "--set", bad, "--workers", "0"], needle)
        assert not out.exists()
    probe(["demo", "--out", tmp_path / "demo", "--preset", "huge"], "--preset", "unknown")
    probe(["demo", "--out", tmp_path / "demo", "--epochs", "0"], "--epochs")
    probe(["demo", "--out", tmp_path / "demo", "--minutes", "0"], "--minutes")
    assert not (tmp_path / "demo").exists()
    for lim in ("0", "-1"):
        probe(["evaluate", dataset, "--model", model_file, "--limit", lim, "--out", tmp_path / "rep"], "--limit")
    assert not (tmp_path / "rep").exists()
    probe(["bands", record_file, "--window", "6,-6", "--out", tmp_path / "b.png"], "--window", "lo < hi")
    probe(["bands", record_file, "--which", "S", "--out", tmp_path / "b.png"], "--which")
    probe(["eig", record_file, "--which", "S", "--k", "0 0 0"], "--which")
    probe(["bands", record_file, "--density", "0", "--out", tmp_path / "b.png"], "--density")
    probe(["bands", record_file, "--density", "1e9", "--out", tmp_path / "b.png"], "--density")
    probe(["bands", record_file, "--out", "/nonexistent/dir/b.png"], "/nonexistent/dir", "does not exist")
    assert not Path("/nonexistent").exists()
    probe(["bands", record_file, "--out", tmp_path], "is a directory")
    assert not (tmp_path / "b.png").exists()


def test_broken_config_and_directories(bad_files, record_file, tmp_path):
    probe(["train", bad_files / "broken.yaml"], "broken.yaml", "not valid YAML", watch=(bad_files,))
    probe(["train", bad_files], "is a directory")
    probe(["eig", bad_files, "--k", "0 0 0"], str(bad_files), watch=(bad_files,))
    probe(["info", tmp_path / "missing.lmdb"], "missing.lmdb", "no such")


def test_no_overwrite_without_force(bad_files, model_file, record_file, dataset, tmp_path):
    existing = tmp_path / "dft.h5"
    existing.write_bytes(record_file.read_bytes())
    probe(["predict", bad_files / "si.cif", "--model", model_file, "--out", existing], "already exists", "--force",
          watch=(existing,))
    probe(["convert", record_file, existing], "already exists", watch=(existing,))
    probe(["convert", f"{dataset}@0", existing], "already exists", watch=(existing, dataset))


def test_invalid_records_not_written(record_file, tmp_path):
    import h5py

    bad = tmp_path / "nan.h5"
    bad.write_bytes(record_file.read_bytes())
    with h5py.File(bad, "r+") as f:
        h = f["blocks/H"][()]
        h[3] = np.nan
        del f["blocks/H"]
        f["blocks/H"] = h
    probe(["convert", bad, tmp_path / "out.h5"], "non-finite")
    assert not (tmp_path / "out.h5").exists()
    probe(["convert", bad, tmp_path / "deeph", "--to", "deeph"], "non-finite")
    assert not (tmp_path / "deeph").exists()
    shape = tmp_path / "shape.h5"
    shape.write_bytes(record_file.read_bytes())
    with h5py.File(shape, "r+") as f:
        s = f["blocks/S"][()]
        del f["blocks/S"]
        f["blocks/S"] = s[:-1]
    probe(["convert", shape, tmp_path / "out.h5"], "matrix S")
    assert not (tmp_path / "out.h5").exists()


def test_second_writer_refused_at_once(bad_files, tmp_path):
    out = tmp_path / "busy.lmdb"
    import os

    with DatasetStore(out, mode="a"):
        probe(["generate", bad_files / "si.cif", "--out", out, "--engine", "toy", "--workers", "0",
                      "--no-progress"], "busy.lmdb", f"in use by PID {os.getpid()}")


def test_internal_errors_keep_their_traceback(record_file, monkeypatch):
    """A bug (here: a KeyError deep inside) is not dressed up as a user error."""
    import nextham.physics.bands as bands

    def broken(*a, **k):
        raise KeyError("bug")

    monkeypatch.setattr(bands, "eigenvalues", broken)
    res = runner.invoke(app, ["eig", str(record_file), "--k", "0 0 0"])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)
    assert not any(line.startswith("error:") for line in res.output.splitlines())


def test_generate_refuses_damaged_files(bad_files, model_file, dataset, tmp_path):
    half = bad_files / "half.lmdb"
    probe(["generate", bad_files / "si.cif", "--out", half, "--engine", "toy", "--workers", "0", "--no-progress"],
          "half.lmdb", "truncated", watch=(bad_files,))
    probe(["train", tmp_path / "none.yaml"], "no such config")
    ck = torch.load(model_file, weights_only=True)
    ck["config"]["model"]["overrides"] = {"hidden": 5}
    torch.save(ck, tmp_path / "small.pt")
    probe(["evaluate", dataset, "--model", tmp_path / "small.pt", "--out", tmp_path / "rep"], "small.pt", "do not fit")


def test_structures_the_engine_cannot_take(model_file, tmp_path):
    si = bulk("Si", "diamond", a=5.43)
    si.positions[1] = si.positions[0] + [0.05, 0, 0]
    write(tmp_path / "overlap.cif", si)
    probe(["predict", tmp_path / "overlap.cif", "--model", model_file, "--out", tmp_path / "p.h5"],
          "overlap.cif", "overlapping")
    probe(["generate", "set:prototypes:abc", "--out", tmp_path / "d.lmdb", "--engine", "toy"], "set")
    assert not (tmp_path / "d.lmdb").exists()


def test_debug_shows_the_traceback_of_user_errors(tmp_path):
    res = runner.invoke(app, ["--debug", "info", str(tmp_path / "missing.h5")])
    assert res.exit_code == 1 and res.exception is not None and "missing.h5" in str(res.exception)
    probe(["info", tmp_path / "missing.h5"], "missing.h5")  # and the next command is back to one line


def test_convert_many_records_into_one_file_refused(dataset, tmp_path):
    probe(["convert", dataset, tmp_path / "all.h5"], "4 records go into a folder", watch=(dataset,))
    probe(["convert", f"{dataset}@1:1", tmp_path / "none"], "selects no records")
    assert not (tmp_path / "all.h5").exists() and not (tmp_path / "none").exists()


def test_unknown_gpaw_basis_refused_before_work(bad_files, tmp_path):
    pytest.importorskip("gpaw")
    out = tmp_path / "b.lmdb"
    probe(["generate", bad_files / "si.cif", "--out", out, "--set", "basis=qzp9", "--workers", "0"], "basis=qzp9")
    assert not out.exists()


def test_inconsistent_edge_arrays(record_file, dataset, tmp_path):
    """Found by the fuzz run: edge_index and edge_R of different lengths crashed info and convert."""
    import h5py

    rec = tmp_path / "edges.h5"
    rec.write_bytes(record_file.read_bytes())
    with h5py.File(rec, "r+") as f:
        e = f["edge_index"][()]
        del f["edge_index"]
        f["edge_index"] = e[:-1]
    probe(["info", rec], "edges.h5", "invalid record")
    probe(["convert", rec, tmp_path / "out.h5"], "edges.h5")
    with DatasetStore(dataset) as st:
        st.export_hdf5(tmp_path / "export.h5")
    with h5py.File(tmp_path / "export.h5", "r+") as f:
        g = f["records/0000000001"]
        e = g["edge_index"][()]
        del g["edge_index"]
        g["edge_index"] = e[:-1]
    probe(["convert", f"{tmp_path / 'export.h5'}@1", tmp_path / "out.h5"], "export.h5@1", "invalid record")
    assert not (tmp_path / "out.h5").exists()


def test_commands_start_without_torch():
    """The CLI imports no torch until a command needs it (generate, convert, info never do): the
    training errors are registered by name and recognised once their modules are loaded."""
    import subprocess
    import sys

    code = "import sys, nextham.cli.main; from nextham.cli.errors import _register_library_errors; " \
           "_register_library_errors(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_lazily_registered_errors_are_user_errors():
    from nextham.checkpoint import CheckpointError
    from nextham.cli.errors import _register_library_errors, is_user_error

    _register_library_errors()
    assert is_user_error(CheckpointError("damaged"))
    assert not is_user_error(ValueError("a bug"))
