"""Corrupted inputs that used to pass silently: each exits 2 with one line naming the file and the problem.

Fixtures: ../shared/fixtures/abacus_nao (abacus-develop tests/03_NAO_multik, LGPL-3.0), abacus/Si2_nspin1
(abacus-develop tests/integrate/207_NO_KP_OH2, commit 729059f), deeph/MoTe2_* (DeepH-dock commit 49a94b0).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from nextham.io import FormatError, read, write
from nextham.testing.fixtures import require_fixtures
from io_helpers import writable_copy


def run_convert(app, src: Path, dst: Path, *extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["convert", str(src), str(dst), *extra])
    return res.exit_code, res.output


def assert_one_line_error(code: int, output: str, file_name: str, pattern: str) -> None:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert file_name in lines[0] and re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in output


@pytest.fixture
def si_nao(tmp_path) -> Path:
    nao = require_fixtures("abacus_nao")
    d = writable_copy(nao / "scf_out_hsr", tmp_path / "si")
    for f in (nao / "orbitals").iterdir():
        shutil.copy(f, d / f.name)
    return d


def edit_line(path: Path, old: str, new: str) -> None:
    lines = path.read_text().split("\n")
    k = lines.index(old)
    lines[k] = new
    path.write_text("\n".join(lines))


def test_abacus_block_without_minus_R_partner(app, si_nao, tmp_path):
    """One changed R header (as in the issue: eigenvalues 2 keV off with exit 0 before)."""
    edit_line(si_nao / "hrs1_nao.csr", " -1 0 0 48", " -2 0 0 48")
    code, out = run_convert(app, si_nao, tmp_path / "x.h5")
    assert_one_line_error(code, out, "hrs1_nao.csr", r"hrs1_nao.csr:28: R = \(-2, 0, 0\) has no -R = \(2, 0, 0\) partner")


def test_abacus_without_origin_block(app, si_nao, tmp_path):
    text = (si_nao / "hrs1_nao.csr").read_text()
    n = re.search(r"\n 0 0 0 (\d+)\n", text).group(1)
    edit_line(si_nao / "hrs1_nao.csr", f" 0 0 0 {n}", f" 0 0 7 {n}")
    code, out = run_convert(app, si_nao, tmp_path / "x.h5")
    assert_one_line_error(code, out, "hrs1_nao.csr", r"no R = \(0, 0, 0\) block")


def test_abacus_legacy_file_without_partner(app, tmp_path):
    si2 = writable_copy(require_fixtures("abacus", "Si2_nspin1"), tmp_path / "si2")
    orb = require_fixtures("abacus", "orbitals")
    f = si2 / "data-SR-sparse_SPIN0.csr"
    lines = f.read_text().split("\n")
    k = next(k for k, ln in enumerate(lines) if re.fullmatch(r"-?\d+ -?\d+ -?\d+ [1-9]\d*", ln))  # a non-empty block
    Rx, rest = lines[k].split(" ", 1)
    lines[k] = f"{int(Rx) + 20} {rest}"
    f.write_text("\n".join(lines))
    code, out = run_convert(app, si2, tmp_path / "x.h5", "--orbital-dir", str(orb))
    assert_one_line_error(code, out, "data-SR-sparse_SPIN0.csr", r"partner")


def test_abacus_non_finite_fermi_in_header(si_nao):
    edit_line(si_nao / "hrs1_nao.csr", " 1 # spin index", " 1 # spin index, E_Fermi = nan eV")
    with pytest.raises(FormatError, match=r"hrs1_nao.csr:4: E_Fermi = nan is not finite"):
        read(si_nao)


def _drop_deeph_new_block(path: Path, drop) -> None:
    with h5py.File(path, "r") as h5:
        pairs, shapes, bounds, entries = (h5[k][()] for k in ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries"))
    keep = np.array([not drop(p) for p in pairs.tolist()])
    chunks = [entries[bounds[e]:bounds[e + 1]] for e in np.flatnonzero(keep)]
    sizes = [len(c) for c in chunks]
    with h5py.File(path, "w") as h5:
        h5["atom_pairs"] = pairs[keep]
        h5["chunk_shapes"] = shapes[keep]
        h5["chunk_boundaries"] = np.concatenate([[0], np.cumsum(sizes)])
        h5["entries"] = np.concatenate(chunks)


def test_deeph_new_without_an_onsite_block(app, tmp_path):
    d = writable_copy(require_fixtures("deeph", "MoTe2_new"), tmp_path / "mote2")
    _drop_deeph_new_block(d / "hamiltonian.h5", lambda p: p[:3] == [0, 0, 0] and p[3] == p[4] == 1)
    code, out = run_convert(app, d, tmp_path / "x.h5")
    assert_one_line_error(code, out, "hamiltonian.h5", r"no on-site H block \(R = 0\) for atom 1")


def test_deeph_legacy_without_an_onsite_block(app, tmp_path):
    d = writable_copy(require_fixtures("deeph", "MoTe2_legacy"), tmp_path / "mote2")
    with h5py.File(d / "hamiltonians.h5", "a") as h5:
        del h5["[0, 0, 0, 3, 3]"]
    code, out = run_convert(app, d, tmp_path / "x.h5")
    assert_one_line_error(code, out, "hamiltonians.h5", r"no on-site H block \(R = 0\) for atom 2")


def test_deeph_legacy_element_dat_disagrees_with_nsites(app, tmp_path):
    d = writable_copy(require_fixtures("deeph", "MoTe2_legacy"), tmp_path / "mote2")
    (d / "element.dat").write_text("42\n52\n")
    code, out = run_convert(app, d, tmp_path / "x.h5")
    assert_one_line_error(code, out, "element.dat", r"lists 2 atoms but info.json says nsites = 3")


@pytest.mark.parametrize("fmt,key", [("MoTe2_legacy", "fermi_level"), ("MoTe2_new", "fermi_energy_eV")])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_deeph_non_finite_fermi_level(app, tmp_path, fmt, key, bad):
    d = writable_copy(require_fixtures("deeph", fmt), tmp_path / "mote2")
    info = json.loads((d / "info.json").read_text())
    info[key] = bad
    (d / "info.json").write_text(json.dumps(info))  # Python's json writes NaN / Infinity
    code, out = run_convert(app, d, tmp_path / "x.h5")
    assert_one_line_error(code, out, "info.json", r"Fermi level .* is not finite")


def test_abacus_writer_accepts_a_string_source(tmp_path):
    """Records of the built-in tight-binding models carry ``metadata["source"]`` as a string."""
    from nextham.tightbinding.examples import silicon_vogl

    rec = silicon_vogl()
    assert isinstance(rec.metadata["source"], str)
    for fmt in ("legacy", "nao"):
        write(rec, tmp_path / fmt, "abacus", csr_format=fmt)
        back, want = read(tmp_path / fmt).to_dense("H"), rec.to_dense("H")
        # eV values that no float in Ry reproduces exactly (about 1 in 10 for arbitrary numbers) move by 1 ulp
        assert set(back) == set(want) and all(np.allclose(back[R], want[R], rtol=2.3e-16, atol=0) for R in want)
    spinful = silicon_vogl(spinful=True)
    write(spinful, tmp_path / "soc", "abacus", csr_format="nao")
    assert read(tmp_path / "soc").spinful
