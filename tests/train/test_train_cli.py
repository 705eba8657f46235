"""`nextham train / evaluate / predict` end to end with the toy engine and the toy model."""

import json

import numpy as np
import typer
import yaml
from ase.build import bulk
from typer.testing import CliRunner

from nextham.blocks.h5io import read_record, write_record
from nextham.cli import evaluate as cli_evaluate, predict as cli_predict, train as cli_train
from nextham.engines import get_engine
from nextham.testing import toy  # noqa: F401  (registers the "toy" model kind)


def _app():
    app = typer.Typer()
    for mod in (cli_train, cli_evaluate, cli_predict):
        mod.register(app)
    return app


def test_train_evaluate_predict(tmp_path):
    eng = get_engine("toy")
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for i in range(6):
        at = bulk("Si", "diamond", a=5.43 * (1 + 0.02 * rng.standard_normal()))
        at.rattle(0.05, seed=i)
        write_record(data / f"{i:03d}.h5", eng.compute(at))
    cfg = {"data": {"path": str(data), "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
           "model": {"kind": "toy"}, "loss": {"reciprocal": {"k_mesh": [2, 2, 2]}},
           "optim": {"epochs": 2, "batch_size": 1},
           "run": {"out_dir": str(tmp_path / "run"), "progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    app, runner = _app(), CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "optim.lr=1e-3"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model.pt").exists()
    r = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "optim.bogus=1"])
    assert r.exit_code == 2 and "unknown key 'optim.bogus'" in r.output
    r = runner.invoke(app, ["evaluate", str(data), "--model", str(tmp_path / "run" / "model.pt"),
                            "--out", str(tmp_path / "rep"), "--k-mesh", "2,2,2", "--band-plots", "0"])
    assert r.exit_code == 0, r.output
    assert "gauge MAE" in r.output and json.loads((tmp_path / "rep" / "report.json").read_text())["n_structures"] >= 1
    bulk("Si", "diamond", a=5.5).write(tmp_path / "si.cif")
    r = runner.invoke(app, ["predict", str(tmp_path / "si.cif"), "--model", str(tmp_path / "run" / "model.pt"),
                            "--out", str(tmp_path / "pred.h5")])
    assert r.exit_code == 0, r.output
    assert "engine_S_H0_s" in r.output and "model_s" in r.output
    rec = read_record(tmp_path / "pred.h5")
    assert "H" in rec.blocks and rec.metadata["predicted_by"]
    r = runner.invoke(app, ["predict", str(tmp_path / "si.cif"), "--model", str(tmp_path / "run" / "model.pt"),
                            "--out", str(tmp_path / "pred_deeph"), "--format", "deeph"])
    assert r.exit_code == 0, r.output
