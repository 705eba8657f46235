"""Benchmark: Bloch sum + generalized eigensolve of a 500-orbital, 101-R system at 100 k-points.

    .venv/bin/python benchmarks/core/bench_bloch_eig.py [--norb-atom 25 --atoms 20 --nk 100]

Compares nextham's vectorized path (sparse Bloch operator + batched canonical-orthogonalisation
eigh) with a plain loop over R of dense matrices and scipy.linalg.eigh per k. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.linalg
from ase import Atoms

from nextham.basis.orbitals import Basis
from nextham.blocks.record import StructureRecord
from nextham.physics.bands import eigenvalues
from nextham.physics.bloch import bloch_operator


def synthetic_record(n_atoms: int, rng: np.random.Generator) -> StructureRecord:
    basis = Basis.from_specs({"Fe": [0, 0, 1, 1, 2, 2, 3]})  # 25 orbitals per atom
    atoms = Atoms(f"Fe{n_atoms}", scaled_positions=rng.random((n_atoms, 3)), cell=np.eye(3) * 9.0, pbc=True)
    n = basis.norb_per_atom(atoms.numbers).sum()
    Rs = [(0, 0, 0)] + [R for R in np.ndindex(5, 5, 5)]
    Rs = sorted({tuple(int(x) - 2 for x in R) for R in Rs})
    half = [R for R in Rs if R > (0, 0, 0)][:50]
    H, S = {}, {}
    A = rng.normal(size=(n, n))
    H[(0, 0, 0)] = A + A.T
    B = rng.normal(size=(n, n)) * 0.01
    S[(0, 0, 0)] = np.eye(n) + B + B.T
    for R in half:
        decay = np.exp(-np.linalg.norm(R))
        M = rng.normal(size=(n, n)) * decay
        O = rng.normal(size=(n, n)) * 0.005 * decay
        H[R], H[tuple(-x for x in R)] = M, M.T
        S[R], S[tuple(-x for x in R)] = O, O.T
    return StructureRecord.from_dense(atoms, basis, {"H": H, "S": S})


def loop_reference(dense_H, dense_S, kpts):
    out = []
    for k in kpts:
        Hk = sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in dense_H.items())
        Sk = sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in dense_S.items())
        out.append(scipy.linalg.eigh(Hk, Sk, eigvals_only=True))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoms", type=int, default=20)
    ap.add_argument("--nk", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    rec = synthetic_record(args.atoms, rng)
    t_build = time.perf_counter() - t0
    kpts = rng.random((args.nk, 3))
    n_R = len(np.unique(rec.edge_R, axis=0))

    t0 = time.perf_counter()
    H_op = bloch_operator(rec, "H")
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    Hk = H_op(kpts)
    t_bloch = time.perf_counter() - t0
    del Hk
    t0 = time.perf_counter()
    eps, _ = eigenvalues(rec, kpts)
    t_total = time.perf_counter() - t0

    dense_H, dense_S = rec.to_dense("H"), rec.to_dense("S")
    t0 = time.perf_counter()
    ref = loop_reference(dense_H, dense_S, kpts)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in kpts:
        sum(np.exp(2j * np.pi * np.dot(k, R)) * M for R, M in dense_H.items())
    t_loop_bloch = time.perf_counter() - t0

    print(json.dumps({
        "n_orbitals": rec.n_orbitals, "n_R": n_R, "n_k": args.nk, "n_edges": rec.n_edges,
        "record_build_s": round(t_build, 2),
        "bloch_operator_setup_s": round(t_setup, 3),
        "bloch_sum_H_s": round(t_bloch, 3),
        "loop_bloch_sum_H_s": round(t_loop_bloch, 3),
        "bloch_speedup": round(t_loop_bloch / t_bloch, 2),
        "bloch_plus_eig_H_S_s": round(t_total, 3),
        "loop_bloch_plus_scipy_eigh_s": round(t_loop, 3),
        "total_speedup": round(t_loop / t_total, 2),
        "max_abs_eigenvalue_difference_eV": float(np.max(np.abs(eps - ref))),
    }, indent=2))


if __name__ == "__main__":
    main()
