"""Symmetry operations on block records and synthetic records, for equivariance tests.

Each operation returns a new record whose blocks transform exactly as a Hamiltonian does
(docs/conventions.md): a model is equivariant when ``model(op(record)) == op(model(record))``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..basis.orbitals import Basis
from ..basis.rotations import atom_rotation
from ..blocks.record import StructureRecord


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
