"""Bloch sums ``H(k) = sum_R exp(+2 pi i k.R) H(R)`` for many k at once (docs/conventions.md).

``k`` in fractional reciprocal coordinates; ``R`` integer lattice translations of the column atom.
The sum is one matrix product with the phase matrix ``n_R x n_k``: the packed blocks form a sparse
matrix ``(n*n) x n_R`` (only stored block elements; cost ``O(nnz * n_k)``), or, where the blocks fill
more than ``DENSE_FILL`` of the dense stack ``n_R x n*n`` and that stack fits in ``DENSE_MAX_BYTES``,
a dense stack multiplied by the cosine and sine parts of the phases with two real BLAS products.
Memory is bounded by chunking over k.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import scipy.sparse as sp

from ..blocks.record import StructureRecord


DENSE_FILL = 0.25
DENSE_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class BlochOperator:
    """Precomputed layout of one matrix of a record.

    R_vectors : (n_R, 3) int64 unique translations; matrix : scipy CSR ``(dim*dim, n_R)``, or a dense
    array ``(n_R, dim*dim)`` (see module docstring); dim : matrix dimension (n spinless, 2n spinful).
    """

    R_vectors: np.ndarray
    matrix: sp.csr_matrix | np.ndarray
    dim: int

    def __call__(self, kpts: np.ndarray, max_bytes: int = 1 << 28) -> np.ndarray:
        """(n_k, dim, dim) complex128 Bloch matrices at fractional ``kpts`` (n_k, 3)."""
        kpts = np.atleast_2d(np.asarray(kpts, dtype=np.float64))
        out = np.empty((len(kpts), self.dim, self.dim), dtype=np.complex128)
        chunk = max(1, int(max_bytes // (16 * self.dim * self.dim)))
        for start in range(0, len(kpts), chunk):
            k = kpts[start:start + chunk]
            arg = 2 * np.pi * (self.R_vectors @ k.T)  # (n_R, n_k)
            if isinstance(self.matrix, np.ndarray):
                block = out[start:start + chunk].reshape(len(k), -1)
                if np.iscomplexobj(self.matrix):
                    block[:] = np.exp(1j * arg).T @ self.matrix
                else:
                    block.real = np.cos(arg).T @ self.matrix
                    block.imag = np.sin(arg).T @ self.matrix
            else:
                out[start:start + chunk] = (self.matrix @ np.exp(1j * arg)).T.reshape(len(k), self.dim, self.dim)
        return out


def packed_element_indices(record: StructureRecord, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Global (row, col, R-index) of every packed element of ``name``, and the unique R vectors.

    Rows/cols index the whole-cell matrix (spin-major for spinful H: ``s * n + orbital``).
    Returns ``(rows, cols, r_index, R_vectors)``; shapes (nnz,), (nnz,), (nnz,), (n_R, 3).
    """
    c = record.coordinates(name)
    return c.row, c.col, record.layout.r_of_edge[c.edge], record.layout.lattice_R


def bloch_operator(record: StructureRecord, name: str) -> BlochOperator:
    """Build the sparse Bloch operator of matrix ``name`` (reuse it for many k)."""
    rows, cols, r_index, R_vectors = packed_element_indices(record, name)
    dim = record.spin_factor(name) * record.n_orbitals
    values = record.blocks[name]
    stack_bytes = len(R_vectors) * dim * dim * values.itemsize
    if values.size > DENSE_FILL * len(R_vectors) * dim * dim and stack_bytes <= DENSE_MAX_BYTES:
        stack = np.zeros((len(R_vectors), dim * dim), values.dtype)
        stack[r_index, rows * dim + cols] = values
        return BlochOperator(R_vectors, stack, dim)
    mat = sp.csr_matrix((values, (rows * dim + cols, r_index)), shape=(dim * dim, len(R_vectors)))
    return BlochOperator(R_vectors, mat, dim)


def bloch_sum(record: StructureRecord, name: str, kpts: np.ndarray) -> np.ndarray:
    """``M(k) = sum_R exp(+2 pi i k.R) M(R)``, shape (n_k, dim, dim) complex128.

    ``name`` one of the record's matrices; ``kpts`` (n_k, 3) fractional. For spinful H the matrix is
    spin-major (2n, 2n); ``S`` is always (n, n) — see :func:`overlap_for`.
    """
    return bloch_operator(record, name)(kpts)


def overlap_for(record: StructureRecord, Sk: np.ndarray, name: str) -> np.ndarray:
    """The overlap matching Hamiltonian ``name``: ``I_2 ⊗ S(k)`` (spin-major) when spinful."""
    if record.spin_factor(name) == 2:
        return np.kron(np.eye(2), Sk) if Sk.ndim == 2 else np.einsum("ab,kij->kaibj", np.eye(2), Sk).reshape(
            len(Sk), 2 * Sk.shape[1], 2 * Sk.shape[2])
    return Sk


def bloch_sum_loop(record: StructureRecord, name: str, kpts: np.ndarray) -> np.ndarray:
    """Reference implementation: a plain loop over R of dense matrices (for tests and benchmarks)."""
    dense = record.to_dense(name)
    kpts = np.atleast_2d(kpts)
    dim = next(iter(dense.values())).shape[0]
    out = np.zeros((len(kpts), dim, dim), dtype=np.complex128)
    for ik, k in enumerate(kpts):
        for R, M in dense.items():
            out[ik] += np.exp(2j * np.pi * np.dot(k, R)) * M
    return out
