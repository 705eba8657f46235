"""The embedded DFT engine on GPAW (LCAO mode): S(R), H0(R), H(R), E_F and optional spin-orbit.

Every call into GPAW's internals lives in this module. They are not public API, so the engine
needs exactly ``gpaw == 26.7.0`` (:data:`GPAW_VERSION`) and refuses any other version with a clear
error; ``tests/engines/test_gpaw.py`` and ``test_gpaw_realspace.py`` exercise each internal so that a change breaks a
fast test, not a dataset.

Method (docs/engine.md has the full account)
---------------------------------------------
* Basis: GPAW's numerical atomic orbitals (``dzp`` by default), PBE, PAW setups of ``gpaw-data``,
  a real-space grid of spacing ``h``. Orbitals are ``R_nl(r) Y_lm`` with GPAW's real harmonics,
  which equal nextham's table (m = -l..l, p = (y, z, x), no Condon-Shortley phase): the ``gpaw``
  conversion is the identity, checked numerically against GPAW's ``Y_L`` in the tests.
* ``H0``: the Kohn-Sham Hamiltonian of the superposition of neutral-atom densities (GPAW's initial
  density), before any SCF step. ``H``: the converged SCF Hamiltonian. ``S``: the overlap.
* Real space (``method="realspace"``, default): S, T and the projector overlaps are evaluated per
  atom pair and lattice offset from GPAW's two-centre expansions, V(R) per cell displacement from
  GPAW's potential matrices, the PAW and SOC terms as three-centre sums over projector atoms; H
  from the SCF's own DFT object after convergence. ``method="bvk"`` (reference, tests): Bloch
  matrices on a full Γ-centred k-mesh whose Born-von Karman supercell separates all pairs, Fourier
  transformed (:mod:`nextham.engines.realspace`).
* Positions: GPAW wraps atoms into the cell; records keep the user's positions and R is relabelled
  by the wrap offsets (``R = R_wrapped + n_i - n_j``), so every block sits on its geometric edge.
* SCF on a Γ-centred Monkhorst-Pack mesh from a k-point density (``kpt_density`` points per Å^-1,
  ASE convention), with symmetry; Fermi-Dirac smearing. Spin-unpolarised (magnetic elements are
  computed non-magnetic: a documented limitation).
* Spin-orbit (``soc=True``): GPAW has no self-consistent SOC in LCAO mode. SOC is added by second
  variation to H0 and to H from the PAW projector overlaps ``P_aMi(k)`` and the per-atom SOC
  matrices of ``gpaw.spinorbit.soc`` (evaluated with the initial atomic density for H0 and the SCF
  density for H): ``H_soc = H ⊗ I2 + sum_a P^* [sigma . (dV/r L)]_a P^T``, spin-major.
* Check: GPAW's own eigenvalues (its own diagonaliser; ``soc_eigenstates`` for SOC) at a few
  off-mesh k-points, stored in the metadata beside the eigenvalues of the stored matrices.
"""

from __future__ import annotations

import contextlib

import gzip
import os
import re
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import primitive_neighbor_list
from ase.units import Bohr, Ha

from ..basis.orbitals import Basis, ElementBasis
from ..blocks.record import StructureRecord
from ..structure.lattice_shift import change_lattice_basis, translate_atoms
from .base import Engine, EngineError, EngineInputError, EngineUnavailable, register_engine
from .bloch_grid import BlochGridBasis
from .realspace import EdgeLayout, ThreeCentreProducts, bloch_to_realspace, bvk_mesh, mesh_index, pair_support

GPAW_VERSION = "26.7.0"
"""The only GPAW version whose internals this module is written against."""

INSTALL_HINT = "install it with scripts/install_gpaw.sh (serial build of gpaw==26.7.0 with gpaw-data)"

CHECK_KPOINTS = np.array([[0.1234, 0.2345, 0.3456],
                          [0.4321, -0.1111, 0.2718],
                          [0.3141, 0.0593, -0.2653],
                          [0.05, 0.4, 0.15]])
"""Fractional off-mesh k-points at which the engine's own eigenvalues are stored."""

MIN_DISTANCE = 0.5
#: fewest grid points along a cell vector (see :func:`grid_points`)
MIN_GRID_POINTS = 8
"""Atoms closer than this (Å) are rejected as overlapping."""

OCCUPATION_FLOOR = 1e-20
"""Bands whose occupation weight is below this fraction of the largest are left out of the SCF density
(:func:`bloch_grid_scf`): their share of the density is below double-precision rounding."""

BLOCH_MAX_ENTRIES = 6_000_000
"""``scf_grid_kernel="auto"`` keeps GPAW's loops above this many orbital values on the grid (window
entries; ~4.5M for 32-atom cells at the demo settings): the Bloch matrices would take ~0.7 GB at their
peak for 64 atoms while saving only a few percent of the SCF (Γ-only large cells)."""

BLOCH_SPEED = {"density": 6.0, "potential": 25.0}
"""How many of :class:`~nextham.engines.bloch_grid.BlochGridBasis`'s counted multiply-adds take the time of
one of GPAW's window-pair loop, per product (measured on Si 2-64 atom cells, one core, szp(dzp),
h = 0.3 Å: 3-7 for the density, 20-60 for the potential); ``scf_grid_kernel="auto"`` uses them."""


# ---------------------------------------------------------------------------- GPAW import & data
def import_gpaw():
    """Import GPAW and check its version; raise :class:`EngineUnavailable` with a fix otherwise."""
    try:
        import gpaw
    except ImportError as exc:
        raise EngineUnavailable(f"GPAW is not installed ({exc}); {INSTALL_HINT}") from None
    if gpaw.__version__ != GPAW_VERSION:
        raise EngineUnavailable(
            f"nextham's GPAW engine uses GPAW internals of version {GPAW_VERSION}, but gpaw "
            f"{gpaw.__version__} is installed ({gpaw.__file__}); {INSTALL_HINT}")
    return gpaw


def setup_paths() -> list[str]:
    """Directories searched for PAW setups and basis sets (gpaw-data first, ``GPAW_SETUP_PATH``)."""
    gpaw = import_gpaw()
    return [str(p) for p in gpaw.setup_paths]


@lru_cache(maxsize=None)
def _setup_files(paths: tuple[str, ...], xc: str, basis: str) -> dict[str, dict[str, Path]]:
    """symbol -> {variant ('' = default): setup file} for setups that also have the basis set."""
    found: dict[str, dict[str, Path]] = {}
    pat = re.compile(rf"^([A-Z][a-z]?)(?:\.([^.]+))?\.{re.escape(xc)}(?:\.gz)?$")
    for d in reversed(paths):  # earlier paths win
        if not os.path.isdir(d):
            continue
        names = set(os.listdir(d))
        for fname in names:
            m = pat.match(fname)
            if not m or m.group(1) not in atomic_numbers:
                continue
            sym, var = m.group(1), m.group(2) or ""
            bname = f"{sym}.{var + '.' if var else ''}{basis}.basis"
            if bname in names or bname + ".gz" in names:
                found.setdefault(sym, {})[var] = Path(d) / fname
    return found


@lru_cache(maxsize=None)
def _valence(path: Path) -> float:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        head = fh.read(4000)
    m = re.search(r'valence="([\d.]+)"', head)
    return float(m.group(1)) if m else float("nan")


def available_elements(xc: str = "PBE", basis: str = "dzp") -> list[str]:
    """Elements with a PAW setup and a ``basis`` basis set, in order of Z."""
    files = _setup_files(tuple(setup_paths()), xc, basis_file_name(basis))
    return sorted((s for s, v in files.items() if "" in v), key=lambda s: atomic_numbers[s])


@lru_cache(maxsize=None)
def _basis_reducible(path: Path) -> bool:
    """Whether GPAW's ``Basis.reduce`` can read the basis file of a setup file (``Cr.14.PBE`` ->
    ``Cr.14.dzp.basis``): every function that is not a polarization function must have a type such as
    ``"4s-sz confined orbital"`` (principal number and l first). Old-format files (gpaw-data's
    ``Cr.14.dzp.basis``: types ``"bound state"``/``"split valence"``) make GPAW fail with
    ``invalid literal for int() with base 10: 'b'`` on any reduced name such as ``szp(dzp)``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        types = re.findall(r'<basis_function[^>]*type="([^"]*)"', fh.read())
    return all("polarization" in t or re.match(r"\d[spdf]", t) for t in types)


def _variant_basis_file(setup_file: Path, variant: str, basis: str) -> Path:
    sym = setup_file.name.split(".")[0]
    name = f"{sym}.{variant + '.' if variant else ''}{basis}.basis"
    path = setup_file.parent / name
    return path if path.exists() else path.with_name(name + ".gz")


def basis_file_name(basis: str) -> str:
    """The basis file a GPAW basis name reads: ``"szp(dzp)"`` (a reduction of the dzp set) -> ``"dzp"``."""
    m = re.fullmatch(r"\s*\w+\((\w+)\)\s*", basis)
    return m.group(1) if m else basis


def choose_setups(symbols: list[str], policy: str = "semicore", xc: str = "PBE",
                  basis: str = "dzp") -> dict[str, str]:
    """Setup variant per element: ``"paw"`` (GPAW default) or a variant name such as ``"14"``.

    ``policy="semicore"``: the variant with the most valence electrons among those that have the
    basis set, ignoring the experimental ``v2``/``v3`` generations (ties keep the default). In
    gpaw-data 1.2.1 the default setups already hold the semicore states for almost every element
    (Na 7 e, V 13 e, Ag 17 e, Pt 16 e, ...); the policy changes only Cr (``Cr.14``, 3s3p) and
    Te (``Te.16``, 4d). ``policy="default"``: GPAW's defaults everywhere.
    With a reduced basis name (``szp(dzp)``) a variant whose basis file GPAW cannot reduce is
    skipped (:func:`_basis_reducible`: ``Cr.14``, so Cr keeps its default 6-electron setup there;
    :func:`setup_notes` says so in the record). Raises :class:`EngineInputError` for elements
    without a setup.
    """
    reduced = basis_file_name(basis) != basis
    basis = basis_file_name(basis)
    files = _setup_files(tuple(setup_paths()), xc, basis)
    missing = sorted({s for s in symbols if "" not in files.get(s, {})}, key=lambda s: atomic_numbers.get(s, 0))
    if missing:
        raise EngineInputError(
            f"no GPAW {xc} PAW setup with a {basis} basis set for element(s) {', '.join(missing)} "
            f"(searched {', '.join(setup_paths())}); GPAW covers {len(files)} elements")
    out: dict[str, str] = {}
    for s in sorted(set(symbols), key=lambda s: atomic_numbers[s]):
        choice = ""
        if policy == "semicore":
            best = _valence(files[s][""])
            for var, path in sorted(files[s].items()):
                if var and not var.startswith("v") and _valence(path) > best + 0.5 and (
                        not reduced or _basis_reducible(_variant_basis_file(path, var, basis))):
                    best, choice = _valence(path), var
        elif policy != "default":
            raise ValueError(f"unknown setups policy {policy!r} (use 'semicore' or 'default')")
        out[s] = choice or "paw"
    return out


def setup_notes(setup_choice: dict[str, str], policy: str, xc: str, basis: str) -> dict[str, str]:
    """Why an element's setup differs from what ``policy`` alone would pick (for the record's
    metadata): the semicore variants skipped because their basis file cannot be reduced to ``basis``."""
    if policy != "semicore" or basis_file_name(basis) == basis:
        return {}
    full = choose_setups(list(setup_choice), policy, xc, basis_file_name(basis))
    return {s: (f"semicore setup {s}.{full[s]} skipped: its {basis_file_name(basis)} basis file is in an old "
                f"format that GPAW cannot reduce to {basis}; using {s}.{setup_choice[s]}")
            for s in setup_choice if full.get(s) != setup_choice[s]}


def grid_points(cell_A: np.ndarray, h_A: float) -> tuple[tuple[int, int, int], bool]:
    """``(grid points per cell vector, raised)``: GPAW's own choice for spacing ``h_A`` (``h2gpts``,
    divisible by 4, from the distances between lattice planes), raised to at least
    :data:`MIN_GRID_POINTS` along each vector. GPAW's coarse-to-fine interpolator (order 3) needs
    ``(n + 5)^2 <= (2n)^2``; a 4-point direction (one-atom fcc cells of H, B, N, O, F at h = 0.3 Å: plane
    distance 1.6 Å) fails with "Cannot construct interpolator. Grid 4 x 4 x 4 may be too small"."""
    from gpaw.utilities import h2gpts

    n = np.asarray(h2gpts(h_A / Bohr, np.asarray(cell_A, float) / Bohr, 4), dtype=np.int64)
    raised = bool((n < MIN_GRID_POINTS).any())
    return tuple(int(x) for x in np.maximum(n, MIN_GRID_POINTS)), raised


def gpaw_shell_permutation(l: int) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, sign)`` of GPAW's real harmonics in nextham order (``new[k] = old[idx[k]] * sign[k]``).

    GPAW's ``Y_L`` (gpaw/sphere/spherical_harmonics.py: L = l^2 + l + m, p = (y, z, x),
    d = (xy, yz, 3z^2-r^2, zx, x^2-y^2), f = (3x^2y-y^3, xyz, ..., x^3-3xy^2), all positive) is
    nextham's table, so the permutation is the identity for every l; tested numerically against
    GPAW's ``Y_L`` and on bands and Wigner-D symmetry of real GPAW data.
    """
    return np.arange(2 * l + 1), np.ones(2 * l + 1)


# ---------------------------------------------------------------------------- positions and R
def wrapped_into_cell(atoms: Atoms) -> tuple[Atoms, np.ndarray]:
    """``(atoms with fractional coordinates in [0, 1), n)`` with ``frac_user = frac_wrapped + n``.

    GPAW places every atom at ``atoms.get_scaled_positions()`` (wrapped into the cell) and labels
    orbital j's cell R relative to that wrapped position. The engine computes on the wrapped atoms
    (so GPAW's wrap is the identity) and the record keeps the user's positions with R relabelled
    (:func:`nextham.structure.lattice_shift.translate_atoms`: ``R = R_wrapped + n_i - n_j``).
    """
    user = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    frac = user.get_scaled_positions(wrap=False)
    wrapped_frac = user.get_scaled_positions(wrap=True)  # what GPAW uses
    wrapped = Atoms(numbers=atoms.numbers, scaled_positions=wrapped_frac, cell=atoms.cell, pbc=True)
    if np.abs(wrapped.get_scaled_positions(wrap=True) - wrapped_frac).max() > 1e-12:
        raise EngineError("wrapping the atoms into the cell is not idempotent")
    offsets = np.rint(frac - wrapped_frac).astype(np.int64)
    if np.abs(frac - wrapped_frac - offsets).max() > 1e-8:
        raise EngineError("wrapping the atoms into the cell did not shift them by lattice vectors")
    return wrapped, offsets


def _shortest_contact(atoms: Atoms) -> str:
    """"shortest distance 1.26 Å, B-B" (periodic images included) for error messages."""
    i, j, d = primitive_neighbor_list("ijd", atoms.pbc, atoms.cell.array, atoms.positions, 3.0,
                                      self_interaction=False)
    if not len(d):
        return "no two atoms within 3 Å"
    k = int(np.argmin(d))
    sym = atoms.get_chemical_symbols()
    return f"shortest distance {d[k]:.2f} Å, {sym[i[k]]}-{sym[j[k]]}"


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class GPAWSettings:
    """Settings of the GPAW engine (all JSON-serialisable; stored with every record).

    basis : GPAW basis set name (``dzp``: double-zeta polarised from gpaw-data).
    xc : exchange-correlation functional.
    h : real-space grid spacing (Å); 0.2 converges H to ~meV for dzp.
    kpt_density : SCF k-points per Å^-1 (ASE ``kptdensity2monkhorstpack`` convention, Γ-centred);
        2.5 gives 6x6x6 for Si, 4x4x4 for a 6-Å cubic cell.
    smearing_eV : Fermi-Dirac width (eV).
    setups : ``"semicore"`` or ``"default"`` (see :func:`choose_setups`).
    convergence : GPAW SCF convergence criteria (GPAW units), None = GPAW defaults.
    maxiter : SCF iteration limit.
    min_bvk_mesh : lower bound of the real-space transform mesh.
    check_kpoints : number of off-mesh k-points with stored engine eigenvalues (0 = no check).
    method : ``"realspace"`` (direct assembly per lattice offset, default) or ``"bvk"`` (the
        reference path: Bloch matrices on a Born-von Karman k-mesh, Fourier transformed).
    scf_grid_kernel : how the SCF computes its pseudo density and potential matrix on the grid:
        ``"gpaw"`` (GPAW's loops over pairs of orbital windows), ``"bloch"`` (one sparse Bloch matrix
        of the orbitals per k-point: the density from the occupied bands, the potential matrix per
        k-point; see :func:`bloch_grid_scf`) or ``"auto"`` (default: whichever costs fewer operations
        for the structure). The results agree to rounding. The ``bvk`` reference path always uses GPAW's.
    drop_below : edges (with their Hermitian partners) whose S, H0 and H elements are all below this
        (eV; S dimensionless) are not stored; self-loops always are. 0 (default) keeps every pair
        within the orbital + projector reach. Safe only with a well-conditioned overlap: with
        ``szp(dzp)`` 1e-7 keeps bands within 1e-4 meV at about a third of the bytes, but with
        ``dzp`` (smallest eigenvalue of S(k) ~4e-5 in Si) even 1e-9 moves bands by 0.014 meV.
    """

    basis: str = "dzp"
    xc: str = "PBE"
    h: float = 0.2
    kpt_density: float = 2.5
    smearing_eV: float = 0.1
    setups: str = "semicore"
    convergence: dict | None = None
    maxiter: int = 300
    min_bvk_mesh: tuple[int, int, int] = (1, 1, 1)
    check_kpoints: int = 3
    method: str = "realspace"
    scf_grid_kernel: str = "auto"
    drop_below: float = 0.0

    def todict(self) -> dict[str, Any]:
        d = asdict(self)
        d["min_bvk_mesh"] = list(self.min_bvk_mesh)
        return d


# ---------------------------------------------------------------------------- two-centre expansions
def lexicographic_sign(R: np.ndarray) -> np.ndarray:
    """+1, 0 or -1: the sign of the first non-zero component of each row of R."""
    R = np.asarray(R)
    nz = R != 0
    first = np.argmax(nz, axis=1)
    return np.where(nz.any(axis=1), np.sign(R[np.arange(len(R)), first]), 0)


SPLINE_FLOOR = 1e-10
"""GPAW's ``tci_overlap`` drops a radial term |s_l(r)| below this (c/lcao.c, gpaw 26.7.0)."""


def evaluate_two_centre(expansion, R_nc: np.ndarray) -> np.ndarray:
    """GPAW's two-centre integrals ``<f_a(r) | g_b(r - R)>`` of one species pair for many displacements.

    ``expansion``: a ``gpaw.lcao.overlap.TwoSiteOverlapExpansions`` (overlap, kinetic or
    projector-orbital); ``R_nc`` (n, 3) displacement vectors in Bohr. Returns (n, M_a, M_b) in
    GPAW's orbital order. Per shell pair (la, lb) the expansion holds radial splines s_l(r) for
    l = (la + lb) mod 2, +2, ..., and ``x[m_a, m_b] = sum_l s_l(r) sum_m G[la m_a, lb m_b, l m] r^l Y_lm(R)``
    with GPAW's real Gaunt coefficients: the sum GPAW's C routine ``tci_overlap`` does for one
    vector (which skips radial values below :data:`SPLINE_FLOOR`, and so do we), evaluated here for
    all n at once (the tests check it against GPAW's per-vector result).
    """
    from gpaw.sphere.gaunt import gaunt
    from gpaw.sphere.spherical_harmonics import Yarr

    R_nc = np.asarray(R_nc, dtype=float).reshape(-1, 3)
    out = np.zeros((len(R_nc),) + tuple(expansion.shape))
    if not len(R_nc) or out[0].size == 0:
        return out
    r = np.linalg.norm(R_nc, axis=1)
    lmax = max(expansion.lmaxspline, 1)
    rlY_Ln = Yarr(np.arange(lmax * lmax), R_nc)  # r^l Y_L(R): GPAW's homogeneous polynomials
    G_LLL = gaunt(max(expansion.lmaxgaunt, 1))
    M_a = 0
    for oe_j in expansion.oe_jj:
        M_b = 0
        for oe in oe_j:
            la, lb = oe.la, oe.lb
            block = out[:, M_a:M_a + 2 * la + 1, M_b:M_b + 2 * lb + 1]
            for k, spline in enumerate(oe.spline_l):
                l = (la + lb) % 2 + 2 * k
                G = G_LLL[la * la:(la + 1) ** 2, lb * lb:(lb + 1) ** 2, l * l:(l + 1) ** 2]
                value = spline.map(r)
                value[np.abs(value) < SPLINE_FLOOR] = 0.0  # as GPAW's tci_overlap does
                block += value[:, None, None] * np.einsum("abm,mn->nab", G, rlY_Ln[l * l:(l + 1) ** 2])
            M_b += 2 * lb + 1
        M_a += 2 * oe_j[0].la + 1 if len(oe_j) else 0
    return out


@dataclass
class _Expansions:
    """GPAW's two-centre expansions per species pair (O: overlap, T: kinetic, P: projector-orbital),
    radial cutoffs per species (Bohr) and the species index of each atom."""

    O_II: Any
    T_II: Any
    P_II: Any
    phit_rc: np.ndarray
    pt_rc: np.ndarray
    I_a: np.ndarray


_EXPANSIONS_CACHE: dict[tuple, tuple] = {}
#: entries kept per two-centre cache (oldest dropped first): a dataset repeats few species sets in a row,
#: and unbounded caches grew to 10 GB per worker over ~270 structures of the 67-element recipe
CACHE_ENTRIES = 8


def _remember(cache: dict, key, value) -> None:
    """``cache[key] = value``, dropping the oldest entries beyond :data:`CACHE_ENTRIES`."""
    cache[key] = value
    while len(cache) > CACHE_ENTRIES:
        cache.pop(next(iter(cache)))


def _two_centre_expansions(setups, setup_choice: dict[str, str], basis: str) -> _Expansions:
    """:class:`gpaw.lcao.tci.TCIExpansions` of the structure's species, cached per set of species
    (the expansions depend on the setups and basis sets only, not on positions)."""
    from gpaw.lcao.tci import TCIExpansions

    species: dict[tuple, int] = {}
    first_setup = {}
    I_a = []
    for s in setups:
        key = (s.symbol, setup_choice.get(s.symbol, "paw"), basis, s.Z)
        if key not in species:
            species[key] = len(species)
            first_setup[key] = s
        I_a.append(species[key])
    cache_key = tuple(sorted(species))
    if cache_key not in _EXPANSIONS_CACHE:
        ordered = [first_setup[k] for k in cache_key]
        tci = TCIExpansions([s.basis_functions_J for s in ordered], [s.pt_j for s in ordered],
                            list(range(len(ordered))))
        _remember(_EXPANSIONS_CACHE, cache_key, (tci.O_expansions.tsoe_II, tci.T_expansions.tsoe_II,
                                                 tci.P_expansions.tsoe_II, np.array(tci.phit_rcmax_I),
                                                 np.array(tci.pt_rcmax_I)))
    O, T, P, phit_rc, pt_rc = _EXPANSIONS_CACHE[cache_key]
    pos = {k: n for n, k in enumerate(cache_key)}
    order = {species[k]: pos[k] for k in species}
    return _Expansions(O, T, P, phit_rc, pt_rc, np.array([order[i] for i in I_a], dtype=np.int64))


# ---------------------------------------------------------------------------- GPAW's initial state
class _InitialState:
    """What H0 needs of GPAW's initial state, without wave functions: ``setups``, ``density``,
    ``potential``, ``pot_calc``, ``relpos_ac`` and ``scf_loop.hamiltonian`` (the names of GPAW's
    ``DFT`` object, so that the assembly takes either)."""

    def __init__(self, setups, density, potential, pot_calc, hamiltonian) -> None:
        from types import SimpleNamespace

        self.setups, self.density, self.potential, self.pot_calc = setups, density, potential, pot_calc
        self.relpos_ac = pot_calc.relpos_ac
        self.scf_loop = SimpleNamespace(hamiltonian=hamiltonian)


class _MemoizedPAWCorrection:
    """GPAW's atomic XC correction ``xc.calculate_paw_correction(setup, D_sp, dH_sp, a)`` computed once
    per (setup, density matrix) and reused, bit for bit, for every atom with the same pair.

    The correction depends only on the setup and the atom's density matrix; in the superposed
    initial density all atoms of one species have the same D_sp, so a 64-atom Si cell computes it
    once instead of 64 times (13 ms each at szp(dzp)). The increment of ``dH_sp`` and the energy are
    cached; the key is the exact bytes of D_sp, so a different density matrix is always recomputed.
    """

    def __init__(self, functional) -> None:
        self.functional = functional
        self.compute = functional.calculate_paw_correction
        self.cache: dict[tuple, tuple[np.ndarray, float]] = {}
        self.hits = 0

    def __call__(self, setup, D_sp, dH_sp=None, a=None):
        D_sp = np.asarray(D_sp)
        key = (id(setup), D_sp.shape, D_sp.dtype.str, D_sp.tobytes())
        if key not in self.cache:
            dH = np.zeros(D_sp.shape, dtype=dH_sp.dtype if dH_sp is not None else float)
            energy = self.compute(setup, D_sp, dH, a=a)
            self.cache[key] = (dH, energy)
            if len(self.cache) > 4096:  # an SCF of many distinct atoms: stop growing
                self.cache.pop(next(iter(self.cache)))
        else:
            self.hits += 1
        dH, energy = self.cache[key]
        if dH_sp is not None:
            dH_sp += dH
        return energy


_SETUP_CACHE: dict[tuple, Any] = {}
_TCI_CACHE: dict[tuple, tuple[list, Any]] = {}


@contextlib.contextmanager
def reused_setups():
    """Within the block, GPAW builds each PAW setup (``gpaw.setup.create_setup``: radial integrals,
    basis splines; ~30 ms per species) once per process and reuses it for every later structure.

    A ``Setup`` depends on the element, setup type, basis set, XC functional and lmax only, never
    on positions, and GPAW does not modify it after construction (symmetry rotations live on the
    ``Setups`` list). Dataset workers compute many structures in one process, so only the first
    pays. The tests check that a record computed with cached setups equals one computed without.

    GPAW's two-centre expansions of a list of setups (``TCIExpansions.new_from_setups``: Fourier-
    Bessel transforms of every orbital and projector pair, ~50 ms for two species) are likewise
    built once per sequence of setup objects; each ``DFT`` object (the SCF's, those of the eigenvalue
    checks) asks for them again. The cache holds the setups it is keyed on, so their ids stay valid.
    """
    import gpaw.setup as gpaw_setup
    from gpaw.lcao.tci import TCIExpansions

    original = gpaw_setup.create_setup
    original_expansions = TCIExpansions.__dict__["new_from_setups"]

    def new_from_setups(cls, setups):
        species = list(setups.setups.values())
        key = (tuple(id(x) for x in species), tuple(species.index(x) for x in setups))
        if key not in _TCI_CACHE:
            _remember(_TCI_CACHE, key, (species, original_expansions.__func__(cls, setups)))
        return _TCI_CACHE[key][1]

    def create_setup(symbol, xc="LDA", lmax=0, type="paw", basis=None, setupdata=None, filter=None,
                     world=None, backwards_compatible=True):
        if setupdata is not None or not isinstance(type, str) or filter is not None \
                or (basis is not None and not hasattr(basis, "filename")):
            return original(symbol, xc, lmax, type, basis, setupdata=setupdata, filter=filter, world=world,
                            backwards_compatible=backwards_compatible)
        xc_key = xc if isinstance(xc, str) else (xc.__class__.__name__, xc.name)
        basis_key = None if basis is None else (basis.name, basis.filename, basis.nao)
        key = (symbol, xc_key, lmax, type, basis_key, backwards_compatible)
        if key not in _SETUP_CACHE:
            _SETUP_CACHE[key] = original(symbol, xc, lmax, type, basis, filter=filter, world=world,
                                         backwards_compatible=backwards_compatible)
        return _SETUP_CACHE[key]

    gpaw_setup.create_setup = create_setup
    TCIExpansions.new_from_setups = classmethod(new_from_setups)
    try:
        yield
    finally:
        gpaw_setup.create_setup = original
        TCIExpansions.new_from_setups = original_expansions


def initial_dft_state(atoms: Atoms, parameters: dict[str, Any], wave_functions: bool,
                      timings: dict[str, float] | None = None):
    """GPAW's state of the superposed neutral-atom density for ``parameters`` (``gpaw.dft.Parameters``
    keywords): a ``DFT`` object (not converged) when ``wave_functions``, else an
    :class:`_InitialState` that skips GPAW's wave functions and its Bloch S, T and projector
    matrices (the real-space assembly computes its own).

    The steps of ``Parameters.create_dft_calculation_components`` (gpaw 26.7.0), with the atomic XC
    corrections memoized per species (:class:`_MemoizedPAWCorrection`); the tests check that S, H0
    and H equal those of a plain ``DFT(...)`` object. ``timings`` (if given) receives
    ``t_wave_functions``: the time of GPAW's wave functions and Bloch S, T, P (needed by the SCF and
    the eigenvalue check only, not by H0).
    """
    from gpaw.dft import Parameters
    from gpaw.new.calculation import DFT
    from gpaw.new.logger import Logger

    params = Parameters(**parameters)
    log = Logger(None, None)
    with reused_setups():
        builder = params.dft_component_builder(atoms, log=log, comm=log.comm)
    basis_set = builder.create_basis_set()
    scf_loop = builder.create_scf_loop() if wave_functions else None
    pot_calc = builder.create_potential_calculator()
    pot_calc.xc.calculate_paw_correction = _MemoizedPAWCorrection(pot_calc.xc)
    density = builder.density_from_superposition(basis_set)
    density.normalize(pot_calc.charge)
    potential, energies, _ = pot_calc.calculate_without_orbitals(density, kpt_band_comm=builder.communicators["D"])
    if not wave_functions:
        return _InitialState(builder.setups, density, potential, pot_calc, builder.create_hamiltonian_operator())
    t0 = time.perf_counter()
    with reused_setups():
        ibzwfs = builder.create_ibz_wave_functions(basis_set, potential)
    if timings is not None:
        timings["t_wave_functions"] = time.perf_counter() - t0
    if ibzwfs._wfs_u[0].has_eigs:
        ibzwfs.calculate_occs(scf_loop.occ_calc, density.nvalence - density.charge + pot_calc.charge)
    return DFT.from_components(atoms.copy(), ibzwfs, density, potential, builder.setups, scf_loop, pot_calc,
                               log, params, energies, converge=False)


# ---------------------------------------------------------------------------- SCF grid products
def bloch_grid_basis(basis_functions) -> BlochGridBasis:
    """GPAW's LCAO orbitals on the grid (``gpaw.lfc.BasisFunctions`` after ``set_positions``) as a
    :class:`~nextham.engines.bloch_grid.BlochGridBasis`.

    GPAW keeps, per window W (one orbital shell in one periodic image), the values ``A_Wgm[W]``
    (n_points, 2l+1) on the grid points of its ranges ``[begin, end)`` of the flat grid index; the
    ranges are the entries of ``G_B`` marked ``W_B = W`` (begin) and ``-W - 1`` (end). ``M_W`` is the
    window's first orbital, ``phase_qW`` the Bloch phase of its image at each k-point.
    """
    bf = basis_functions
    G_B, W_B = np.asarray(bf.G_B, dtype=np.int64), np.asarray(bf.W_B, dtype=np.int64)
    begin = W_B >= 0
    order_b = np.lexsort((G_B[begin], W_B[begin]))
    order_e = np.lexsort((G_B[~begin], -W_B[~begin] - 1))
    W_r, G_begin = W_B[begin][order_b], G_B[begin][order_b]
    G_end = G_B[~begin][order_e]
    if not np.array_equal(W_r, (-W_B[~begin] - 1)[order_e]):
        raise EngineError("GPAW's basis-function windows do not pair into grid ranges")
    length = G_end - G_begin
    n_windows = len(bf.M_W)
    n_points = np.array([A.shape[0] for A in bf.A_Wgm], dtype=np.int64)
    n_m = np.array([A.shape[1] for A in bf.A_Wgm], dtype=np.int64)
    if not np.array_equal(np.bincount(W_r, weights=length, minlength=n_windows).astype(np.int64), n_points):
        raise EngineError("GPAW's basis-function windows and their grid ranges disagree")
    # grid index of every point of every window, windows in order (W_r is sorted)
    G_point = np.repeat(G_begin - np.concatenate([[0], np.cumsum(length)[:-1]]), length) + np.arange(length.sum())
    size = n_points * n_m
    window = np.repeat(np.arange(n_windows), size)
    local = np.arange(size.sum()) - np.repeat(np.concatenate([[0], np.cumsum(size)[:-1]]), size)
    g, m = np.divmod(local, n_m[window])
    first_point = np.concatenate([[0], np.cumsum(n_points)[:-1]])
    phase = np.asarray(bf.phase_qW)
    if phase.shape[0] == 0:  # real Γ-point basis: no phases
        phase = np.ones((1, n_windows), complex)
    return BlochGridBasis(rows=G_point[first_point[window] + g].astype(np.int32),
                          orbitals=(np.asarray(bf.M_W, np.int64)[window] + m).astype(np.int32),
                          values=np.concatenate([A.ravel() for A in bf.A_Wgm]), windows=window.astype(np.int32),
                          phase_qW=phase,
                          n_grid=int(np.prod(bf.gd.n_c)), n_orbitals=int(bf.Mmax))


@contextlib.contextmanager
def bloch_grid_scf(dft, kernel: str):
    """Within the block, ``dft``'s SCF computes its two grid products with a
    :class:`~nextham.engines.bloch_grid.BlochGridBasis` instead of GPAW's C loops over window pairs:

    * the pseudo density of each k-point from the occupied wave functions on the grid
      (``LCAOWaveFunctions.add_to_density``; the atomic density matrices stay GPAW's);
    * the potential matrix of each k-point directly (``LCAOHamiltonian.create_hamiltonian_matrix_calculator``
      returns a calculator whose Bloch sum is ``Phi_k^H diag(v dV) Phi_k``; T, PAW dH and the
      Hermitian symmetrisation stay GPAW's).

    The same sums in another order: densities agree with GPAW's to ~1e-15 relative, the converged
    H(R) to ~1e-12 eV (tests). ``kernel``: ``"bloch"`` always, ``"gpaw"`` never, ``"auto"`` where the
    operation counts of :meth:`BlochGridBasis.costs` favour it (small cells and many k-points) and the
    grid holds at most :data:`BLOCH_MAX_ENTRIES` orbital values. Yields which product each uses.
    Serial runs only (GPAW's domain and band communicators of size 1). Everything is put back on exit.
    """
    from gpaw.core.matrix import Matrix
    from gpaw.new.lcao.hamiltonian import CollinearHamiltonianMatrixCalculator

    ham = dft.scf_loop.hamiltonian
    wfs_list = list(dft.ibzwfs)
    serial = all(w.domain_comm.size == 1 and w.band_comm.size == 1 for w in wfs_list)
    too_large = kernel == "auto" and hasattr(ham, "basis") and \
        sum(A.size for A in ham.basis.A_Wgm) > BLOCH_MAX_ENTRIES
    if kernel == "gpaw" or too_large or not serial or not hasattr(ham, "basis") or len(dft.potential.vt_sR.data) > 2:
        yield {"density": "gpaw", "potential": "gpaw"}
        return
    grid = bloch_grid_basis(ham.basis)
    # bands with a weight above OCCUPATION_FLOOR: the occupied ones and a few eV of smearing tail
    n_bands = min(int(ham.basis.Mmax), int(np.ceil(0.65 * float(dft.density.nvalence))) + 4)
    cost = grid.costs(n_bands, len(wfs_list))
    use = {part: kernel == "bloch" or cost[f"{part}_bloch"] < BLOCH_SPEED[part] * cost[f"{part}_gpaw"]
           for part in ("density", "potential")}
    use_density, use_potential = use["density"], use["potential"]
    dv = float(ham.basis.gd.dv)

    def add_to_density(wfs, nt_sR, D_asii):
        f_n = wfs.weight * wfs.spin_degeneracy * np.asarray(wfs.myocc_n)
        keep = f_n > OCCUPATION_FLOOR * max(float(f_n.max(initial=0.0)), 1e-300)
        nt = grid.density(wfs.q, np.asarray(wfs.C_nM.data)[keep], f_n[keep])
        nt_sR.data[wfs.spin] += nt.reshape(nt_sR.data.shape[1:])
        wfs.add_to_atomic_density_matrices(f_n, D_asii)

    class BlochPotential(CollinearHamiltonianMatrixCalculator):
        def _calculate_potential_matrix(self, wfs, vt_R):
            V_MM = grid.potential_matrix(wfs.q, np.asarray(vt_R).ravel(), dv)
            return Matrix(V_MM.shape[0], V_MM.shape[1], data=V_MM, dist=(wfs.band_comm, -1, 1))

    def create_matrix_calculator(potential):
        dH_saii = [{a: dH_sii[s] for a, dH_sii in potential.dH_asii.items()} for s in range(len(potential.vt_sR))]
        return BlochPotential([np.asarray(vt_R.data) for vt_R in potential.vt_sR], dH_saii, ham.basis,
                              include_kinetic=True)

    patched = []
    if use_density:
        for wfs in wfs_list:
            wfs.add_to_density = add_to_density.__get__(wfs)
            patched.append(wfs)
    if use_potential:
        ham.create_hamiltonian_matrix_calculator = create_matrix_calculator
        patched.append(ham)
    try:
        yield {"density": "bloch" if use_density else "gpaw", "potential": "bloch" if use_potential else "gpaw"}
    finally:
        for obj in patched:
            del obj.__dict__["add_to_density" if obj is not ham else "create_hamiltonian_matrix_calculator"]


# ---------------------------------------------------------------------------- storage
def drop_negligible_edges(record: StructureRecord, tol: float) -> tuple[StructureRecord, dict[str, Any]]:
    """``record`` without the edges whose every element of every matrix is below ``tol`` in magnitude
    (an edge is kept when it or its Hermitian partner is not negligible; self-loops are kept).

    Returns the record and ``{"tolerance", "count", "largest_dropped"}`` for the metadata.
    """
    info: dict[str, Any] = {"tolerance": float(tol), "count": 0, "largest_dropped": 0.0}
    if tol <= 0 or record.n_edges == 0:
        return record, info
    edge_max = np.zeros(record.n_edges)
    for name, data in record.blocks.items():
        off = record.block_offsets(name)
        edge_max = np.maximum(edge_max, np.maximum.reduceat(np.abs(data), off[:-1]))
    keep = edge_max >= tol
    keep |= keep[record.reverse_edges] | record.onsite_mask
    if keep.all():
        return record, info
    info["count"] = int((~keep).sum())
    info["largest_dropped"] = float(edge_max[~keep].max())
    kept = np.flatnonzero(keep)
    blocks = {}
    for name, data in record.blocks.items():
        off = record.block_offsets(name)
        sizes = np.diff(off)[kept]
        start = np.repeat(off[kept] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        blocks[name] = data[np.arange(int(sizes.sum())) + start]
    return record.replace(edge_index=record.edge_index[kept], edge_R=record.edge_R[kept], blocks=blocks), info


# ---------------------------------------------------------------------------- the engine
@register_engine("gpaw")
class GPAWEngine(Engine):
    """GPAW LCAO engine. ``GPAWEngine(h=0.25, kpt_density=2.0, ...)``; see :class:`GPAWSettings`."""

    name = "gpaw"
    prediction_settings = {"check_kpoints": 0}  # GPAW's own H0 eigenvalues: a dataset check, ~1 SCF step

    def __init__(self, **settings: Any) -> None:
        if "min_bvk_mesh" in settings:
            settings["min_bvk_mesh"] = tuple(int(x) for x in settings["min_bvk_mesh"])
        unknown = set(settings) - set(GPAWSettings.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GPAW engine setting(s) {sorted(unknown)}; "
                             f"known: {sorted(GPAWSettings.__dataclass_fields__)}")
        self.config = GPAWSettings(**settings)
        if self.config.method not in ("realspace", "bvk"):
            raise ValueError(f"unknown GPAW engine method {self.config.method!r} (use 'realspace' or 'bvk')")
        if self.config.scf_grid_kernel not in ("auto", "bloch", "gpaw"):
            raise ValueError(f"unknown scf_grid_kernel {self.config.scf_grid_kernel!r} (use 'auto', 'bloch' or 'gpaw')")

    def settings(self) -> dict[str, Any]:
        return self.config.todict()

    def versions(self) -> dict[str, str]:
        gpaw = import_gpaw()
        out = {"gpaw": gpaw.__version__, "numpy": np.__version__}
        try:
            from importlib.metadata import version
            out["gpaw-data"] = version("gpaw-data")
        except Exception:  # pragma: no cover - gpaw-data from a tarball
            out["gpaw-data"] = "unknown (GPAW_SETUP_PATH)"
        import ase
        out["ase"] = ase.__version__
        return out

    # ------------------------------------------------------------------ input checks
    def check_input(self, atoms: Atoms) -> None:
        if len(atoms) == 0:
            raise EngineInputError("structure has no atoms")
        if not np.all(atoms.pbc):
            raise EngineInputError(f"structure must be periodic in 3-D (pbc={atoms.pbc.tolist()}); "
                                   "add vacuum and set pbc=True for slabs and molecules")
        vol = abs(np.linalg.det(atoms.cell.array))
        if vol < 1e-6:
            raise EngineInputError("structure has a singular (zero-volume) cell")
        symbols = atoms.get_chemical_symbols()
        bad = sorted({s for s in symbols if s not in atomic_numbers or s == "X"})
        if bad:
            raise EngineInputError(f"unknown element(s) {bad}")
        choose_setups(symbols, self.config.setups, self.config.xc, self.config.basis)
        # also a single atom: its own periodic images may overlap in a tiny cell
        i, j, d = primitive_neighbor_list("ijd", atoms.pbc, atoms.cell.array, atoms.positions,
                                          MIN_DISTANCE, self_interaction=False)
        if len(d):
            k = int(np.argmin(d))
            raise EngineInputError(
                f"overlapping atoms: {symbols[i[k]]}{i[k]} and {symbols[j[k]]}{j[k]} are "
                f"{d[k]:.3f} Å apart (minimum {MIN_DISTANCE} Å)")

    # ------------------------------------------------------------------ main entry
    def compute(self, atoms: Atoms, soc: bool = False, h0_only: bool = False) -> StructureRecord:
        """S, H0 and (unless ``h0_only``) H of ``atoms``; spinful H0/H with spin-orbit when ``soc``.

        When GPAW's finite-difference stencil cannot be built for the cell ("weird unit cell": some
        strained hexagonal cells), the structure is computed in its Minkowski-reduced lattice basis
        (same lattice, same atoms) and the record is expressed in the user's cell again
        (:func:`nextham.structure.lattice_shift.change_lattice_basis`); the metadata say so.
        """
        import_gpaw()
        self.check_input(atoms)
        try:
            return self._compute_in_cell(atoms, soc, h0_only)
        except EngineError as exc:
            if "weird unit cell" not in str(exc):
                raise
            from ase.geometry import minkowski_reduce

            reduced, op = minkowski_reduce(atoms.cell.array)
            if np.array_equal(op, np.eye(3, dtype=op.dtype)):
                raise EngineInputError(
                    f"GPAW cannot build its finite-difference stencil for the cell of "
                    f"{atoms.get_chemical_formula()} (lengths {np.round(atoms.cell.lengths(), 4).tolist()} Å, "
                    f"angles {np.round(atoms.cell.angles(), 3).tolist()}°), which is already Minkowski-reduced; "
                    "try a slightly different grid spacing h") from None
        other = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=reduced, pbc=True)
        record = self._compute_in_cell(other, soc, h0_only)
        k_reduced = np.asarray(record.metadata.get("check_kpoints", np.zeros((0, 3))), dtype=float).reshape(-1, 3)
        metadata = {**record.metadata, "cell_reduction": {
            "reason": "GPAW's stencil failed for the given cell ('weird unit cell')",
            "operation": op.tolist(), "note": "computed in the Minkowski-reduced cell operation @ cell"}}
        if len(k_reduced):  # phases k'.R' = k.R with R = R' @ op: k = k' @ inv(op)^T
            metadata["check_kpoints"] = (k_reduced @ np.linalg.inv(op).T).tolist()
        return change_lattice_basis(record.replace(metadata=metadata), atoms.cell.array, op)

    def _compute_in_cell(self, atoms: Atoms, soc: bool, h0_only: bool) -> StructureRecord:
        user_positions = np.array(atoms.positions, dtype=np.float64)
        atoms, wrap_offsets = wrapped_into_cell(atoms)
        c = self.config
        t_start = time.perf_counter()
        try:
            run = _GPAWRun(atoms, c)
            if c.method == "realspace":
                record, extra, timings, fermi = self._compute_realspace(run, soc, h0_only)
            else:
                record, extra, timings, fermi = self._compute_bvk(run, soc, h0_only)
            t2 = time.perf_counter()
            check = run.check_eigenvalues(c.check_kpoints, soc, h0_only)
            timings["t_check"] = time.perf_counter() - t2
        except (EngineError, MemoryError):
            raise
        except np.linalg.LinAlgError as exc:
            if "positive definite" not in str(exc):
                raise EngineError(f"GPAW failed on {atoms.get_chemical_formula()}: LinAlgError: {exc}") from exc
            raise EngineInputError(
                f"the overlap matrix S of {atoms.get_chemical_formula()} is not positive definite: its atomic "
                f"orbitals are nearly linearly dependent at this geometry ({_shortest_contact(atoms)}); GPAW's "
                f"Cholesky factorisation failed ({exc})") from None
        except Exception as exc:
            raise EngineError(f"GPAW failed on {atoms.get_chemical_formula()}: "
                              f"{type(exc).__name__}: {exc}") from exc
        timings["t_total"] = time.perf_counter() - t_start
        metadata = {
            "engine": self.name,
            "settings": self.settings(),
            "versions": self.versions(),
            "setups": run.setup_choice,
            "setup_notes": setup_notes(run.setup_choice, c.setups, c.xc, c.basis),
            "grid_points": list(run.gpts),
            "grid_points_raised": (f"GPAW's grid for h = {c.h} Å has fewer than {MIN_GRID_POINTS} points along a "
                                   f"cell vector; raised to {list(run.gpts)}") if run.grid_raised else None,
            "timings": timings,
            **extra,
            "scf_kpts": run.scf_kpts_info(),
            "n_valence": run.n_valence,
            "pair_cutoff_radii_A": run.radii.tolist(),
            "soc": bool(soc),
            "soc_method": ("second variation: scalar-relativistic SCF, SOC from gpaw.spinorbit.soc "
                           "per-atom matrices and projector overlaps added to H0 and H") if soc else None,
            "spin_polarized": False,
            "h0_only": bool(h0_only),
            **check,
        }
        record, dropped = drop_negligible_edges(record, c.drop_below)
        metadata["dropped_edges"] = dropped
        record = record.replace(fermi_energy_eV=fermi, metadata=metadata)
        return translate_atoms(record, wrap_offsets).replace(positions=user_positions)

    def _compute_realspace(self, run: "_GPAWRun", soc: bool, h0_only: bool):
        """Direct real-space assembly (no k-points): S, T, projector overlaps per lattice offset from
        GPAW's two-centre integrals, V(R) per cell displacement from the grid, PAW and SOC terms
        as three-centre sums; H from the SCF's own potential and basis functions."""
        t0 = time.perf_counter()
        run.build_scf_object(kpts=None if h0_only else "scf")
        t_setup = time.perf_counter() - t0
        blocks = {"S": run.realspace_two_centre()}
        blocks["H0"] = run.realspace_hamiltonian(run.dft, soc, "H0")
        # GPAW's wave functions (Bloch S, T, P) serve the SCF and the check, not H0: their time counts
        # to the SCF (an h0_only run builds none)
        t_wave_functions = run.setup_timings.get("t_wave_functions", 0.0)
        t_H0 = time.perf_counter() - t0 - t_wave_functions
        t_check = time.perf_counter()
        run.h0_check_eigenvalues(soc)
        timings = {"t_H0": t_H0, "t_H0_gpaw_setup": t_setup - t_wave_functions,
                   "t_wave_functions": t_wave_functions, "t_check_H0": time.perf_counter() - t_check}
        if h0_only:  # built for the check only
            timings["t_check_H0"] += t_wave_functions
        fermi = None
        if not h0_only:
            t1 = time.perf_counter()
            run.converge_scf()
            t2 = time.perf_counter()
            blocks["H"] = run.realspace_hamiltonian(run.dft, soc, "H")
            timings["t_H_extraction"] = time.perf_counter() - t2
            timings["t_SCF"] = time.perf_counter() - t1 + t_wave_functions
            timings["t_SCF_only"] = run.t_scf
            fermi = run.fermi_level_eV(run.dft)
        lay = run.layout
        record = StructureRecord(cell=run.atoms.cell.array, positions=run.atoms.positions,
                                 numbers=run.atoms.numbers, pbc=True, basis=run.nextham_basis(),
                                 edge_index=lay.edge_index, edge_R=lay.edge_R, blocks=blocks,
                                 spinful=bool(soc))
        extra = {"method": "realspace", "realspace_residual": dict(run.residual)}
        if not h0_only:
            extra["scf_grid_kernels"] = dict(run.scf_grid_kernels)
        return record, extra, timings, fermi

    def _compute_bvk(self, run: "_GPAWRun", soc: bool, h0_only: bool):
        """Reference path: Bloch matrices on a full Born-von Karman k-mesh, Fourier transformed."""
        t0 = time.perf_counter()
        run.build_bvk()
        S_k, H0_k = run.bvk_matrices(run.bvk.potential)
        mats = {"S": S_k, "H0": H0_k}
        spinful = {"S": False, "H0": bool(soc), "H": bool(soc)}
        if soc:
            mats["H0"] = run.add_soc(H0_k, run.bvk)
        t_h0_mats = time.perf_counter() - t0
        realspace_h0 = bloch_to_realspace({k: mats[k] for k in ("S", "H0")}, run.mesh, run.support,
                                          run.atom_offsets, spinful=spinful,
                                          real={"S": True, "H0": not soc})
        t_H0 = time.perf_counter() - t0
        fermi = None
        timings = {"t_H0": t_H0, "t_H0_matrices": t_h0_mats}
        matrices = dict(realspace_h0.matrices)
        residual = dict(realspace_h0.residual)
        imag = dict(realspace_h0.imag)
        if not h0_only:
            t1 = time.perf_counter()
            run.scf()
            _, H_k = run.bvk_matrices(run.scf_dft.potential, overlap=False)
            if soc:
                H_k = run.add_soc(H_k, run.scf_dft)
            realspace_h = bloch_to_realspace({"H": H_k}, run.mesh, run.support, run.atom_offsets,
                                             spinful=spinful, real={"H": not soc})
            timings["t_SCF"] = time.perf_counter() - t1
            timings["t_SCF_only"] = run.t_scf
            fermi = run.fermi_level_eV(run.scf_dft)
            matrices.update(realspace_h.matrices)
            residual.update(realspace_h.residual)
            imag.update(realspace_h.imag)
        record = StructureRecord.from_dense(run.atoms, run.nextham_basis(), matrices, spinful=bool(soc))
        extra = {"method": "bvk", "bvk_mesh": list(run.mesh), "realspace_residual": residual,
                 "realspace_max_imag": imag}
        return record, extra, timings, fermi


class _GPAWRun:
    """State of one structure's GPAW calculations (internal; every GPAW internal is used here)."""

    def __init__(self, atoms: Atoms, config: GPAWSettings) -> None:
        self.atoms = atoms
        self.config = config
        symbols = atoms.get_chemical_symbols()
        self.setup_choice = choose_setups(symbols, config.setups, config.xc, config.basis)
        self.gpts, self.grid_raised = grid_points(atoms.cell.array, config.h)
        # GPAW's own h -> grid conversion wherever it works (bit-identical to earlier records)
        self.grid = {"gpts": self.gpts} if self.grid_raised else {"h": config.h}
        self.bvk = None
        self.scf_dft = None
        self.dft = None
        self.h0_check = None
        self.t_scf = 0.0
        self.residual: dict[str, float] = {}

    def common(self) -> dict[str, Any]:
        c = self.config
        setups = {s: v for s, v in self.setup_choice.items() if v != "paw"}
        kw: dict[str, Any] = dict(mode={"name": "lcao", "force_complex_dtype": True}, basis=c.basis, xc=c.xc, setups=setups or "paw",
                                  occupations={"name": "fermi-dirac", "width": c.smearing_eV},
                                  txt=None)
        return kw

    # ------------------------------------------------------------------ BvK mesh calculation
    def build_bvk(self) -> None:
        from gpaw.dft import Parameters
        from gpaw.new.calculation import DFT

        c = self.config
        # setups and cutoffs from a Γ-only builder (cheap: no wave functions)
        params = Parameters(**{k: v for k, v in self.common().items() if k != "txt"}, **self.grid, kpts=(1, 1, 1))
        builder = params.dft_component_builder(self.atoms)
        setups = builder.setups
        self.gpts = tuple(int(x) for x in builder.grid.size)
        rc_orb = np.array([max(bf.get_cutoff() for bf in s.basis_functions_J) for s in setups]) * Bohr
        rc_proj = max(max(pt.get_cutoff() for pt in s.pt_j) for s in setups) * Bohr
        self.radii = rc_orb + rc_proj
        self.support = pair_support(self.atoms.cell.array, self.atoms.positions, self.radii)
        self.mesh = bvk_mesh(self.support, self.config.min_bvk_mesh)
        self.bvk = DFT(self.atoms, **self.common(), gpts=self.gpts,
                       kpts={"size": self.mesh, "gamma": True}, symmetry="off", converge=False)
        self.setups = self.bvk.setups
        self.n_valence = float(self.bvk.density.nvalence)
        kpts = self.bvk.ibzwfs.ibz.kpt_kc
        idx = mesh_index(kpts, self.mesh)
        if len(kpts) != int(np.prod(self.mesh)) or len(np.unique(idx)) != len(idx):
            raise EngineError(f"GPAW did not use the full {self.mesh} mesh ({len(kpts)} k-points)")
        self.k_order = np.argsort(idx)  # position in GPAW's list of each FFT-order k
        ls = [[bf.get_angular_momentum_number() for bf in s.basis_functions_J] for s in self.setups]
        self.ls = ls
        norb = np.array([sum(2 * l + 1 for l in x) for x in ls])
        self.atom_offsets = np.concatenate([[0], np.cumsum(norb)]).astype(np.int64)
        # nextham order within each atom (identity for GPAW, kept explicit)
        perm = []
        for a, x in enumerate(ls):
            off = self.atom_offsets[a]
            for l in x:
                p, s = gpaw_shell_permutation(l)
                perm.append((off + p, s))
                off += 2 * l + 1
        self.perm_idx = np.concatenate([p for p, _ in perm])
        self.perm_sign = np.concatenate([s for _, s in perm])

    def _wfs_list(self, dft) -> list:
        return [wfs for wfs in dft.ibzwfs]

    def bvk_matrices(self, potential, overlap: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """(S_k, H_k) on the BvK mesh in FFT order, eV, nextham orbital order, for ``potential``.

        Same terms as GPAW's ``CollinearHamiltonianMatrixCalculator`` (potential matrices on the grid
        for every BvK displacement, PAW ``P^* dH P^T``, kinetic ``T``), batched over k; checked
        against GPAW's per-k matrices (:meth:`bvk_matrices_reference`) in the tests.
        """
        ham = self.bvk.scf_loop.hamiltonian
        matcalc = ham.create_hamiltonian_matrix_calculator(potential)
        wfs = self._wfs_list(self.bvk)
        kpt_kc = np.array([w.kpt_c for w in wfs])
        V_xMM = np.asarray(matcalc.V_sxMM[0])
        nx, n, _ = V_xMM.shape
        sdisp = np.asarray(ham.basis.sdisp_xc[1:], dtype=float)
        phase = np.exp(-2j * np.pi * kpt_kc @ sdisp.T)  # (nk, nx-1)
        H = np.broadcast_to(V_xMM[0], (len(wfs), n, n)).astype(complex)
        if nx > 1:
            H += (2 * phase @ V_xMM[1:].reshape(nx - 1, n * n)).reshape(len(wfs), n, n)
        for a, dH_ii in matcalc.dH_saii[0].items():
            P = np.stack([w.P_aMi[a] for w in wfs])  # (nk, n, ni)
            H += np.conj(P @ dH_ii) @ np.swapaxes(P, 1, 2)
        H += np.stack([w.T_MM.data for w in wfs])
        H = 0.5 * (H + np.conj(np.swapaxes(H, 1, 2)))
        H *= Ha
        order = self.k_order
        H = self._permute(H[order])
        S = None
        if overlap:
            S = self._permute(np.stack([w.S_MM.data for w in wfs]).astype(complex)[order])
        return S, H

    def bvk_matrices_reference(self, potential, k: int) -> tuple[np.ndarray, np.ndarray]:
        """GPAW's own (S, H) at GPAW k-index ``k`` of the BvK calculation (GPAW order, eV), for tests."""
        ham = self.bvk.scf_loop.hamiltonian
        matcalc = ham.create_hamiltonian_matrix_calculator(potential)
        w = self._wfs_list(self.bvk)[k]
        return np.array(w.S_MM.data), np.array(matcalc.calculate_matrix(w).data) * Ha

    def _permute(self, M: np.ndarray) -> np.ndarray:
        i, s = self.perm_idx, self.perm_sign
        return M[:, i][:, :, i] * s[None, :, None] * s[None, None, :]

    def projections(self) -> dict[int, np.ndarray]:
        """a -> P_kMi (FFT k order, nextham orbital order): ``<p_i^a | Phi_M(k)>``."""
        wfs = self._wfs_list(self.bvk)
        out = {}
        for a in range(len(self.atoms)):
            P = np.stack([w.P_aMi[a] for w in wfs])[self.k_order]
            out[a] = P[:, self.perm_idx] * self.perm_sign[None, :, None]
        return out

    def soc_atom_matrices(self, dft) -> dict[int, np.ndarray]:
        """a -> dVL_vii (Hartree), GPAW's per-atom SOC matrices for the density of ``dft``."""
        from gpaw.spinorbit import soc
        from gpaw.utilities import pack_density

        xc = dft.pot_calc.xc.xc
        out = {}
        for a, D_sii in dft.density.D_asii.items():
            D_sp = np.array([pack_density(D_ii) for D_ii in np.asarray(D_sii).real])
            out[a] = soc(dft.setups[a], xc, D_sp)
        return out

    def add_soc(self, H_k: np.ndarray, dft) -> np.ndarray:
        """Spinful (spin-major) ``H ⊗ I2 + H_SOC`` (eV) on the BvK mesh."""
        dVL = self.soc_atom_matrices(dft)
        P = self.projections()
        nk, n, _ = H_k.shape
        out = np.zeros((nk, 2 * n, 2 * n), complex)
        out[:, :n, :n] = H_k
        out[:, n:, n:] = H_k
        for a, dVL_vii in dVL.items():
            Pa = P[a]
            Vx, Vy, Vz = (np.einsum("kmi,ij,knj->kmn", Pa.conj(), V, Pa, optimize=True) * Ha for V in dVL_vii)
            out[:, :n, :n] += Vz
            out[:, :n, n:] += Vx - 1j * Vy
            out[:, n:, :n] += Vx + 1j * Vy
            out[:, n:, n:] -= Vz
        return out


    # ------------------------------------------------------------------ direct real-space assembly
    def build_scf_object(self, kpts: str | None) -> None:
        """GPAW's DFT state before any SCF step (initial density = superposed atoms).

        ``kpts="scf"``: a full DFT object on the SCF's own k-mesh (converged later for H);
        ``None``: Γ only (H0-only runs: no k-points are needed in real space), without wave
        functions unless GPAW's own eigenvalues are to be checked. The LCAO dtype is complex either
        way so that GPAW's basis functions keep one potential matrix per cell displacement.
        """
        c = self.config
        kw = {k: v for k, v in self.common().items() if k != "txt"}
        extra: dict[str, Any] = {"maxiter": c.maxiter}
        if c.convergence:
            extra["convergence"] = dict(c.convergence)
        if kpts == "scf":
            k: dict[str, Any] = {"kpts": {"density": c.kpt_density, "gamma": True}}
        else:  # Γ only, no symmetry analysis: nothing here depends on k-points or symmetry
            k = {"kpts": {"size": (1, 1, 1), "gamma": True}, "symmetry": "off"}
        self.setup_timings: dict[str, float] = {}
        self.dft = initial_dft_state(self.atoms, kw | self.grid | k | extra,
                                     wave_functions=kpts == "scf" or c.check_kpoints > 0,
                                     timings=self.setup_timings)
        self.setups = self.dft.setups
        self.gpts = tuple(int(x) for x in self.dft.density.nt_sR.desc.size)  # as GPAW built it
        self.n_valence = float(self.dft.density.nvalence)
        self.ls = [[bf.get_angular_momentum_number() for bf in s.basis_functions_J] for s in self.setups]
        norb = np.array([sum(2 * l + 1 for l in x) for x in self.ls])
        self.atom_offsets = np.concatenate([[0], np.cumsum(norb)]).astype(np.int64)
        for x in self.ls:
            for l in x:
                idx, sign = gpaw_shell_permutation(l)
                assert np.array_equal(idx, np.arange(2 * l + 1)) and (sign == 1).all()
        self.spos_ac = np.asarray(self.dft.relpos_ac, dtype=float)  # GPAW's (wrapped) positions
        self.cell_bohr = self.atoms.cell.array / Bohr
        self.tci = _two_centre_expansions(self.setups, self.setup_choice, c.basis)
        rc_orb = self.tci.phit_rc[self.tci.I_a] * Bohr
        rc_proj = self.tci.pt_rc[self.tci.I_a].max() * Bohr
        self.radii = rc_orb + rc_proj
        positions = self.spos_ac @ self.atoms.cell.array
        support = pair_support(self.atoms.cell.array, positions, self.radii)
        self.layout = EdgeLayout(support.edge_index, support.edge_R, norb)

    def h0_check_eigenvalues(self, soc: bool) -> None:
        """GPAW's own eigenvalues of the initial density (before the SCF moves it), for the check."""
        if self.config.check_kpoints > 0:
            self.h0_check = self._own_eigenvalues(self.dft, CHECK_KPOINTS[:self.config.check_kpoints], soc)

    def _displacements(self, a1: np.ndarray, a2: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Vectors (Bohr) from atom a1 (cell 0) to atom a2 in cell R, (n, 3)."""
        return (self.spos_ac[a2] + R - self.spos_ac[a1]) @ self.cell_bohr

    def realspace_two_centre(self) -> np.ndarray:
        """S and T per edge (two-centre integrals + PAW overlap correction) and the projector
        overlaps ``<p^a | phi_b(R)>`` per lattice offset; S is returned, T and P are kept."""
        lay, tci = self.layout, self.tci
        S = np.zeros(lay.size)
        T = np.zeros(lay.size)
        I = tci.I_a
        i_e, j_e = lay.edge_index.T
        R_e = lay.edge_R
        d = np.linalg.norm(self._displacements(i_e, j_e, R_e), axis=1)
        reach = tci.phit_rc[I[i_e]] + tci.phit_rc[I[j_e]]
        # one of each Hermitian pair: (i < j) or (i == j and R >= 0 lexicographically)
        first = (i_e < j_e) | ((i_e == j_e) & (lexicographic_sign(R_e) >= 0))
        edges = np.flatnonzero(first & (d < reach))
        off, shape_i, shape_j = lay.offsets, lay.shape_i, lay.shape_j
        pair = I[i_e[edges]] * (I.max() + 1) + I[j_e[edges]]
        for key in np.unique(pair):  # one batch per species pair: all blocks have one shape
            e = edges[pair == key]
            D = self._displacements(i_e[e], j_e[e], R_e[e])
            ni, nj = int(shape_i[e[0]]), int(shape_j[e[0]])
            here = (off[e][:, None] + np.arange(ni * nj)).ravel()
            there = (off[lay.reverse[e]][:, None] + np.arange(ni * nj)).ravel()
            for packed, table in ((S, tci.O_II), (T, tci.T_II)):
                x = evaluate_two_centre(table[I[i_e[e[0]]], I[j_e[e[0]]]], D)
                packed[there] = x.transpose(0, 2, 1).ravel()  # the partner (j, i, -R): the transpose
                packed[here] = x.ravel()  # self-loops with R = 0 are their own partner
        # projector overlaps, per projector atom: columns = orbitals of (atom b, cell R) entries.
        # Every projector-orbital pair (d < rc_p(a) + rc_phi(b)) is an edge of the support.
        near = np.flatnonzero(d < tci.pt_rc[I[i_e]] + tci.phit_rc[I[j_e]])
        near = near[np.lexsort((R_e[near, 2], R_e[near, 1], R_e[near, 0], j_e[near], i_e[near]))]
        a_n, b_n, R_n = i_e[near], j_e[near], R_e[near]
        # every entry's columns in one array: entry n holds norb(b_n) columns, entries sorted by atom a
        width = lay.norb[b_n]
        start = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64)
        ni = np.array([s.ni for s in self.setups])
        P_all = np.zeros((int(ni.max()), int(width.sum())))
        pair = I[a_n] * (I.max() + 1) + I[b_n]
        for key in np.unique(pair):  # one batch per species pair: all blocks have one shape
            sel = np.flatnonzero(pair == key)
            x = evaluate_two_centre(tci.P_II[I[a_n[sel[0]]], I[b_n[sel[0]]]],
                                    self._displacements(a_n[sel], b_n[sel], R_n[sel]))  # (n, ni, nb)
            cols = start[sel][:, None] + np.arange(x.shape[2])
            P_all[np.arange(x.shape[1])[:, None, None], cols[None]] = x.transpose(1, 0, 2)
        column_atoms, column_cells = np.repeat(b_n, width), np.repeat(R_n, width, axis=0).astype(np.int64)
        bounds = np.searchsorted(a_n, np.arange(len(self.setups) + 1))
        col_bounds = np.concatenate([start, [P_all.shape[1]]])[bounds]
        columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # a -> (P, atoms, cells)
        for a in np.flatnonzero(np.diff(bounds)):  # projector atoms with orbitals in reach
            c0, c1 = col_bounds[a], col_bounds[a + 1]
            columns[int(a)] = (P_all[:ni[a], c0:c1], column_atoms[c0:c1], column_cells[c0:c1])
        self.projectors = ThreeCentreProducts(lay, columns)
        S += self.projectors({a: np.asarray(self.setups[a].dO_ii) for a in columns})
        self.T_packed = T
        return S

    def realspace_hamiltonian(self, dft, soc: bool, name: str) -> np.ndarray:
        """H(R) (eV, packed) of ``dft``'s present potential: T + V(R) + PAW (+ SOC, spin-major)."""
        lay = self.layout
        ham = dft.scf_loop.hamiltonian
        matcalc = ham.create_hamiltonian_matrix_calculator(dft.potential)
        V_xMM = np.asarray(matcalc.V_sxMM[0])
        V, residual = lay.gather_displacement_matrices(V_xMM, np.asarray(ham.basis.sdisp_xc))
        self.residual[name] = residual
        dH_aii = {a: np.asarray(dH_ii) for a, dH_ii in matcalc.dH_saii[0].items()}
        assert all(np.abs(d.imag).max(initial=0.0) < 1e-12 for d in dH_aii.values()), "complex PAW dH"
        H = np.real(V).astype(float) + self.T_packed
        H += self.projectors({a: dH.real for a, dH in dH_aii.items()})
        H *= Ha
        if not soc:
            return H
        dVL = self.soc_atom_matrices(dft)
        comps = [self.projectors({a: np.asarray(dVL_vii[v]) * Ha for a, dVL_vii in dVL.items()}, dtype=complex)
                 for v in range(3)]
        return lay.spinful_from_components(H, *comps)

    def converge_scf(self) -> None:
        """Run the SCF on :meth:`build_scf_object`'s DFT object (its own k-mesh and basis)."""
        t = time.perf_counter()
        with self._scf_convergence(), bloch_grid_scf(self.dft, self.config.scf_grid_kernel) as kernels:
            self.dft.converge()
        self.t_scf = time.perf_counter() - t
        self.scf_grid_kernels = kernels
        self.scf_dft = self.dft

    # ------------------------------------------------------------------ SCF
    def scf(self) -> None:
        from gpaw.new.calculation import DFT

        c = self.config
        kw = self.common()
        extra: dict[str, Any] = {"maxiter": c.maxiter}
        if c.convergence:
            extra["convergence"] = dict(c.convergence)
        t = time.perf_counter()
        with self._scf_convergence():
            self.scf_dft = DFT(self.atoms, **kw, gpts=self.gpts,
                               kpts={"density": c.kpt_density, "gamma": True}, converge=True, **extra)
        self.t_scf = time.perf_counter() - t

    @contextlib.contextmanager
    def _scf_convergence(self):
        """GPAW's KohnShamConvergenceError as one EngineError naming the structure and the limit."""
        try:
            yield
        except Exception as exc:
            if type(exc).__name__ == "KohnShamConvergenceError":
                raise EngineError(f"SCF did not converge within {self.config.maxiter} iterations "
                                  f"({self.atoms.get_chemical_formula()})") from exc
            raise

    def scf_kpts_info(self) -> dict[str, Any] | None:
        if self.scf_dft is None:
            return None
        ibz = self.scf_dft.ibzwfs.ibz
        return {"size": [int(x) for x in ibz.bz.size_c] if hasattr(ibz.bz, "size_c") else None,
                "n_ibz": int(len(ibz.kpt_kc)), "density": self.config.kpt_density}

    def fermi_level_eV(self, dft) -> float:
        return float(dft.ibzwfs.fermi_level * Ha)

    # ------------------------------------------------------------------ GPAW's own eigenvalues
    def _own_eigenvalues(self, dft, kpts: np.ndarray, soc: bool) -> np.ndarray:
        """GPAW's eigenvalues (eV) of ``dft``'s density at ``kpts``: fixed-density diagonalisation
        with all bands (``soc_eigenstates`` on top for SOC)."""
        from gpaw.new.ase_interface import ASECalculator
        from gpaw.new.logger import Logger

        unset = dft.ibzwfs.fermi_levels is None
        if unset:
            dft.ibzwfs.fermi_levels = np.array([0.0])
        calc = ASECalculator(dft.params, log=Logger(None, dft.comm), dft=dft, atoms=self.atoms)
        nao = int(self.atom_offsets[-1])
        with reused_setups():
            fixed = calc.fixed_density(kpts=kpts, symmetry="off", nbands=nao, txt=None)
        if unset:  # leave a DFT object that has not run its SCF as it was
            dft.ibzwfs.fermi_levels = None
        if soc:
            from gpaw.spinorbit import soc_eigenstates
            return np.asarray(soc_eigenstates(fixed).eigenvalues())
        return np.array([fixed.get_eigenvalues(kpt=k) for k in range(len(kpts))])

    def check_eigenvalues(self, n: int, soc: bool, h0_only: bool) -> dict[str, Any]:
        if n <= 0:
            return {}
        kpts = CHECK_KPOINTS[:n]
        out: dict[str, Any] = {"check_kpoints": kpts.tolist()}
        if self.h0_check is not None:
            out["check_eigenvalues_H0_eV"] = self.h0_check.tolist()
        else:
            out["check_eigenvalues_H0_eV"] = self._own_eigenvalues(self.bvk, kpts, soc).tolist()
        if not h0_only:
            out["check_eigenvalues_H_eV"] = self._own_eigenvalues(self.scf_dft, kpts, soc).tolist()
        return out

    def nextham_basis(self) -> Basis:
        seen: dict[str, ElementBasis] = {}
        for a, sym in enumerate(self.atoms.get_chemical_symbols()):
            if sym not in seen:
                seen[sym] = ElementBasis.from_ls(sym, self.ls[a])
        return Basis(tuple(seen.values()))
