"""Named, seeded dataset recipes: structures over the periodic table plus the engine settings they are
computed with, regenerable bit for bit (``nextham generate --recipe universal-v1 --out data.lmdb``).

A recipe fixes everything that decides the records: the structures (a seeded function of
:mod:`nextham.data.structures`), the engine, its settings and spin-orbit coupling. A model trained on
a recipe's dataset records the recipe, so ``generate --like MODEL`` reproduces the settings and
``generate --recipe NAME --seed S`` gives new structures of the same distribution (held-out tests).

``universal-v1``: all 67 GPAW elements; every element in at least ``per_element`` structures (20)
and in at least 3 chemical environments. The environments are elemental prototypes, oxides,
halides, chalcogenides, pnictides, carbides/nitrides/borides, hydrides, intermetallics (metal-metal)
and ABX3 perovskites; 1-8 atoms; seeded strain, displacements and occasional 2x supercells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms

from ..structure.identity import structure_key
from .structures import GPAW_ELEMENTS, StructureInput, binary, elemental, perovskite, perturb

#: elements that are never "metal" partners (the rest of the 67 are)
NONMETALS = frozenset("H He B C N O F Ne Si P S Cl Ar Ge As Se Br Kr Sb Te I Xe".split())

#: environment -> (partner elements, prototypes); "intermetallic" partners are the metals,
#: "elemental" has no partner, "perovskite" is built separately
ENVIRONMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "elemental": ((), ("fcc", "bcc", "hcp", "diamond")),
    "oxide": (("O",), ("rocksalt", "zincblende", "wurtzite", "cesiumchloride", "layered")),
    "halide": (("F", "Cl", "Br", "I"), ("rocksalt", "cesiumchloride", "zincblende", "layered")),
    "chalcogenide": (("S", "Se", "Te"), ("rocksalt", "zincblende", "wurtzite", "layered")),
    "pnictide": (("P", "As", "Sb", "Bi"), ("rocksalt", "zincblende", "wurtzite", "cesiumchloride")),
    "carbide-nitride": (("C", "N", "B"), ("rocksalt", "zincblende", "wurtzite")),
    "hydride": (("H",), ("rocksalt", "zincblende", "cesiumchloride")),
    "intermetallic": ((), ("cesiumchloride", "rocksalt", "zincblende")),
    "perovskite": ((), ("perovskite",)),
}
#: relative chance of an environment once an element has its first ``min_environments``
ENVIRONMENT_WEIGHTS = {"intermetallic": 4.0, "elemental": 1.5}
PEROVSKITE_A = ("Li", "Na", "K", "Rb", "Cs", "Ca", "Sr", "Ba", "La", "Pb")
PEROVSKITE_B = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Zr", "Nb", "Mo", "Sn", "Hf", "Ta", "W", "Pb", "Bi")
PEROVSKITE_X = ("O", "F", "Cl", "Br")


@dataclass(frozen=True)
class Recipe:
    """A dataset recipe: seeded structures and the engine settings they are computed with.

    ``per_element``: every element appears in at least this many structures; ``min_environments``:
    and in at least this many environments. ``supercell_probability``: chance of a 2x repeat along
    one cell vector (kept only within ``max_atoms``).
    """

    name: str
    description: str
    seed: int
    engine: str
    engine_settings: dict = field(hash=False)
    soc: bool
    elements: tuple[str, ...] = GPAW_ELEMENTS
    per_element: int = 20
    min_environments: int = 3
    strain: float = 0.03
    displacement: float = 0.05
    scale_range: tuple[float, float] = (0.95, 1.10)
    supercell_probability: float = 0.15
    max_atoms: int = 8

    def structures(self, seed: int | None = None, per_element: int | None = None,
                   elements: Sequence[str] | None = None) -> list[StructureInput]:
        """The recipe's structures (another ``seed`` gives a different draw of the same distribution,
        e.g. a held-out test set; ``per_element`` overrides the count; ``elements`` restricts the
        elements, e.g. to leave some out)."""
        return environment_set(self, self.seed if seed is None else seed,
                               self.per_element if per_element is None else per_element,
                               tuple(elements) if elements is not None else self.elements)

    def todict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "engine": self.engine,
                "engine_settings": dict(self.engine_settings), "soc": self.soc, "per_element": self.per_element,
                "min_environments": self.min_environments, "elements": list(self.elements)}


def _environments_of(symbol: str, elements: Sequence[str]) -> list[str]:
    """Environments that can hold ``symbol`` with partners among ``elements``."""
    allowed = set(elements)
    metals = [e for e in elements if e not in NONMETALS]
    out = []
    for env, (partners, _) in ENVIRONMENTS.items():
        if env == "intermetallic":
            ok = symbol not in NONMETALS and len(metals) > 1
        elif env == "perovskite":
            ok = any(p in allowed for p in PEROVSKITE_X) and any(p in allowed for p in PEROVSKITE_A + PEROVSKITE_B)
        elif partners:
            ok = any(p in allowed and p != symbol for p in partners)
        else:
            ok = True
        if ok:
            out.append(env)
    return out


def _pick(rng: np.random.Generator, candidates: Sequence[str], need: dict[str, int]) -> str:
    """One of ``candidates``, those that still need appearances 4x as likely (so that a structure
    serves two elements where it can, and the recipe stays small)."""
    w = np.array([4.0 if need.get(c, 0) > 0 else 1.0 for c in candidates])
    return str(candidates[int(rng.choice(len(candidates), p=w / w.sum()))])


def _build(symbol: str, env: str, rng: np.random.Generator, elements: Sequence[str],
           scale: float, need: dict[str, int]) -> tuple[Atoms, str]:
    """One unperturbed structure of ``env`` containing ``symbol`` and its label."""
    allowed = set(elements)
    protos = ENVIRONMENTS[env][1]
    proto = str(rng.choice(list(protos)))
    if env == "elemental":
        return elemental(symbol, proto, scale), f"{symbol}-{proto}"
    if env == "perovskite":
        X = [x for x in PEROVSKITE_X if x in allowed]
        A = [a for a in PEROVSKITE_A if a in allowed]
        B = [b for b in PEROVSKITE_B if b in allowed]
        if symbol in PEROVSKITE_X and rng.random() < 0.5 or symbol in NONMETALS:
            a, b, x = _pick(rng, A or B, need), _pick(rng, B or A, need), symbol
        elif rng.random() < 0.5:
            a, b, x = symbol, _pick(rng, B or A, need), _pick(rng, X, need)
        else:
            a, b, x = _pick(rng, A or B, need), symbol, _pick(rng, X, need)
        return perovskite(a, b, x, scale=scale), f"{a}{b}{x}3-perovskite"
    if env == "intermetallic":
        partners = [e for e in elements if e not in NONMETALS and e != symbol]
    else:
        partners = [p for p in ENVIRONMENTS[env][0] if p in allowed and p != symbol]
    other = _pick(rng, partners, need)
    return binary(symbol, other, proto, scale), f"{symbol}{other}-{proto}"


def environment_set(recipe: Recipe, seed: int, per_element: int, elements: Sequence[str]) -> list[StructureInput]:
    """Seeded structures in which every element of ``elements`` appears at least ``per_element`` times
    and in at least ``recipe.min_environments`` environments (when it has that many).

    Rounds over the elements (in a seeded order) that still lack appearances: each gets one new
    structure, in an environment it has not been seen in yet while it has fewer than
    ``min_environments``, else in a random environment it can take. Partners count too, so the
    anions (O, halogens, ...) reach their quota early through the others' structures.
    """
    rng = np.random.default_rng(seed)
    elements = list(elements)
    count = {e: 0 for e in elements}
    seen: dict[str, set[str]] = {e: set() for e in elements}
    envs = {e: _environments_of(e, elements) for e in elements}
    out: list[StructureInput] = []
    rounds = 0
    while any(count[e] < per_element for e in elements):
        rounds += 1
        if rounds > 10 * per_element + 10:
            raise RuntimeError("recipe cannot reach its per-element counts; check the elements")
        for symbol in [elements[i] for i in rng.permutation(len(elements))]:
            if count[symbol] >= per_element:
                continue
            new = [v for v in envs[symbol] if v not in seen[symbol]]
            pool = new if new and len(seen[symbol]) < recipe.min_environments else envs[symbol]
            # beyond the first environments, those that pair two elements in need are likelier
            w = np.array([ENVIRONMENT_WEIGHTS.get(v, 1.0) for v in pool])
            env = str(pool[int(rng.choice(len(pool), p=w / w.sum()))])
            need = {e: per_element - count[e] for e in elements}
            for _ in range(20):
                atoms, label = _build(symbol, env, rng, elements, float(rng.uniform(*recipe.scale_range)), need)
                if rng.random() < recipe.supercell_probability and 2 * len(atoms) <= recipe.max_atoms:
                    rep = [1, 1, 1]
                    rep[int(rng.integers(3))] = 2
                    atoms = atoms.repeat(rep)
                    label += "-x" + "".join(map(str, rep))
                if len(atoms) <= recipe.max_atoms:
                    break
            else:
                continue
            atoms = perturb(atoms, rng, recipe.strain, recipe.displacement)
            name = f"{recipe.name}-s{seed}-{len(out):05d}-{env}-{label}"
            atoms.info["name"] = name
            atoms.info["environment"] = env
            out.append(StructureInput(structure_key(atoms), name, atoms,
                                      source=f"recipe {recipe.name} (seed {seed})"))
            for e in set(atoms.get_chemical_symbols()):
                if e in count:
                    count[e] += 1
                    seen[e].add(env)
    return out


def environment_of(name: str) -> str | None:
    """The environment of a recipe structure from its name (``universal-v1-s0-00012-oxide-...``)."""
    for env in ENVIRONMENTS:
        if f"-{env}-" in name:
            return env
    return None


#: the demo's engine settings (szp reduction of GPAW's dzp set, h = 0.3 Å, 1.5 k-points per Å^-1) with
#: GPAW's default setups: the semicore policy differs from them only for Te (Te.16, 4d semicore), whose
#: szp set carries an f polarization function, the only f shell among the 67 elements; it would widen
#: every edge's irreps from 2,220 to 6,272 numbers (output L up to 6) for one element
UNIVERSAL_V1_SETTINGS = {"basis": "szp(dzp)", "h": 0.3, "kpt_density": 1.5, "check_kpoints": 1, "drop_below": 1e-7,
                         "setups": "default"}

RECIPES: dict[str, Recipe] = {
    "universal-v1": Recipe(
        name="universal-v1",
        description="67 GPAW elements (H-Ba, Hf-Bi, no Tc), >= 20 structures and >= 3 environments each "
                    "(elemental, oxide, halide, chalcogenide, pnictide, carbide/nitride, hydride, intermetallic, "
                    "perovskite), 1-8 atoms, strained and displaced, SOC, demo engine settings",
        seed=0, engine="gpaw", engine_settings=UNIVERSAL_V1_SETTINGS, soc=True),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r} (known: {', '.join(sorted(RECIPES))})") from None
