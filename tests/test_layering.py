"""Imports point down: a package of ``nextham`` imports only packages of its own or a lower layer.

The order, lowest first (packages on one line form one layer and may import each other)::

    errors, typed_config, checkpoint, pretrained (data files only) < basis < structure < blocks < physics < tightbinding < io < engines < data < graph < nn < losses
      < models < inference < analysis < train < workflows < cli

``nextham.testing`` (helpers for tests) may import anything; no production package imports it.
Every import statement counts, also those inside functions.
"""

import ast
from pathlib import Path

import nextham

LAYERS = [
    ["errors", "typed_config", "checkpoint", "pretrained"], ["basis"], ["structure"], ["blocks"], ["physics"], ["tightbinding"], ["io"], ["engines"], ["data"],
    ["graph"], ["nn"], ["losses"], ["models"], ["inference"], ["analysis"], ["train"],
    ["workflows"], ["cli"],
]
RANK = {name: n for n, layer in enumerate(LAYERS) for name in layer}
PACKAGE = Path(nextham.__file__).parent


def _unit(path: Path, root: Path) -> str | None:
    """The top-level package or module of ``nextham`` a file belongs to (None for nextham/__init__.py)."""
    parts = path.relative_to(root).with_suffix("").parts
    return None if parts == ("__init__",) else parts[0]


def _imported_units(path: Path, root: Path) -> set[tuple[str, int]]:
    """(top-level unit of nextham, line) for every import of nextham in a file below ``root`` (nextham/)."""
    module = ["nextham", *path.relative_to(root).with_suffix("").parts]
    package = module[:-1] if module[-1] != "__init__" else module[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = base + (node.module.split(".") if node.module else [])
            else:
                name = node.module.split(".")
            # `from nextham import train` / `from .. import data`: the names are the units
            targets = [name + [a.name] for a in node.names] if len(name) == 1 else [name]
        for t in targets:
            if t[0] == "nextham" and len(t) > 1:
                out.add((t[1], node.lineno))
    return out


def _violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        unit = _unit(path, root)
        if unit is None or unit == "testing":
            continue
        if unit not in RANK:
            bad.append(f"{path.relative_to(root.parent)}: package {unit!r} has no layer in tests/test_layering.py")
            continue
        for target, line in sorted(_imported_units(path, root)):
            if target == unit:
                continue
            where = f"{path.relative_to(root.parent)}:{line}"
            if target == "testing":
                bad.append(f"{where}: production code imports nextham.testing")
            elif target not in RANK:
                bad.append(f"{where}: imports nextham.{target}, which has no layer in tests/test_layering.py")
            elif RANK[target] > RANK[unit]:
                bad.append(f"{where}: {unit} (layer {RANK[unit]}) imports the higher {target} (layer {RANK[target]})")
    return bad


def test_imports_point_down():
    bad = _violations()
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_the_walk_sees_relative_absolute_and_function_level_imports(tmp_path):
    """The checker itself, on a small fake package: every import form resolves to the unit it names."""
    root = tmp_path / "nextham"
    (root / "basis").mkdir(parents=True)
    (root / "basis" / "probe.py").write_text(
        "import nextham.cli.main\nfrom nextham import train\n\ndef f():\n"
        "    from ..analysis.plots import plot_bands\n    from .. import workflows\n"
        "    from . import orbitals\n    from ..testing.toy import ToyModel\n")
    (root / "cli").mkdir()
    (root / "cli" / "ok.py").write_text("from ..train.loop import Trainer\nfrom .errors import clear_errors\n")
    (root / "extra.py").write_text("")
    assert {u for u, _ in _imported_units(root / "basis" / "probe.py", root)} == {
        "cli", "train", "analysis", "workflows", "basis", "testing"}
    messages = _violations(root)
    for unit in ("cli", "train", "analysis", "workflows"):
        assert any(f"basis (layer {RANK['basis']}) imports the higher {unit}" in m for m in messages), messages
    assert "nextham/basis/probe.py:8: production code imports nextham.testing" in messages
    assert "nextham/extra.py: package 'extra' has no layer in tests/test_layering.py" in messages
    assert len(messages) == 6 and not any("cli/ok.py" in m for m in messages)
