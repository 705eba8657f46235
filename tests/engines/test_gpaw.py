"""GPAW engine: every GPAW internal it uses, conventions, and bands against GPAW's own eigenvalues.

Fast tests (default suite) use h0-only runs on a coarse grid so that a GPAW change breaks them;
full SCF runs for Si, GaAs, PbTe with and without SOC are ``slow``.
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

gpaw = pytest.importorskip("gpaw")

from nextham.basis.rotations import atom_rotation, real_spherical_harmonics  # noqa: E402
from nextham.engines.base import EngineInputError, EngineUnavailable, get_engine  # noqa: E402
from nextham.engines.gpaw import GPAWEngine, _GPAWRun, choose_setups, gpaw_shell_permutation, import_gpaw  # noqa: E402
from nextham.physics.bands import eigenvalues  # noqa: E402
from nextham.testing.geometry import geometric_twin_error  # noqa: E402

FAST = dict(h=0.3, check_kpoints=2)


def band_error_meV(rec, name):
    md = rec.metadata
    k = np.array(md["check_kpoints"])
    ref = np.array(md[f"check_eigenvalues_{name}_eV"])
    e, dropped = eigenvalues(rec, k, which=name)
    assert not dropped.any()
    assert e.shape == ref.shape
    return 1000 * np.abs(e - ref).max()


def test_version_is_pinned(monkeypatch):
    assert import_gpaw().__version__ == "26.7.0"
    monkeypatch.setattr(gpaw, "__version__", "99.0.0")
    with pytest.raises(EngineUnavailable, match="26.7.0"):
        import_gpaw()


def test_gpaw_harmonics_are_nextham_table():
    from gpaw.sphere.spherical_harmonics import Yarr

    rng = np.random.default_rng(0)
    v = rng.normal(size=(64, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    for l in range(4):
        yg = Yarr(list(range(l * l, (l + 1) ** 2)), v).T  # (n, 2l+1)
        idx, sign = gpaw_shell_permutation(l)
        yg = yg[:, idx] * sign
        yn = real_spherical_harmonics(l, v)
        ratio = yn / yg
        np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-8)  # same functions, same signs
        assert ratio[0, 0] > 0


def test_semicore_setups_choice():
    assert choose_setups(["Cr", "Te", "Si", "Na"]) == {"Si": "paw", "Na": "paw", "Cr": "14", "Te": "16"}
    assert choose_setups(["Cr"], policy="default") == {"Cr": "paw"}


def test_bad_inputs_are_clear():
    eng = GPAWEngine(**FAST)
    with pytest.raises(EngineInputError, match="Tc"):
        eng.check_input(bulk("Tc", "hcp", a=2.74, c=4.4))
    si = bulk("Si", "diamond", a=5.43)
    si.positions[1] = si.positions[0] + [0.1, 0, 0]
    with pytest.raises(EngineInputError, match="overlapping atoms"):
        eng.compute(si, h0_only=True)
    with pytest.raises(EngineInputError, match="periodic"):
        eng.check_input(Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=np.eye(3) * 8))
    with pytest.raises(ValueError, match="unknown GPAW engine setting"):
        GPAWEngine(grid=0.2)


@pytest.fixture(scope="module")
def si_h0():
    return get_engine("gpaw", **FAST).compute(bulk("Si", "diamond", a=5.43), h0_only=True)


def test_h0_bands_equal_gpaw(si_h0):
    rec = si_h0
    rec.validate()
    assert "H" not in rec.blocks and rec.fermi_energy_eV is None
    assert rec.basis["Si"].ls == (0, 1, 0, 1, 2)  # dzp: GPAW's shell order kept
    assert band_error_meV(rec, "H0") < 1.0
    assert max(rec.metadata["realspace_residual"].values()) < 1e-8
    assert rec.metadata["timings"]["t_H0"] > 0


def test_phase_convention_by_distance(si_h0):
    """S_ij(R) is largest for the nearest image: R is the cell of orbital j (docs/conventions.md)."""
    rec = si_h0
    d = rec.edge_lengths
    smax = np.array([np.abs(b).max() for b in rec.block_list("S")])
    off = d > 0
    nn = np.isclose(d, d[off].min())
    assert smax[nn].min() > 0.2 and smax[off & (d > 4.0)].max() < smax[nn].min()


def test_batched_matrices_equal_gpaw_per_k():
    run = _GPAWRun(bulk("Si", "diamond", a=5.43), GPAWEngine(**FAST).config)
    run.build_bvk()
    S, H = run.bvk_matrices(run.bvk.potential)
    for kg in (0, 5, len(run.k_order) - 1):
        pos = int(np.flatnonzero(run.k_order == kg)[0])
        S_ref, H_ref = run.bvk_matrices_reference(run.bvk.potential, kg)
        np.testing.assert_allclose(S[pos], S_ref, atol=1e-12)
        np.testing.assert_allclose(H[pos], H_ref, atol=1e-9)


def test_h0_soc_bands_equal_gpaw_soc_eigenstates():
    rec = GPAWEngine(**FAST).compute(bulk("Si", "diamond", a=5.43), soc=True, h0_only=True)
    rec.validate()
    assert rec.spinful and np.iscomplexobj(rec.blocks["H0"])
    assert band_error_meV(rec, "H0") < 1.0


def _symmetry_ops(atoms):
    import spglib

    ds = spglib.get_symmetry((atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers), symprec=1e-5)
    return ds["rotations"], ds["translations"]


def test_symmetry_related_blocks_transform_with_wigner_D():
    """GaAs (no inversion): H0_{p(i)p(j)}(W R + L_j - L_i) = D(Q) H0_ij(R) D(Q)^T for every op."""
    atoms = bulk("GaAs", "zincblende", a=5.65)
    rec = GPAWEngine(**FAST).compute(atoms, h0_only=True)
    A = atoms.cell.array
    x = atoms.get_scaled_positions(wrap=False)
    rots, trans = _symmetry_ops(atoms)
    assert len(rots) == 24
    blocks = {name: rec.block_list(name) for name in ("S", "H0")}
    worst = {"S": 0.0, "H0": 0.0}
    for W, t in zip(rots, trans):
        Q = A.T @ W @ np.linalg.inv(A.T)
        xn = x @ W.T + t
        perm = np.array([int(np.argmin(np.linalg.norm((xn[i] - x + 0.5) % 1 - 0.5, axis=1))) for i in range(len(x))])
        L = np.rint(xn - x[perm]).astype(int)
        Dat = [atom_rotation(rec.basis[s].ls, Q) for s in rec.symbols]
        i, j = rec.edge_index.T
        Rn = rec.edge_R @ W.T + L[j] - L[i]
        target = rec.find_edges(perm[i], perm[j], Rn)
        assert (target >= 0).all()
        for name, bl in blocks.items():
            for e in range(rec.n_edges):
                pred = Dat[i[e]] @ bl[e] @ Dat[j[e]].T
                worst[name] = max(worst[name], np.abs(pred - bl[target[e]]).max())
    # S comes from analytic two-centre integrals: exact. H0 has grid terms (egg-box effect at
    # h = 0.3 Å breaks the symmetry by a few meV); a wrong sign or order would give ~0.1-1 eV.
    assert worst["S"] < 1e-6, worst
    assert worst["H0"] < 0.02, worst


@pytest.mark.slow
@pytest.mark.parametrize("soc", [False, True], ids=["nosoc", "soc"])
@pytest.mark.parametrize("name,atoms", [
    ("Si", bulk("Si", "diamond", a=5.43)),
    ("GaAs", bulk("GaAs", "zincblende", a=5.65)),
    ("PbTe", bulk("PbTe", "rocksalt", a=6.46)),
])
def test_bands_from_stored_matrices_equal_gpaw(name, atoms, soc):
    rec = GPAWEngine().compute(atoms, soc=soc)
    rec.validate()
    assert rec.spinful == soc
    assert np.isfinite(rec.fermi_energy_eV)
    for which in ("H0", "H"):
        assert band_error_meV(rec, which) < 1.0, (name, soc, which)
    t = rec.metadata["timings"]
    assert t["t_H0"] < t["t_SCF"]


def test_atoms_outside_the_cell_keep_blocks_on_their_geometric_twins():
    """An atom moved by lattice vectors (MD snapshots, POSCAR/CIF with coordinates < 0 or >= 1):
    the record keeps the user's positions and every block sits on the edge of the same geometry."""
    atoms = bulk("GaAs", "zincblende", a=5.65)
    moved = atoms.copy()
    A = atoms.cell.array
    moved.positions[0] -= A[0] + A[2]
    moved.positions[1] += 2 * A[1]
    eng = GPAWEngine(**{**FAST, "check_kpoints": 0})
    ref = eng.compute(atoms, h0_only=True)
    rec = eng.compute(moved, h0_only=True)
    np.testing.assert_allclose(rec.positions, moved.positions)
    err = geometric_twin_error(ref, rec)
    assert err["S"] < 1e-10 and err["H0"] < 1e-8, err


def test_small_cells_get_enough_grid_points():
    """One-atom fcc cells of light elements at h = 0.3 Å: GPAW's own choice (4 points along a lattice
    plane distance of 1.6 Å) cannot build its interpolator; the engine raises it to 8 and says so."""
    from ase.build import bulk

    from nextham.engines.gpaw import MIN_GRID_POINTS, grid_points

    small = bulk("H", "fcc", a=2.83)
    n, raised = grid_points(small.cell.array, 0.3)
    assert raised and min(n) == MIN_GRID_POINTS
    n_si, raised_si = grid_points(bulk("Si").cell.array, 0.3)
    assert not raised_si and min(n_si) >= MIN_GRID_POINTS


def test_semicore_variant_skipped_where_its_basis_cannot_be_reduced():
    """gpaw-data's Cr.14 dzp basis is in an old format that GPAW cannot reduce to szp(dzp) ("invalid
    literal for int() with base 10: 'b'"): the semicore policy keeps Cr's default setup there."""
    from nextham.engines.gpaw import setup_notes

    assert choose_setups(["Cr", "Te"], basis="szp(dzp)") == {"Cr": "paw", "Te": "16"}
    assert choose_setups(["Cr"], basis="dzp") == {"Cr": "14"}
    notes = setup_notes({"Cr": "paw", "Te": "16"}, "semicore", "PBE", "szp(dzp)")
    assert set(notes) == {"Cr"} and "Cr.14" in notes["Cr"]
