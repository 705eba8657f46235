"""ABACUS >= 3.9 ``*_nao.csr`` files exactly as ABACUS writes them.

Fixtures: ../shared/fixtures/abacus_nao (deepmodeling/abacus-develop tests/03_NAO_multik, commits 533ca12c1 and
bad41668, LGPL-3.0; see its README for every file's source). Values wrapped 6 to a line, indices 16, empty R
blocks, ``E_Fermi`` in the spin-index line, ``IONIC_STEP:`` sections of the MD ``syns_nao.csr``, nspin 1, 2, 4.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import eigh
from scipy.special import erfc
from typer.testing import CliRunner

from nextham.blocks.record import hermitian_error
from nextham.io.abacus import RYDBERG_EV, read_abacus, write_abacus
from nextham.io.abacus_csr import read_csr, read_csr_steps, write_csr_nao
from nextham.physics.kpoints import monkhorst_pack
from nextham.testing.fixtures import require_fixtures
from io_helpers import assert_records_equal, bloch_dense, symmetry_errors, symmetry_operations

# folder -> (S file from another run of the same structure where the folder has none, KPT mesh)
CASES = {
    "scf_out_hsr": (None, (2, 1, 1)),
    "scf_out_hsr_spin2": ("scf_out_hsr/srs1_nao.csr", (2, 1, 1)),
    "scf_out_hsr_spin4": (None, (2, 1, 1)),
    "nscf_out_hsr_tr_rr": (None, (2, 2, 2)),
    "md_out_syns": ("nscf_out_hsr_tr_rr/srs1_nao.csr", (2, 1, 1)),
    "deepmodeling_bad41668/scf_out_hsr": ("scf_out_hsr/srs1_nao.csr", (2, 1, 1)),
    "deepmodeling_bad41668/nscf_out_hsr_tr_rr": ("nscf_out_hsr_tr_rr/srs1_nao.csr", (2, 2, 2)),
}
GAUSS_SIGMA_RY = 0.002  # smearing_sigma of every INPUT here


@pytest.fixture
def nao() -> Path:
    return require_fixtures("abacus_nao")


def read_case(nao: Path, name: str):
    overlap, _ = CASES[name]
    return read_abacus(nao / name, orbital_dirs=[nao / "orbitals"], overlap=None if overlap is None else nao / overlap)


def naive_nao(path: Path) -> tuple[int, dict]:
    """Deliberately naive parser (no nextham code) of a new-layout file: {R: dense matrix} in ABACUS order.

    Drops comments, takes the dimension from its header line, skips the unit cell (up to the comment box),
    then reads the rest as one token stream: Rx Ry Rz nnz, nnz values, nnz columns, dim + 1 row pointers.
    """
    lines = path.read_text().splitlines()
    dim = int(next(ln for ln in lines if "number of localized basis" in ln).split("#")[0])
    start = max(k for k, ln in enumerate(lines) if ln.strip().startswith("#---"))
    toks = " ".join(ln for ln in lines[start + 1:] if not ln.strip().startswith("#")).split()
    out, k = {}, 0
    while k < len(toks):
        R, nnz = tuple(int(t) for t in toks[k:k + 3]), int(toks[k + 3])
        k += 4
        vals = [complex(*map(float, t.strip("()").split(","))) if "(" in t else float(t) for t in toks[k:k + nnz]]
        cols = [int(t) for t in toks[k + nnz:k + 2 * nnz]]
        ptr = [int(t) for t in toks[k + 2 * nnz:k + 2 * nnz + dim + 1]]
        k += 2 * nnz + dim + 1
        M = np.zeros((dim, dim), complex)
        M[np.repeat(np.arange(dim), np.diff(ptr)), cols] = vals
        out[R] = M
    return dim, out


def test_every_file_parses_with_the_counts_abacus_wrote(nao):
    """Counts as listed in the fixture README: R blocks (empty ones included) and stored values."""
    expect = {  # file: (dim, number of R, nnz, complex)
        "scf_out_hsr/hrs1_nao.csr": (8, 13, 520, False), "scf_out_hsr/srs1_nao.csr": (8, 13, 376, False),
        "scf_out_hsr_spin2/hrs1_nao.csr": (8, 13, 520, False), "scf_out_hsr_spin2/hrs2_nao.csr": (8, 13, 520, False),
        "scf_out_hsr_spin4/hrs1_nao.csr": (26, 7, 662, True), "scf_out_hsr_spin4/srs1_nao.csr": (26, 7, 646, True),
        "nscf_out_hsr_tr_rr/hrs1_nao.csr": (6, 11, 164, False), "nscf_out_hsr_tr_rr/srs1_nao.csr": (6, 9, 142, False),
        "nscf_out_hsr_tr_rr/trs1_nao.csr": (6, 9, 142, False), "md_out_syns/hrs1_nao.csr": (6, 11, 164, False),
        "deepmodeling_bad41668/scf_out_hsr/hrs1_nao.csr": (8, 13, 520, False),
        "deepmodeling_bad41668/nscf_out_hsr_tr_rr/hrs1_nao.csr": (6, 11, 164, False),
    }
    found = sorted(str(p.relative_to(nao)) for p in nao.rglob("*.csr"))
    assert set(found) == set(expect) | {"md_out_syns/syns_nao.csr"}
    for name, (dim, n_R, nnz, cplx) in expect.items():
        c = read_csr(nao / name)
        assert (c.dim, len(c.R), len(c.values), c.is_complex) == (dim, n_R, nnz, cplx), name
        if name != "nscf_out_hsr_tr_rr/trs1_nao.csr":  # T(R) is still in the old layout
            assert c.kind == "nao" and c.header["step"] == 1
    # the two empty blocks of the H2O H files
    c = read_csr(nao / "nscf_out_hsr_tr_rr/hrs1_nao.csr")
    empty = c.R[np.diff(c.block_start) == 0].tolist()
    assert empty == [[-1, -1, 0], [1, 1, 0]]
    # spin index line with E_Fermi (eV), also negative
    assert read_csr(nao / "scf_out_hsr_spin2/hrs2_nao.csr").header["fermi_energy_eV"] == 10.3798
    assert read_csr(nao / "deepmodeling_bad41668/nscf_out_hsr_tr_rr/hrs1_nao.csr").header["fermi_energy_eV"] == -4.67919


@pytest.mark.parametrize("name", ["scf_out_hsr/hrs1_nao.csr", "scf_out_hsr_spin4/srs1_nao.csr",
                                  "nscf_out_hsr_tr_rr/hrs1_nao.csr", "deepmodeling_bad41668/scf_out_hsr/hrs1_nao.csr"])
def test_values_equal_a_naive_parse(nao, name):
    dim, ref = naive_nao(nao / name)
    c = read_csr(nao / name)
    assert c.dim == dim and sorted(map(tuple, c.R.tolist())) == sorted(ref)
    for r, R in enumerate(map(tuple, c.R.tolist())):
        a, b = c.block_start[r], c.block_start[r + 1]
        M = np.zeros((dim, dim), complex)
        M[c.rows[a:b], c.cols[a:b]] = c.values[a:b]
        assert np.array_equal(M, ref[R]), R


def test_md_async_overlap_steps(nao):
    """``syns_nao.csr``: two ``IONIC_STEP:`` sections, 9 R each; S_async is not symmetric (README: 2.6e-4, 2.3e-5)."""
    steps = read_csr_steps(nao / "md_out_syns/syns_nao.csr")
    assert [s.header["step"] for s in steps] == [1, 2]
    assert all(s.header["label"] == "S_async" and s.dim == 6 and len(s.R) == 9 for s in steps)
    asym = []
    for s in steps:
        dense = {tuple(R): np.zeros((6, 6)) for R in s.R.tolist()}
        for r, R in enumerate(map(tuple, s.R.tolist())):
            a, b = s.block_start[r], s.block_start[r + 1]
            dense[R][s.rows[a:b], s.cols[a:b]] = s.values[a:b]
        asym.append(max(np.abs(M - dense[(-R[0], -R[1], -R[2])].T).max() for R, M in dense.items()))
    np.testing.assert_allclose(asym, [2.6e-4, 2.3e-5], rtol=0.05)
    assert read_csr(nao / "md_out_syns/syns_nao.csr").header["step"] == 2  # the last step by default


@pytest.mark.parametrize("name", list(CASES))
def test_read_every_run_hermitian_positive_overlap(nao, name):
    rec = read_case(nao, name)
    assert hermitian_error(rec, "S") == 0.0 and hermitian_error(rec, "H") == 0.0  # ABACUS writes both triangles
    for k in monkhorst_pack(CASES[name][1]) + [[0.13, -0.31, 0.27]]:
        assert np.linalg.eigvalsh(bloch_dense(rec, "S", k)).min() > 0.7  # README: 0.75 (H2O) .. 0.85 (Si2)
    if name.startswith("deepmodeling") or name.endswith("spin2"):
        assert rec.metadata["source"]["fermi_source"].endswith("header")


@pytest.mark.parametrize("name,n_ops", [("scf_out_hsr", 48), ("scf_out_hsr_spin4", 48), ("nscf_out_hsr_tr_rr", 8),
                                        ("deepmodeling_bad41668/nscf_out_hsr_tr_rr", 8)])
def test_blocks_symmetric_under_the_space_group(nao, name, n_ops):
    """Wigner D (s, p, d separately) maps symmetry-related blocks into each other: the m order and signs."""
    rec = read_case(nao, name)
    ops = symmetry_operations(rec)
    assert len(ops) == n_ops
    groups = {"s": [0], "p": [1], "d": [2], "all": None}
    for m in ("S", "H"):
        errs, _ = symmetry_errors(rec, m, groups, ops=ops)
        assert max(errs.values()) < 1e-10, (m, errs)  # measured 1e-12 (spin4 H), 1e-14 elsewhere


def test_antiferromagnetic_spin2(nao):
    """nspin 2, AFM start: operations fixing each Si (Td, 24) keep each spin channel; the two channels
    have the same eigenvalues (README: to 8e-16 Ry)."""
    rec = read_case(nao, "scf_out_hsr_spin2")
    n = rec.n_orbitals
    ops = [op for op in symmetry_operations(rec) if np.array_equal(op[2], np.arange(rec.n_atoms))]
    assert len(ops) == 24
    errs, _ = symmetry_errors(rec, "H", {"all": None}, ops=ops)
    assert errs["all"] < 1e-10
    for k in monkhorst_pack((2, 1, 1)):
        Hk, Sk = bloch_dense(rec, "H", k), bloch_dense(rec, "S", k)
        assert np.abs(Hk[:n, n:]).max() == 0.0
        up, dn = eigh(Hk[:n, :n], Sk, eigvals_only=True), eigh(Hk[n:, n:], Sk, eigvals_only=True)
        assert np.abs(up - dn).max() < 1e-10


@pytest.mark.parametrize("name,expected", [("deepmodeling_bad41668/scf_out_hsr", 8.0020),
                                           ("scf_out_hsr_spin2", 7.9998),
                                           ("deepmodeling_bad41668/nscf_out_hsr_tr_rr", 8.0001)])
def test_electron_count_at_the_printed_fermi_level(nao, name, expected):
    """ABACUS's own number in the file: at the header E_Fermi (eV) the KPT mesh with its Gaussian smearing holds
    the valence electrons (Si2: 8, H2O: 8); H in Ry. Reading H as Hartree would give 4 (README)."""
    rec = read_case(nao, name)
    kpts = monkhorst_pack(CASES[name][1])
    sigma = GAUSS_SIGMA_RY * RYDBERG_EV
    N = 0.0
    for k in kpts:
        Sk = bloch_dense(rec, "S", k)
        e = eigh(bloch_dense(rec, "H", k), np.kron(np.eye(2), Sk) if rec.spinful else Sk, eigvals_only=True)
        N += 0.5 * erfc((e - rec.fermi_energy_eV) / sigma).sum() * (1 if rec.spinful else 2) / len(kpts)
    assert abs(N - expected) < 2e-4
    assert abs(N - 8) < 3e-3


def test_git_and_newest_deepmodeling_files_agree(nao):
    a, b = read_case(nao, "scf_out_hsr"), read_case(nao, "deepmodeling_bad41668/scf_out_hsr")
    assert np.array_equal(a.edge_index, b.edge_index) and np.array_equal(a.edge_R, b.edge_R)
    assert np.abs(a.blocks["H"] - b.blocks["H"]).max() < 1.1e-7 * RYDBERG_EV  # README: 1.0e-7 Ry


def test_raw_abacus_order_eigenvalues(nao):
    """Eigenvalues from the naive parse in ABACUS's own orbital order equal those of the record."""
    rec = read_case(nao, "nscf_out_hsr_tr_rr")
    _, H = naive_nao(nao / "nscf_out_hsr_tr_rr/hrs1_nao.csr")
    _, S = naive_nao(nao / "nscf_out_hsr_tr_rr/srs1_nao.csr")
    for k in [[0, 0, 0], [0.5, 0, 0.5], [0.21, -0.37, 0.11]]:
        ref = eigh(sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in H.items()) * RYDBERG_EV,
                   sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in S.items()), eigvals_only=True)
        ours = eigh(bloch_dense(rec, "H", k), bloch_dense(rec, "S", k), eigvals_only=True)
        assert np.abs(ours - ref).max() < 1e-12


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("csr_format", ["nao", "legacy"])
def test_writer_round_trip_bitwise(nao, name, csr_format, tmp_path):
    rec = read_case(nao, name)
    write_abacus(rec, tmp_path / "out", csr_format=csr_format)
    files = {p.name for p in (tmp_path / "out").iterdir()}
    if csr_format == "nao":
        assert {"hrs1_nao.csr", "srs1_nao.csr"} <= files and not any(f.startswith("data-") for f in files)
        assert ("hrs2_nao.csr" in files) == name.endswith("spin2")
    back = read_abacus(tmp_path / "out")
    assert_records_equal(rec, back, exact=True)


def test_csr_file_round_trip_bitwise(nao, tmp_path):
    """A fixture file, parsed and written by the nao writer, parses to the same arrays."""
    for name in ("scf_out_hsr_spin4/hrs1_nao.csr", "nscf_out_hsr_tr_rr/hrs1_nao.csr"):
        c = read_csr(nao / name)
        uc = c.header["ucell"]
        write_csr_nao(tmp_path / "x.csr", "H", c.dim, c.R, c.block_start, c.rows, c.cols, c.values,
                      cell=uc["latvec"] * uc["lat0_angstrom"], labels=uc["labels"], counts=uc["counts"], frac=uc["frac"])
        d = read_csr(tmp_path / "x.csr")
        for f in ("dim", "kind"):
            assert getattr(c, f) == getattr(d, f)
        for f in ("R", "block_start", "rows", "cols", "values"):
            assert np.array_equal(getattr(c, f), getattr(d, f)), (name, f)
        np.testing.assert_allclose(d.header["ucell"]["frac"], uc["frac"], rtol=0, atol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_cli_converts_every_run(nao, name, tmp_path):
    import typer

    from nextham.blocks.h5io import read_record
    from nextham.cli import convert

    app = typer.Typer()
    convert.register(app)
    app.command("noop")(lambda: None)
    overlap = CASES[name][0]
    args = ["convert", str(nao / name), str(tmp_path / "r.h5"), "--orbital-dir", str(nao / "orbitals")]
    if overlap:
        args += ["--overlap", str(nao / overlap)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert_records_equal(read_record(tmp_path / "r.h5"), read_case(nao, name))
    res = CliRunner().invoke(app, [*args[:2], str(tmp_path / "ab"), *args[3:], "--to", "abacus",
                                   "--abacus-format", "nao"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ab" / "hrs1_nao.csr").is_file()
    assert_records_equal(read_abacus(tmp_path / "ab"), read_case(nao, name))


def test_missing_overlap_is_named(nao):
    from nextham.io import FormatError

    with pytest.raises(FormatError, match="missing overlap file.*--overlap"):
        read_abacus(nao / "scf_out_hsr_spin2", orbital_dirs=[nao / "orbitals"])


def test_fuzz_nao_files(nao, tmp_path):
    """Seeded mutations of the real new-layout files (wrapped arrays, empty blocks, E_Fermi header, IONIC_STEP):
    the parser raises nothing but FormatError naming the file, and the full reader (with its partner, on-site
    and Hermiticity checks) the same."""
    from nextham.io import FormatError
    from test_fuzz import mutate

    rng = np.random.default_rng(39)
    seeds = [(nao / n).read_bytes() for n in ("nscf_out_hsr_tr_rr/hrs1_nao.csr", "scf_out_hsr_spin4/srs1_nao.csr",
                                              "deepmodeling_bad41668/scf_out_hsr/hrs1_nao.csr", "md_out_syns/syns_nao.csr")]
    f = tmp_path / "m.csr"
    errors = 0
    for trial in range(240):
        f.write_bytes(mutate(seeds[trial % len(seeds)], rng))
        try:
            read_csr_steps(f)
        except FormatError as exc:
            assert str(exc).startswith(str(f)), exc
            errors += 1
    assert errors > 80
    d = tmp_path / "run"
    shutil.copytree(nao / "nscf_out_hsr_tr_rr", d)
    for p in d.iterdir():
        p.chmod(0o644)
    originals = {n: (d / n).read_bytes() for n in ("hrs1_nao.csr", "srs1_nao.csr")}
    errors = 0
    for trial in range(100):
        name = list(originals)[trial % 2]
        (d / name).write_bytes(mutate(originals[name], rng))
        try:
            read_abacus(d, orbital_dirs=[nao / "orbitals"])
        except FormatError:
            errors += 1
        finally:
            (d / name).write_bytes(originals[name])
    assert errors > 30


def test_several_ionic_steps_in_one_file(nao, tmp_path):
    """MD with out_app_flag appends one ``--- Ionic Step n ---`` section per step: the last is read by default."""
    text = (nao / "scf_out_hsr/hrs1_nao.csr").read_text()
    second = text.replace(" --- Ionic Step 1 ---", " --- Ionic Step 2 ---").replace(" -1.12133e-04 ", " -2.22222e-04 ", 1)
    f = tmp_path / "hrs1_nao.csr"
    f.write_text(text + second)
    last, first = read_csr(f), read_csr(f, step=1)
    assert last.header["step"] == 2 and first.header["step"] == 1
    assert last.values[0] == -2.22222e-04 and first.values[0] == -1.12133e-04
    assert np.array_equal(last.values[1:], first.values[1:])
    assert [s.header["step"] for s in read_csr_steps(f)] == [1, 2]
