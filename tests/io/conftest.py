"""Fixtures of the io tests: writable copies of the shared real-DFT outputs (see ../shared/fixtures/README.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer

from nextham.cli import convert
from nextham.testing.fixtures import require_fixtures

from io_helpers import writable_copy


@pytest.fixture
def orbitals_dir() -> Path:
    """ABACUS orbital files, deepmodeling/abacus-develop tests/PP_ORB (LGPL-3.0)."""
    return require_fixtures("abacus", "orbitals")


@pytest.fixture
def si2_dir() -> Path:
    """ABACUS Si2 nspin 1, deepmodeling/abacus-develop tests/integrate/207_NO_KP_OH2 (commit 729059f)."""
    return require_fixtures("abacus", "Si2_nspin1")


@pytest.fixture
def c_soc_dir() -> Path:
    """ABACUS C atom nspin 4, deepmodeling/abacus-develop tests/integrate/207_NO_KP_OHS_SPIN4 (commit 729059f)."""
    return require_fixtures("abacus", "C_soc_nspin4")


@pytest.fixture
def mote2_legacy_dir() -> Path:
    """DeepH legacy MoTe2, kYangLi/DeepH-dock examples/convert/deeph/deeph_legacy_data/MoTe2 (commit 49a94b0)."""
    return require_fixtures("deeph", "MoTe2_legacy")


@pytest.fixture
def mote2_new_dir() -> Path:
    """DeepH new-format MoTe2, kYangLi/DeepH-dock examples/convert/deeph/deeph_updated_data/MoTe2."""
    return require_fixtures("deeph", "MoTe2_new")


@pytest.fixture
def si2_copy(si2_dir, orbitals_dir, tmp_path) -> Path:
    """A writable copy of the Si2 folder with its orbital files next to it."""
    d = writable_copy(si2_dir, tmp_path / "Si2")
    for f in orbitals_dir.iterdir():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture
def c_soc_copy(c_soc_dir, orbitals_dir, tmp_path) -> Path:
    d = writable_copy(c_soc_dir, tmp_path / "C")
    for f in orbitals_dir.iterdir():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture
def app():
    """A Typer app holding only ``nextham convert`` (plus a no-op so Typer keeps subcommands)."""
    app = typer.Typer()
    convert.register(app)
    app.command("noop")(lambda: None)
    return app
