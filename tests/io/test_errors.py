"""Bad input gives one clear FormatError naming the file (and line); the CLI prints one line, no traceback.

Broken inputs are derived from the shared ABACUS/DeepH fixtures (see conftest.py for their sources).
"""

from __future__ import annotations

import re

import pytest

from nextham.io import FormatError, read
from nextham.io.abacus import read_abacus
from nextham.io.abacus_csr import read_csr


def _lines(p):
    return p.read_text().splitlines()


def test_truncated_file(c_soc_copy):
    f = c_soc_copy / "data-HR-sparse_SPIN0.csr"
    f.write_bytes(f.read_bytes()[:900])
    with pytest.raises(FormatError) as e:
        read_abacus(c_soc_copy)
    assert e.value.path == str(f) and e.value.line == 5 and "truncated" in str(e.value)
    assert str(e.value).startswith(f"{f}:5: ")


def test_truncated_after_whole_blocks(si2_copy):
    f = si2_copy / "data-SR-sparse_SPIN0.csr"
    lines = _lines(f)
    k, blocks = 3, 0
    while blocks < 10:  # keep the header and ten whole R blocks
        k += 1 + 3 * (int(lines[k].split()[3]) > 0)
        blocks += 1
    f.write_text("\n".join(lines[:k]) + "\n")
    with pytest.raises(FormatError, match=r"announces 177 R blocks but the file holds 10 \(truncated"):
        read_abacus(si2_copy)


def test_wrong_nnz(c_soc_copy):
    f = c_soc_copy / "data-HR-sparse_SPIN0.csr"
    lines = _lines(f)
    lines[3] = "0 0 0 41"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as e:
        read_abacus(c_soc_copy)
    assert e.value.line == 5 and "expected 41 complex values" in e.value.reason


def test_basis_does_not_match_dimension(si2_copy):
    with pytest.raises(FormatError) as e:
        read_abacus(si2_copy, basis={"Si": "2s2p"})
    msg = str(e.value)
    assert e.value.path.endswith(".csr") and e.value.line == 2
    assert "matrix dimension 26 does not match the basis" in msg and "2 Si x 2s2p (8)" in msg


def test_missing_overlap_file(si2_copy, mote2_legacy_dir, tmp_path):
    (si2_copy / "data-SR-sparse_SPIN0.csr").unlink()
    with pytest.raises(FormatError, match=r"missing overlap file: expected one of .*data-SR-sparse_SPIN0.csr"):
        read(si2_copy)
    from io_helpers import writable_copy
    d = writable_copy(mote2_legacy_dir, tmp_path / "legacy")
    (d / "overlaps.h5").unlink()
    with pytest.raises(FormatError) as e:
        read(d)
    assert e.value.path.endswith("overlaps.h5") and "missing overlap file" in str(e.value)


def test_unknown_header(si2_copy, tmp_path):
    f = si2_copy / "data-HR-sparse_SPIN0.csr"
    lines = _lines(f)
    lines[1] = "Matrix size of H(R): 26"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as e:
        read_csr(f)
    assert e.value.line == 2 and "unknown header" in e.value.reason
    g = tmp_path / "x.csr"
    g.write_text("hello world\n1 2 3\n")
    with pytest.raises(FormatError) as e:
        read_csr(g)
    assert e.value.line == 1 and "unknown header" in e.value.reason
    h = tmp_path / "y.csr"
    h.write_text(" --- Ionic Step 1 ---\n # print H matrix\n 1 # number of spin directions\n 1 # spin index\n"
                 " 26 # number of orbitals\n")
    with pytest.raises(FormatError) as e:
        read_csr(h)
    assert e.value.line == 5 and "number of localized basis" in e.value.reason


@pytest.mark.parametrize("mutate,expect", [
    (lambda L: L.__setitem__(5, L[5].replace(" 14 ", " 99 ", 1)), "column index outside"),
    (lambda L: L.__setitem__(6, L[6].rsplit(" ", 1)[0] + " 42"), "row pointer must start at 0 and end at nnz"),
    (lambda L: L.__setitem__(4, L[4].replace("e-", "q-", 1)), "is not a number"),
    (lambda L: L.__setitem__(3, "-3 -1 x 43"), "is not an integer"),
    (lambda L: L.__setitem__(4, L[4].replace(L[4].split()[0], "nan", 1)), "non-finite"),
])
def test_specific_csr_errors_name_the_line(si2_copy, mutate, expect):
    f = si2_copy / "data-HR-sparse_SPIN0.csr"
    lines = _lines(f)
    mutate(lines)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=expect) as e:
        read_csr(f)
    assert e.value.line is not None and re.match(rf"{re.escape(str(f))}:\d+: ", str(e.value))


def test_not_hermitian_is_reported(c_soc_copy):
    f = c_soc_copy / "data-HR-sparse_SPIN0.csr"
    text = f.read_text().replace("(7.32143243e-03,0.00000000e+00)", "(9.32143243e-03,0.00000000e+00)", 1)
    f.write_text(text)
    with pytest.raises(FormatError, match="not Hermitian"):
        read_abacus(c_soc_copy)


def test_deeph_errors(mote2_new_dir, mote2_legacy_dir, tmp_path):
    import h5py
    import json
    from io_helpers import writable_copy

    d = writable_copy(mote2_new_dir, tmp_path / "new")
    info = json.loads((d / "info.json").read_text())
    info["elements_orbital_map"]["Mo"] = [0, 1, 2]
    (d / "info.json").write_text(json.dumps(info))
    with pytest.raises(FormatError, match="orbits_quantity 57 but"):
        read(d)
    d2 = writable_copy(mote2_legacy_dir, tmp_path / "legacy")
    (d2 / "orbital_types.dat").write_text("0 1\n0 1\n0 1\n")
    with pytest.raises(FormatError, match=r"shape \(19, 19\), but the orbital types give \(4, 4\)"):
        read(d2)
    d3 = writable_copy(mote2_new_dir, tmp_path / "new3")
    (d3 / "POSCAR").write_text("x\n1.0\n1 0 0\n0 1 0\n")
    with pytest.raises(FormatError) as e:
        read(d3)
    assert e.value.path.endswith("POSCAR") and "file ends early" in str(e.value)
    d4 = writable_copy(mote2_new_dir, tmp_path / "new4")
    (d4 / "info.json").write_text('{"spinful": false,')
    with pytest.raises(FormatError) as e:
        read(d4)
    assert e.value.path.endswith("info.json") and e.value.line == 1
    d5 = writable_copy(mote2_new_dir, tmp_path / "new5")
    with h5py.File(d5 / "overlap.h5", "a") as h5:
        del h5["chunk_boundaries"]
    with pytest.raises(FormatError, match=r"missing datasets \['chunk_boundaries'\]"):
        read(d5)


def test_cli_prints_one_line_without_traceback(c_soc_copy, tmp_path):
    from typer.testing import CliRunner
    import typer
    from nextham.cli import convert

    app = typer.Typer()
    convert.register(app)
    app.command("noop")(lambda: None)
    f = c_soc_copy / "data-HR-sparse_SPIN0.csr"
    f.write_bytes(f.read_bytes()[:900])
    res = CliRunner().invoke(app, ["convert", str(c_soc_copy), str(tmp_path / "out.h5")])
    assert res.exit_code == 2
    out = res.output.strip()
    assert out.count("\n") == 0 and "Traceback" not in out
    assert out.startswith("error: ") and f"{f}:5:" in out
