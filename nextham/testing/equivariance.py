"""Symmetry operations on block records, the one equivariance check of models, and synthetic records.

Each operation returns a new record whose blocks transform exactly as a Hamiltonian does
(docs/conventions.md): a model is equivariant when ``model(op(record)) == op(model(record))``.
:func:`assert_model_equivariant` runs every operation on one model and record; every model test calls it,
so a new layer gets the full check by calling one function.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..basis.orbitals import Basis
from ..basis.rotations import atom_rotation, random_orthogonal
from ..blocks.record import StructureRecord, hermitian_error


def rotate_blocks(record: StructureRecord, Q: np.ndarray, data: np.ndarray, name: str) -> np.ndarray:
    """Packed blocks of ``name`` rotated by orthogonal ``Q`` (``A_i B A_j^dagger``, A = U (x) D spin-major)."""
    spin = record.spin_factor(name) == 2
    A = {z: atom_rotation(record.basis[chemical_symbols[z]].ls, Q, spin) for z in np.unique(record.numbers)}
    off = record.block_offsets(name)
    shapes = record.block_shapes(name)
    out = np.empty_like(data)
    for e, (i, j) in enumerate(record.edge_index):  # test helper: loops are fine
        B = data[off[e]:off[e + 1]].reshape(shapes[e])
        Ai, Aj = A[record.numbers[i]], A[record.numbers[j]]
        out[off[e]:off[e + 1]] = (Ai @ B @ Aj.conj().T).ravel()
    return out


def rotate_record(record: StructureRecord, Q: np.ndarray) -> StructureRecord:
    """Rotate (or reflect, ``det Q = -1``) geometry and every block: ``r -> Q r``, cell rows ``-> rows @ Q^T``."""
    Q = np.asarray(Q, dtype=np.float64)
    blocks = {k: rotate_blocks(record, Q, v, k) for k, v in record.blocks.items()}
    return record.replace(positions=record.positions @ Q.T, cell=record.cell @ Q.T, blocks=blocks)


def translate_record(record: StructureRecord, shift: np.ndarray) -> StructureRecord:
    """Rigid translation by ``shift`` (Å); blocks unchanged."""
    return record.replace(positions=record.positions + np.asarray(shift, dtype=np.float64)[None])


def permute_atoms(record: StructureRecord, perm: np.ndarray) -> StructureRecord:
    """New atom ``k`` is old atom ``perm[k]``; edge order and blocks unchanged (atom labels renamed)."""
    perm = np.asarray(perm, dtype=np.int64)
    inv = np.argsort(perm)
    return record.replace(positions=record.positions[perm], numbers=record.numbers[perm],
                          edge_index=inv[record.edge_index])


def shift_image(record: StructureRecord, atom: int, n: np.ndarray) -> StructureRecord:
    """Move ``atom`` to its periodic image ``pos + n @ cell``; edges' R relabelled, blocks unchanged."""
    n = np.asarray(n, dtype=np.int64)
    pos = record.positions.copy()
    pos[atom] += n @ record.cell
    R = record.edge_R.copy()
    i, j = record.edge_index.T
    R[j == atom] -= n
    R[i == atom] += n
    return record.replace(positions=pos, edge_R=R)


EQUIVARIANCE_RTOL = {"float64": 1e-10, "float32": 1e-4}
"""Largest ``max |model(op(x)) - op(model(x))| / max |op(model(x))|`` accepted, by the model's parameter
dtype. Measured on the tiny preset (two blocks, untrained, synthetic Si and GaAs records): <= 5e-15 in
float64, <= 1e-6 in float32 (the rounding of a few hundred float32 operations per output)."""


def model_dtype(model: Any) -> str:
    """``"float64"`` or ``"float32"``: the dtype of the model's floating-point parameters."""
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return "float64" if p.dtype == torch.float64 else "float32"
    return "float64"


def predict_delta(model: Any, record: StructureRecord) -> np.ndarray:
    """Packed dH (laid out like ``record.blocks["H0"]``) of a :class:`nextham.nn.NextHAMModel` for the
    record's graph at the model's cutoff, without building an autograd graph."""
    import torch

    from ..graph import build_graph, collate

    with torch.no_grad():
        out = model(collate([build_graph(record, model.config.cutoff)]))
    return out.delta.detach().cpu().numpy()


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def assert_model_equivariant(model: Any, record: StructureRecord, *,
                             predict: Callable[[StructureRecord], np.ndarray] | None = None,
                             rtol: float | None = None, rotations: int = 2, seed: int = 0,
                             permutations: bool = True, images: bool = True, translations: bool = True,
                             hermitian: bool = True) -> dict[str, float]:
    """Assert that ``predict`` (dH or H of ``record``, packed like its ``H0``) transforms as a Hamiltonian.

    Checks, each against the prediction on ``record`` transformed by the same operation:

    * ``rotations`` random proper and ``rotations`` random improper orthogonal ``Q`` and the inversion
      ``-I`` (blocks ``A_i B A_j^dagger``, ``A = D(Q)``, spin-major ``U (x) D(Q)`` with ``U`` the SU(2)
      matrix of ``Q``'s proper part for spinful records);
    * a rigid translation (``translations``), a random atom permutation (``permutations``; needs >= 2
      atoms) and every atom moved to a random periodic image (``images``; periodic directions only):
      dH must not change;
    * ``hermitian``: ``dH_ij(R) = dH_ji(-R)^dagger`` to the same tolerance (times ``max |dH|``).

    ``predict`` defaults to :func:`predict_delta` of ``model`` (a ``NextHAMModel``); pass one for trained
    models behind other interfaces. ``rtol`` defaults to :data:`EQUIVARIANCE_RTOL` of the model's
    dtype; errors are ``max |got - want| / max |want|``. A prediction that is zero everywhere raises
    (the check could not fail: build test models with ``zero_init_output=False``). Returns the error
    of every check by name.
    """
    predict = predict or (lambda rec: predict_delta(model, rec))
    rtol = EQUIVARIANCE_RTOL[model_dtype(model)] if rtol is None else rtol
    rng = np.random.default_rng(seed)
    ref = predict(record)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if not scale > 0:
        raise AssertionError("the model predicts zero everywhere: the equivariance check cannot fail "
                             "(build the model with zero_init_output=False)")
    errors: dict[str, float] = {}
    ops: list[tuple[str, Callable[[StructureRecord], StructureRecord], np.ndarray]] = []
    Qs = [(f"rotation {k}", random_orthogonal(rng, improper=False)) for k in range(rotations)]
    Qs += [(f"improper rotation {k}", random_orthogonal(rng, improper=True)) for k in range(rotations)]
    Qs.append(("inversion", -np.eye(3)))
    for name, Q in Qs:
        ops.append((name, lambda rec, Q=Q: rotate_record(rec, Q), rotate_blocks(record, Q, ref, "H0")))
    if translations:
        shift = rng.normal(scale=2.0, size=3)
        ops.append(("translation", lambda rec: translate_record(rec, shift), ref))
    if permutations and record.n_atoms > 1:
        perm = rng.permutation(record.n_atoms)
        while np.array_equal(perm, np.arange(record.n_atoms)):
            perm = rng.permutation(record.n_atoms)
        ops.append(("atom permutation", lambda rec: permute_atoms(rec, perm), ref))
    if images and np.any(record.pbc):
        shifts = rng.integers(-2, 3, size=(record.n_atoms, 3)) * np.asarray(record.pbc, dtype=np.int64)

        def move(rec: StructureRecord) -> StructureRecord:
            for atom, n in enumerate(shifts):
                rec = shift_image(rec, atom, n)
            return rec

        ops.append(("periodic images", move, ref))
    for name, op, want in ops:
        errors[name] = _relative_error(predict(op(record)), want)
    if hermitian:
        errors["hermiticity"] = hermitian_error(record.with_blocks(H0=ref), "H0") / scale
    failed = {k: v for k, v in errors.items() if not v <= rtol}
    if failed:
        raise AssertionError(f"model is not equivariant to rtol {rtol:g}: "
                             + ", ".join(f"{k}: {v:.3g}" for k, v in failed.items()))
    return errors


def _random_block(rng: np.random.Generator, shape: tuple[int, int], complex_: bool) -> np.ndarray:
    B = rng.normal(size=shape)
    if complex_:
        B = B + 1j * rng.normal(size=shape)
    return B


def synthetic_record(atoms: Atoms, basis: Basis, spinful: bool = False, cutoff: float = 6.0,
                     rng: np.random.Generator | int | None = 0, with_target: bool = True,
                     decay: float = 0.5) -> StructureRecord:
    """A record with random Hermitian S, H0 (and H = H0 + small random Hermitian) on all pairs within ``cutoff``.

    Values are random (not physical) but exactly Hermitian; ``decay`` (1/Å) damps blocks with distance.
    """
    from ase.neighborlist import primitive_neighbor_list

    rng = np.random.default_rng(rng)
    i, j, S = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, cutoff,
                                      self_interaction=True)
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    i, j, S = i[order], j[order], S[order]
    rec = StructureRecord(cell=atoms.cell.array, positions=atoms.positions, numbers=atoms.numbers, pbc=atoms.pbc,
                          basis=basis.restrict(atoms.numbers), edge_index=np.stack([i, j], 1), edge_R=S, blocks={},
                          spinful=spinful)
    rev = rec.reverse_edges
    dist = rec.edge_lengths
    blocks = {}
    names = ["S", "H0", "H"] if with_target else ["S", "H0"]
    for name in names:
        shapes = rec.block_shapes(name)
        complex_ = spinful and name != "S"
        parts: list[np.ndarray | None] = [None] * rec.n_edges
        for e in range(rec.n_edges):
            r = rev[e]
            if parts[e] is not None:
                continue
            B = _random_block(rng, tuple(shapes[e]), complex_) * np.exp(-decay * dist[e])
            if name == "H":
                B = 0.05 * B
            if r == e:
                parts[e] = 0.5 * (B + B.conj().T)
            else:
                parts[e] = B
                parts[r] = B.conj().T
        blocks[name] = np.concatenate([p.ravel() for p in parts])
    if with_target:
        blocks["H"] = blocks["H0"] + blocks["H"]
    return rec.with_blocks(**blocks)


EXAMPLE_BASES = {
    "si": {"Si": "2s2p1d"},
    "gaas": {"Ga": "2s2p2d1f", "As": "2s2p1d"},
}


def example_record(kind: str = "si", spinful: bool = False, seed: int = 0, cutoff: float = 4.5,
                   repeat: int = 1) -> StructureRecord:
    """Small synthetic records for tests and benchmarks.

    ``"si"``: 2-atom diamond Si, basis 2s2p1d; ``"gaas"``: zincblende GaAs with Ga 2s2p2d1f (an f shell) and
    As 2s2p1d (mixed bases). Atoms are displaced slightly off the ideal sites (no accidental symmetry);
    ``repeat`` makes an ``repeat^3`` supercell (e.g. 2 -> 16 atoms, 4 -> 128 atoms).
    """
    from ase.build import bulk

    if kind == "si":
        atoms = bulk("Si", "diamond", a=5.43)
    elif kind == "gaas":
        atoms = bulk("GaAs", "zincblende", a=5.65)
    else:
        raise ValueError(f"unknown example {kind!r}")
    if repeat > 1:
        atoms = atoms.repeat((repeat, repeat, repeat))
    rng = np.random.default_rng(seed + 1000)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    return synthetic_record(atoms, Basis.from_specs(EXAMPLE_BASES[kind]), spinful=spinful, cutoff=cutoff, rng=seed)
