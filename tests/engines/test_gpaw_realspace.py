"""The direct real-space assembly equals the Born-von Karman reference path on every block.

``method="realspace"`` (default) builds S, T and projector overlaps per lattice offset, V(R) per
cell displacement and the PAW/SOC three-centre sums without k-points; ``method="bvk"`` evaluates
Bloch matrices on a full k-mesh and Fourier transforms them. Both must agree to rounding:
<= 1e-10 for S and <= 1e-8 eV for H0 and H, with and without spin-orbit coupling.
Fast cases (coarse grid) run in the default suite; the full set at default settings is ``slow``.
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

pytest.importorskip("gpaw")

from nextham.engines.gpaw import GPAWEngine  # noqa: E402
from nextham.physics.bands import eigenvalues  # noqa: E402

FAST = dict(h=0.3, check_kpoints=2, drop_below=0.0)


def block_differences(new, ref) -> dict[str, float]:
    """Largest |difference| per matrix over the union of both edge lists (absent blocks are zero)."""
    out = {}
    idx = ref.find_edges(new.edge_index[:, 0], new.edge_index[:, 1], new.edge_R)
    back = new.find_edges(ref.edge_index[:, 0], ref.edge_index[:, 1], ref.edge_R)
    for name in ref.blocks:
        a, b = new.block_list(name), ref.block_list(name)
        err = [np.abs(a[e] - b[idx[e]]).max() if idx[e] >= 0 else np.abs(a[e]).max() for e in range(new.n_edges)]
        err += [np.abs(b[e]).max() for e in np.flatnonzero(back < 0)]
        out[name] = float(max(err))
    return out


def band_error_meV(rec, name) -> float:
    md = rec.metadata
    e, dropped = eigenvalues(rec, np.array(md["check_kpoints"]), which=name)
    assert not dropped.any()
    return float(1000 * np.abs(e - np.array(md[f"check_eigenvalues_{name}_eV"])).max())


def compare(atoms, soc, h0_only, **settings):
    new = GPAWEngine(**settings).compute(atoms, soc=soc, h0_only=h0_only)
    ref = GPAWEngine(**settings, method="bvk").compute(atoms, soc=soc, h0_only=h0_only)
    new.validate()
    assert new.metadata["method"] == "realspace" and ref.metadata["method"] == "bvk"
    assert max(new.metadata["realspace_residual"].values()) == 0.0
    err = block_differences(new, ref)
    assert err["S"] <= 1e-10, err
    assert max(v for k, v in err.items() if k != "S") <= 1e-8, err
    for which in [n for n in ("H0", "H") if n in new.blocks and settings.get("check_kpoints", 3) > 0]:
        assert band_error_meV(new, which) < 1e-3, which
    if not h0_only:
        assert abs(new.fermi_energy_eV - ref.fermi_energy_eV) < 1e-6
    return new, ref, err


def test_si_h0_equals_bvk_path():
    compare(bulk("Si", "diamond", a=5.43), soc=False, h0_only=True, **FAST)


def test_gaas_soc_h0_and_scf_h_equal_bvk_path():
    new, ref, err = compare(bulk("GaAs", "zincblende", a=5.65), soc=True, h0_only=False, **FAST)
    assert new.spinful and set(err) == {"S", "H0", "H"}
    t = new.metadata["timings"]
    assert t["t_H_extraction"] < t["t_SCF"]


def low_symmetry_cell() -> Atoms:
    """Triclinic 3-atom cell (P1): no operation relates its blocks."""
    cell = [[4.1, 0.2, 0.1], [0.6, 4.3, -0.2], [0.3, 0.5, 4.6]]
    return Atoms("SiGeC", cell=cell, pbc=True,
                 scaled_positions=[[0.02, 0.05, 0.01], [0.31, 0.22, 0.40], [0.63, 0.71, 0.55]])


def cspbbr3() -> Atoms:
    a = 5.87
    return Atoms("CsPbBr3", cell=np.eye(3) * a, pbc=True,
                 scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


@pytest.mark.slow
@pytest.mark.parametrize("soc", [False, True], ids=["nosoc", "soc"])
@pytest.mark.parametrize("name,atoms", [
    ("Si", bulk("Si", "diamond", a=5.43)),
    ("GaAs", bulk("GaAs", "zincblende", a=5.65)),
    ("PbTe", bulk("PbTe", "rocksalt", a=6.46)),
    ("CsPbBr3", cspbbr3()),
    ("SiGeC-P1", low_symmetry_cell()),
])
def test_realspace_equals_bvk_path_default_settings(name, atoms, soc):
    compare(atoms, soc=soc, h0_only=False, drop_below=0.0)


def test_negligible_edges_are_not_stored_and_bands_do_not_move():
    """The default ``drop_below`` (1e-7) keeps bands within 1e-3 meV of the full record at the demo's
    settings (GaAs with SOC, szp(dzp), h = 0.3 Å) and stores about a third of the blocks."""
    from nextham.engines.gpaw import drop_negligible_edges

    full = GPAWEngine(basis="szp(dzp)", h=0.3, check_kpoints=0, drop_below=0.0).compute(
        bulk("GaAs", "zincblende", a=5.65), soc=True, h0_only=True)
    cut, info = drop_negligible_edges(full, 1e-7)
    cut.validate()
    assert info["count"] > 0 and info["largest_dropped"] < 1e-7
    ratio = sum(b.nbytes for b in cut.blocks.values()) / sum(b.nbytes for b in full.blocks.values())
    assert ratio < 0.4, ratio
    k = np.random.default_rng(0).random((12, 3))
    for which in ("H0",):
        e_full, _ = eigenvalues(full, k, which=which)
        e_cut, _ = eigenvalues(cut, k, which=which)
        assert 1000 * np.abs(e_cut - e_full).max() < 1e-3
    # the edges kept are the same blocks as in the full record
    idx = full.find_edges(cut.edge_index[:, 0], cut.edge_index[:, 1], cut.edge_R)
    assert (idx >= 0).all()
    for name in cut.blocks:
        a, b = cut.block_list(name), full.block_list(name)
        assert all(np.array_equal(a[e], b[idx[e]]) for e in range(cut.n_edges))


def test_h0_without_wave_functions_and_with_reused_setups_equals_bvk_path():
    """The H0-only state without GPAW's wave functions (``check_kpoints=0``), with setups reused from
    an earlier structure and the atomic XC corrections memoized, still equals the BvK path (which
    builds a plain ``DFT`` object); a second structure builds no new setup."""
    from nextham.engines import gpaw as engine

    si = bulk("Si", "diamond", a=5.43)
    settings = dict(FAST, check_kpoints=0)
    first, _, _ = compare(si, soc=False, h0_only=True, **settings)
    n_setups = len(engine._SETUP_CACHE)
    assert n_setups >= 1
    moved = si.copy()
    moved.positions[1] += [0.05, -0.03, 0.02]
    compare(moved, soc=False, h0_only=True, **settings)
    assert len(engine._SETUP_CACHE) == n_setups
    again = GPAWEngine(**settings).compute(si, soc=False, h0_only=True)
    for name in first.blocks:
        assert np.array_equal(first.blocks[name], again.blocks[name]), name


def test_reused_two_centre_expansions_give_identical_records_and_checks():
    """GPAW's TCI expansions are built once per sequence of setups and reused by the SCF object and
    the eigenvalue checks of later structures; records and GPAW's own check eigenvalues are bit for
    bit those computed with empty caches."""
    from nextham.engines import gpaw as engine

    atoms = bulk("GaAs", "zincblende", a=5.65)
    settings = dict(FAST, check_kpoints=1)
    engine._TCI_CACHE.clear()
    engine._SETUP_CACHE.clear()
    fresh = GPAWEngine(**settings).compute(atoms, soc=True)
    n_cached = len(engine._TCI_CACHE)
    assert n_cached >= 1
    moved = atoms.copy()
    moved.positions[1] += [0.04, 0.02, -0.03]
    GPAWEngine(**settings).compute(moved, soc=True)
    again = GPAWEngine(**settings).compute(atoms, soc=True)
    assert len(engine._TCI_CACHE) == n_cached
    for name in fresh.blocks:
        assert np.array_equal(fresh.blocks[name], again.blocks[name]), name
    for key in ("check_eigenvalues_H0_eV", "check_eigenvalues_H_eV"):
        assert np.array_equal(fresh.metadata[key], again.metadata[key]), key


def test_memoized_paw_corrections_equal_gpaw_per_atom():
    """The initial state's PAW dH per atom (XC corrections computed once per species) equals that of
    GPAW's own ``DFT`` object bit for bit; in Si8 seven of eight atoms reuse the first's."""
    from gpaw.new.calculation import DFT

    from nextham.engines.gpaw import initial_dft_state

    si8 = bulk("Si", "diamond", a=5.43, cubic=True)
    si8.positions[3] += [0.04, 0.0, -0.02]  # a distinct atom still gets its own (equal-D) entry
    params = dict(mode={"name": "lcao", "force_complex_dtype": True}, basis="szp(dzp)", xc="PBE", h=0.3,
                  kpts={"size": (1, 1, 1), "gamma": True}, symmetry="off",
                  occupations={"name": "fermi-dirac", "width": 0.1})
    state = initial_dft_state(si8, params, wave_functions=False)
    memo = state.pot_calc.xc.calculate_paw_correction
    assert memo.hits == 7 and len(memo.cache) == 1
    plain = DFT(si8, **params, txt=None, converge=False)
    for a in range(len(si8)):
        assert np.array_equal(np.asarray(state.potential.dH_asii[a]), np.asarray(plain.potential.dH_asii[a])), a
    assert np.array_equal(state.potential.vt_sR.data, plain.potential.vt_sR.data)


def test_batched_two_centre_integrals_equal_gpaw_per_displacement():
    """``evaluate_two_centre`` (all displacements at once) equals GPAW's per-vector ``tci_overlap``
    for overlap, kinetic and projector expansions of both species pairs of GaAs, from r = 0 to the
    tail (where GPAW drops radial terms below 1e-10)."""
    from gpaw.lcao.overlap import AtomicDisplacement

    from nextham.engines.gpaw import GPAWSettings, _GPAWRun, evaluate_two_centre, wrapped_into_cell

    atoms, _ = wrapped_into_cell(bulk("GaAs", "zincblende", a=5.65))
    run = _GPAWRun(atoms, GPAWSettings(h=0.3, check_kpoints=0))
    run.build_scf_object(kpts=None)
    rng = np.random.default_rng(5)
    direction = rng.normal(size=(60, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    R = direction * rng.uniform(0.0, 20.0, size=(60, 1))
    R[0] = 0.0
    for table in (run.tci.O_II, run.tci.T_II, run.tci.P_II):
        for I1 in range(2):
            for I2 in range(2):
                got = evaluate_two_centre(table[I1, I2], R)
                ref = np.array([AtomicDisplacement(None, 0, 1, v, np.zeros(3), None).overlap_without_phases(table[I1, I2])
                                for v in R])
                assert got.shape == ref.shape
                np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)


# A strained wurtzite ZnO cell of the accuracy benchmark (seed 0) for which GPAW's finite-difference
# stencil fails ("You have a weird unit cell!") at h = 0.3 Å.
WEIRD_ZNO_CELL = [[3.312573444403328, -0.010235344118491639, -0.010517124279155616],
                  [-1.6651507902247533, 2.7838117512863976, 0.004509171957250277],
                  [-0.016859759229046388, -0.0013871765220973757, 5.238138974471947]]
WEIRD_ZNO_POSITIONS = [[3.231838375144357, 0.0680238630761171, 0.014688229421372205],
                       [-0.06368798928720908, 1.8568977150467827, 0.5844381175299448],
                       [-0.035909991917337056, 1.815964754287146, 2.662244327174713],
                       [1.5601353581253434, 2.758540217895041, 3.1772001333012665]]


def test_cell_gpaw_rejects_is_computed_in_its_reduced_basis():
    """GPAW rejects this cell's stencil; the engine computes the same lattice in its Minkowski-reduced
    basis and returns the record in the user's cell and positions, with bands equal to GPAW's own
    eigenvalues at the check k-points (converted to the user's reciprocal basis)."""
    zno = Atoms("ZnOZnO", positions=WEIRD_ZNO_POSITIONS, cell=WEIRD_ZNO_CELL, pbc=True)
    rec = GPAWEngine(basis="szp(dzp)", h=0.3, check_kpoints=2).compute(zno, soc=False, h0_only=True)
    rec.validate()
    assert rec.metadata["cell_reduction"]["operation"] != np.eye(3).tolist()
    np.testing.assert_array_equal(rec.cell, zno.cell.array)
    np.testing.assert_array_equal(rec.positions, zno.positions)
    assert band_error_meV(rec, "H0") < 1e-3
