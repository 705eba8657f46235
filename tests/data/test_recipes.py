"""Dataset recipes: seeded, covering every element in enough structures and environments."""

from collections import Counter, defaultdict

import pytest

from nextham.data.recipes import RECIPES, environment_of, get_recipe
from nextham.data.structures import GPAW_ELEMENTS


@pytest.fixture(scope="module")
def universal():
    recipe = get_recipe("universal-v1")
    return recipe, recipe.structures()


def test_universal_recipe_covers_every_element(universal):
    recipe, structures = universal
    count, envs = Counter(), defaultdict(set)
    for s in structures:
        assert 1 <= len(s.atoms) <= recipe.max_atoms
        env = environment_of(s.name)
        assert env == s.atoms.info["environment"]
        for e in set(s.atoms.get_chemical_symbols()):
            count[e] += 1
            envs[e].add(env)
    assert set(count) == set(GPAW_ELEMENTS) and len(GPAW_ELEMENTS) == 67
    assert min(count.values()) >= recipe.per_element == 20
    assert min(len(v) for v in envs.values()) >= 3
    assert {environment_of(s.name) for s in structures} == set(
        ["elemental", "oxide", "halide", "chalcogenide", "pnictide", "carbide-nitride", "hydride", "intermetallic",
         "perovskite"])
    assert len({s.key for s in structures}) == len(structures)


def test_recipe_is_reproducible_and_seeds_differ(universal):
    recipe, structures = universal
    again = recipe.structures()
    assert [s.key for s in again] == [s.key for s in structures]
    other = recipe.structures(seed=1, per_element=2)
    assert not {s.key for s in other} & {s.key for s in structures}
    count = Counter(e for s in other for e in set(s.atoms.get_chemical_symbols()))
    assert min(count[e] for e in GPAW_ELEMENTS) >= 2


def test_recipe_records_its_settings():
    r = RECIPES["universal-v1"]
    d = r.todict()
    assert d["engine"] == "gpaw" and d["soc"] is True and d["engine_settings"]["basis"] == "szp(dzp)"
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        get_recipe("nope")


def test_recipe_restricted_elements():
    r = get_recipe("universal-v1")
    out = r.structures(per_element=3, elements=("Si", "O", "Fe", "Cs"))
    assert {e for s in out for e in s.atoms.get_chemical_symbols()} <= {"Si", "O", "Fe", "Cs"}


def test_generate_recipe_options_are_checked(tmp_path):
    from typer.testing import CliRunner

    from nextham.cli.main import app

    runner = CliRunner()
    for args, needle in ((["--recipe", "nope"], "unknown recipe 'nope'"),
                         (["--seed", "3"], "--seed and --per-element select structures of a --recipe"),
                         (["--recipe", "universal-v1", "--per-element", "0"], "--per-element must be >= 1"),
                         (["--recipe", "universal-v1", "--no-soc"], "contradicts --recipe")):
        res = runner.invoke(app, ["generate", "--out", str(tmp_path / "x.lmdb"), *args])
        assert res.exit_code == 2, res.output
        assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.lmdb").exists()
