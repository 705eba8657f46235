"""Shared inputs for the command-line tests: a toy dataset store, a trained toy model, a record file.

Built once per session with the toy engine (analytic, milliseconds per structure) and the toy model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.io import write

from nextham.testing import toy as _toy  # noqa: F401  (registers the model kind "toy")
from nextham.blocks.h5io import write_record
from nextham.data.generate import generate
from nextham.data.structures import gather_inputs
from nextham.engines import get_engine


@pytest.fixture(scope="session")
def inputs_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("structures")
    for i, a in enumerate((5.40, 5.43, 5.46, 5.50)):
        write(d / f"si_{i}.cif", bulk("Si", "diamond", a=a))
    return d


@pytest.fixture(scope="session")
def dataset(inputs_dir, tmp_path_factory) -> Path:
    """A dataset store of four Si structures (toy engine)."""
    out = tmp_path_factory.mktemp("ds") / "data.lmdb"
    s = generate(gather_inputs([str(inputs_dir)]), out, engine_name="toy", workers=0, progress=False,
                 echo=lambda m: None)
    assert s.computed == 4
    return out


@pytest.fixture(scope="session")
def record_file(tmp_path_factory) -> Path:
    rec = get_engine("toy").compute(bulk("Si", "diamond", a=5.43))
    return write_record(tmp_path_factory.mktemp("rec") / "si.h5", rec)


@pytest.fixture(scope="session")
def model_file(dataset, tmp_path_factory) -> Path:
    """A toy model trained for one epoch on ``dataset`` (its checkpoint records the toy engine)."""
    from nextham.train.config import TrainConfig
    from nextham.train.loop import Trainer

    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.model_validate({
        "data": {"path": str(dataset), "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "model": {"kind": "toy"}, "loss": {"reciprocal": {"k_mesh": [2, 2, 2]}},
        "optim": {"epochs": 1, "batch_size": 1}, "run": {"out_dir": str(run), "progress": False}})
    (run / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    Trainer(cfg, resume="never").fit()
    return run / "model.pt"
