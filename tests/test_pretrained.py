"""The shipped universal model: loads safely, is equivariant, predicts unseen elements, and its card
is the evaluation's (no number typed by hand)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from nextham.analysis.model_card import card_markdown, grouped
from nextham.basis.orbitals import Basis
from nextham.inference import load_trained_model, predict_records
from nextham.models import DEFAULT_MODEL, PRETRAINED, model_card, resolve_model
from nextham.testing import assert_model_equivariant
from nextham.testing.toy import random_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained():
    return load_trained_model(DEFAULT_MODEL, dtype=torch.float64)


def test_registered_weights_load_with_weights_only_and_carry_provenance():
    path = resolve_model("universal-v1")
    assert path.parent.name == "pretrained" and path.stat().st_size < 5e6
    ck = torch.load(path, weights_only=True)
    prov = ck["provenance"]
    assert prov["commit"] and prov["recipe"]["name"] == "universal-v1" and prov["recipe"]["seed"] == 0
    settings = json.loads(ck["engine"]["settings_json"])
    assert settings == {**prov["recipe"]["engine_settings"], **{k: settings[k] for k in settings
                                                                if k not in prov["recipe"]["engine_settings"]}}
    assert settings["basis"] == "szp(dzp)" and ck["spinful"] is True
    assert len(Basis.from_json(ck["basis"]).elements) == 67
    assert min(ck["element_counts"].values()) >= 1 and "optimizer" not in ck
    assert set(PRETRAINED) >= {"universal-v1"}


def test_shipped_model_is_equivariant(trained):
    model = trained.model
    specs = {"Ga": "1s1p1d", "As": "1s1p1d"}
    rec = random_record(7, spinful=True, symbols=("Ga", "As", "As"), specs=specs)
    assert_model_equivariant(model, rec)  # float64: the exact Wigner-3j of its own build, not the file's


def test_shipped_model_predicts_an_element_it_never_saw(trained):
    """La has no GPAW setup, so the model never met it; a record of it from another code (here a random
    one with an s, p, d basis) still gets a finite, Hermitian prediction through the fallback."""
    rec = random_record(8, spinful=True, symbols=("La", "O"), specs={"La": "1s1p1d", "O": "1s1p1d"})
    assert "La" not in trained.basis
    pred = predict_records(trained, [rec])[0]
    assert np.isfinite(pred.blocks["H"]).all()
    pred.validate()
    assert np.abs(pred.blocks["H"] - rec.blocks["H0"]).max() > 0


def test_card_numbers_are_the_evaluations():
    card = model_card("universal-v1")
    assert card["name"] == "universal-v1" and card["format"] == "nextham-model-card"
    again = grouped(card["structure_rows"])
    assert again["per_element"] == card["per_element"] and again["per_environment"] == card["per_environment"]
    assert len(card["per_element"]) == 67
    z = card["zero_shot"]
    assert grouped(z["structure_rows"], z["elements"])["per_element"] == z["per_element"]
    doc = (REPO / "docs" / "universal.md").read_text()
    section = doc.split("<!-- card:start -->\n", 1)[1].split("\n<!-- card:end -->", 1)[0]
    assert section == card_markdown(card)


gpaw = pytest.importorskip("gpaw")


def test_predict_without_model_uses_the_universal_model(tmp_path):
    from nextham.blocks.h5io import read_record
    from nextham.cli.main import app

    poscar = tmp_path / "POSCAR"
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[0] += [0.05, -0.02, 0.03]
    atoms.positions[1] += atoms.cell[0]  # an atom outside the cell, as users have them
    write(poscar, atoms, format="vasp")
    out = tmp_path / "si.h5"
    res = CliRunner().invoke(app, ["predict", str(poscar), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "using the built-in model universal-v1" in res.stderr
    rec = read_record(out)
    assert rec.spinful and "H" in rec.blocks and rec.fermi_energy_eV is not None
    # an element without a GPAW setup: one clear error
    write(tmp_path / "La.cif", bulk("La", "fcc", a=5.3))
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "La.cif"), "--out", str(tmp_path / "la.h5")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")][0].count("La") >= 1


def test_info_prints_the_card_and_readme_quotes_it():
    from nextham.analysis.model_card import format_card
    from nextham.cli.main import app

    card = model_card("universal-v1")
    res = CliRunner().invoke(app, ["info", "--model", "universal-v1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == format_card(card).strip()
    hl = card["overall"]["headline"]
    readme = (REPO / "README.md").read_text()
    assert f"{hl['model_mae_meV']:.3f} meV against H0's {hl['h0_mae_meV']:.3f} meV (ratio {hl['ratio']:.2f})" in readme
    # the fine-tuning line quotes the measured runs (benchmarks/universal/finetune.py)
    runs = {r["run"]: r for r in card["fine_tuning"]["runs"]}
    assert f"ratio {runs['fine-tuned']['ratio']:.2f} against {runs['scratch']['ratio']:.2f} from scratch" in readme
