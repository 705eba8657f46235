"""The SCF's grid products through one sparse Bloch matrix per k-point equal GPAW's own loops.

:class:`nextham.engines.bloch_grid.BlochGridBasis` computes the pseudo density of a k-point from the
occupied bands on the grid and the potential matrix of a k-point as ``Phi_k^H diag(v dV) Phi_k``;
GPAW sums the same products over pairs of orbital windows. Checked in float64 on a low-symmetry
two-species cell at k-points with non-trivial phases, with random coefficients and potentials (so
that no structure of a converged state can hide an error), and end to end on the SCF's H(R).
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

pytest.importorskip("gpaw")

from nextham.engines.gpaw import (GPAWEngine, GPAWSettings, _GPAWRun, bloch_grid_basis,  # noqa: E402
                                  bloch_grid_scf)

FAST = dict(h=0.3, check_kpoints=0, basis="szp(dzp)", kpt_density=1.5)


def low_symmetry_cell() -> Atoms:
    """Ga-As in a triclinic cell, one atom outside the cell (the engine wraps it)."""
    cell = np.array([[4.1, 0.2, 0.1], [0.6, 3.9, -0.2], [0.3, 0.4, 4.4]])
    return Atoms("GaAs", cell=cell, pbc=True, scaled_positions=[[0.02, 0.05, -0.03], [0.49, 0.47, 0.55]])


@pytest.fixture(scope="module")
def scf_object():
    """GPAW's DFT object (initial density) of :func:`low_symmetry_cell` on a 2x2x2 mesh."""
    run = _GPAWRun(low_symmetry_cell(), GPAWSettings(**{**FAST, "kpt_density": 2.0}))
    run.build_scf_object(kpts="scf")
    return run.dft


def test_density_equals_gpaw_construct_density(scf_object):
    basis = scf_object.scf_loop.hamiltonian.basis
    grid = bloch_grid_basis(basis)
    rng = np.random.default_rng(7)
    wfs_list = list(scf_object.ibzwfs)
    assert len(wfs_list) > 1 and np.abs(np.asarray(basis.phase_qW) - 1).max() > 0.5  # real phases
    M = basis.Mmax
    for wfs in wfs_list:
        C = rng.normal(size=(5, M)) + 1j * rng.normal(size=(5, M))
        f = rng.uniform(0.1, 2.0, size=5)
        reference = np.zeros(tuple(basis.gd.n_c))
        basis.construct_density((C.conj().T * f) @ C, reference, wfs.q)
        ours = grid.density(wfs.q, C, f)
        assert np.abs(ours - reference.ravel()).max() <= 1e-13 * np.abs(reference).max()


def test_matrix_cache_is_bounded_and_results_do_not_depend_on_it(scf_object, monkeypatch):
    from nextham.engines import bloch_grid

    basis = scf_object.scf_loop.hamiltonian.basis
    cached, uncached = bloch_grid_basis(basis), bloch_grid_basis(basis)
    q = len(cached.phase_qW) - 1
    reference = cached.matrix(q).toarray()
    assert q in cached._matrices
    monkeypatch.setattr(bloch_grid, "MATRIX_CACHE_BYTES", 0)
    assert np.array_equal(uncached.matrix(q).toarray(), reference) and not uncached._matrices


def test_potential_matrix_equals_gpaw_bloch_sum(scf_object):
    basis = scf_object.scf_loop.hamiltonian.basis
    grid = bloch_grid_basis(basis)
    rng = np.random.default_rng(3)
    v = rng.normal(size=tuple(basis.gd.n_c))
    V_xMM = basis.calculate_potential_matrices(v)  # GPAW: one matrix per displacement x >= 0
    for wfs in scf_object.ibzwfs:
        phase_x = np.exp(-2j * np.pi * basis.sdisp_xc[1:] @ wfs.kpt_c)
        V = V_xMM[0] + np.einsum("x,xmn->mn", 2 * phase_x, V_xMM[1:])
        reference = 0.5 * (V + V.conj().T)  # GPAW's Hermitian completion of the lower half
        ours = grid.potential_matrix(wfs.q, v.ravel(), float(basis.gd.dv))
        assert np.abs(ours - ours.conj().T).max() <= 1e-14 * np.abs(ours).max()  # Hermitian
        assert np.abs(ours - reference).max() <= 1e-12 * np.abs(reference).max()


def test_window_table_covers_every_orbital_value(scf_object):
    basis = scf_object.scf_loop.hamiltonian.basis
    grid = bloch_grid_basis(basis)
    assert len(grid.values) == sum(A.size for A in basis.A_Wgm)
    assert grid.rows.max() < grid.n_grid and grid.orbitals.max() == basis.Mmax - 1
    # every orbital's pieces over all its images add up to its whole sphere: norm 1 on the grid
    # (to the grid's sampling error, up to 20% for the steep semicore shells at h = 0.3 Å)
    norms = np.bincount(grid.orbitals, weights=grid.values ** 2) * basis.gd.dv
    assert np.abs(norms - 1).max() < 0.25 and np.median(np.abs(norms - 1)) < 1e-3, norms


@pytest.mark.parametrize("atoms,soc", [(bulk("Si", "diamond", a=5.43), False), (low_symmetry_cell(), True)],
                         ids=["Si2", "GaAs-triclinic-soc"])
def test_scf_with_bloch_products_equals_gpaw_loops(atoms, soc):
    records = {kernel: GPAWEngine(**FAST, scf_grid_kernel=kernel).compute(atoms, soc=soc)
               for kernel in ("gpaw", "bloch")}
    new, ref = records["bloch"], records["gpaw"]
    assert new.metadata["scf_grid_kernels"] == {"density": "bloch", "potential": "bloch"}
    assert ref.metadata["scf_grid_kernels"] == {"density": "gpaw", "potential": "gpaw"}
    assert np.array_equal(new.edge_R, ref.edge_R) and np.array_equal(new.edge_index, ref.edge_index)
    assert np.array_equal(np.asarray(new.blocks["H0"]), np.asarray(ref.blocks["H0"]))
    assert np.abs(np.asarray(new.blocks["H"]) - np.asarray(ref.blocks["H"])).max() <= 1e-9
    assert abs(new.fermi_energy_eV - ref.fermi_energy_eV) <= 1e-9


def test_context_puts_gpaw_methods_back(scf_object):
    ham = scf_object.scf_loop.hamiltonian
    with bloch_grid_scf(scf_object, "bloch") as used:
        assert used == {"density": "bloch", "potential": "bloch"}
        assert "create_hamiltonian_matrix_calculator" in ham.__dict__
    assert "create_hamiltonian_matrix_calculator" not in ham.__dict__
    assert all("add_to_density" not in wfs.__dict__ for wfs in scf_object.ibzwfs)
    with bloch_grid_scf(scf_object, "gpaw") as used:
        assert used == {"density": "gpaw", "potential": "gpaw"}


def test_auto_choice_follows_size(scf_object, monkeypatch):
    """``auto`` takes both Bloch products for a small cell with several k-points and GPAW's loops
    for grids above BLOCH_MAX_ENTRIES orbital values."""
    from nextham.engines import gpaw as engine

    with bloch_grid_scf(scf_object, "auto") as used:
        assert used == {"density": "bloch", "potential": "bloch"}
    monkeypatch.setattr(engine, "BLOCH_MAX_ENTRIES", 1000)
    with bloch_grid_scf(scf_object, "auto") as used:
        assert used == {"density": "gpaw", "potential": "gpaw"}
    with bloch_grid_scf(scf_object, "bloch") as used:  # forced: regardless of size
        assert used == {"density": "bloch", "potential": "bloch"}


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="scf_grid_kernel"):
        GPAWEngine(scf_grid_kernel="fast")
