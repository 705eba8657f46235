"""Shell-pair blocks <-> irreducible representations (Clebsch-Gordan / Wigner-Eckart).

Frame
-----
nextham's real harmonics (docs/conventions.md) are e3nn's real basis once Cartesian vectors enter e3nn
as ``(y, z, x)``: with ``P`` the permutation ``(x, y, z) -> (y, z, x)``,
``o3.Irrep(l, (-1)**l).D_from_matrix(P Q P^T) == nextham.basis.rotations.wigner_D(l, Q)`` exactly
(tested for l = 0..5, proper and improper ``Q``). Every tensor in ``nextham.nn`` lives in that frame;
use :func:`to_e3nn_frame` for vectors and :func:`e3nn_rotation` for matrices.

Spinless (l1, l2) sub-block
---------------------------
``B`` (2l1+1, 2l2+1) real transforms as ``D^l1 B D^l2^T``; its irreps are
``c_L[M] = sqrt(2L+1) sum_{m1 m2} C^{l1 l2 L}_{m1 m2 M} B[m1, m2]`` for ``L = |l1-l2| .. l1+l2``, parity
``(-1)^(l1+l2)`` (``C = e3nn.o3.wigner_3j``). The map is orthogonal, so
``sum B^2 = sum c^2`` and the inverse is the transpose.

Spinful (l1, l2) sub-block
--------------------------
The spin-major sub-block ``B[s1 m1, s2 m2]`` (complex, 2(2l1+1) x 2(2l2+1)) transforms as
``(U (x) D^l1) B (U (x) D^l2)^dagger``. Expanding the spin 2x2 matrix on ``sigma_a / sqrt 2``
(``a = 0`` identity, ``a = x, y, z`` Pauli), ``b_a = tr(sigma_a M) / sqrt 2``: ``b_0`` is spin-invariant,
``(b_x, b_y, b_z)`` is an axial vector (``1e``, taken in the order ``(y, z, x)``). Hence
``(l1 (x) l2) (x) (0 (+) 1) = (+)_L L_p  (+)  (+)_L (+)_J J_p`` with ``p = (-1)^(l1+l2)``, for the real
and the imaginary part separately. The real-linear map (Re B, Im B) -> irreps is orthogonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

E3NN_AXES = (1, 2, 0)
"""Cartesian components fed to e3nn: ``v_e3nn = v[..., E3NN_AXES]`` (``(y, z, x)``)."""

PERMUTATION = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float64)
"""``P`` with ``P @ (x, y, z) = (y, z, x)``."""


def to_e3nn_frame(vectors):
    """Cartesian vectors (..., 3) in nextham's frame -> e3nn's input order ``(y, z, x)`` (numpy or torch)."""
    return vectors[..., list(E3NN_AXES)]


def e3nn_rotation(Q: np.ndarray) -> np.ndarray:
    """The 3x3 matrix to give e3nn's ``D_from_matrix`` for a nextham-frame orthogonal ``Q``: ``P Q P^T``."""
    return PERMUTATION @ np.asarray(Q, dtype=np.float64) @ PERMUTATION.T


@lru_cache(maxsize=None)
def wigner_3j(l1: int, l2: int, l3: int) -> np.ndarray:
    """e3nn's real Clebsch-Gordan tensor ``C[m1, m2, m3]`` (float64, Frobenius norm 1)."""
    import torch
    from e3nn import o3

    return o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy()


@dataclass(frozen=True)
class PairIrreps:
    """The irreps of one (l1, l2) shell-pair sub-block and the orthogonal change of basis.

    Attributes
    ----------
    l1, l2, spinful : the shell pair.
    irreps : tuple of ``(L, parity)``, each one copy, in the order of the irreps vector.
    labels : a readable name of each irrep (``"L2"``, ``"re s0 L1"``, ``"im sx L1 J2"`` ...).
    matrix : (n_real, n_irreps) float64 orthogonal; ``irreps = block_real @ matrix``. ``block_real`` is the
        row-major flattened block (spinless, (2l1+1)(2l2+1) values) or, spinful, the concatenation of the
        real and the imaginary part of the block reshaped ``(2, 2l1+1, 2, 2l2+1)`` = ``[s1, m1, s2, m2]``.
    """

    l1: int
    l2: int
    spinful: bool
    irreps: tuple[tuple[int, int], ...]
    labels: tuple[str, ...]
    matrix: np.ndarray

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    @property
    def block_shape(self) -> tuple[int, int]:
        f = 2 if self.spinful else 1
        return f * (2 * self.l1 + 1), f * (2 * self.l2 + 1)

    @property
    def irreps_string(self) -> str:
        return "+".join(f"1x{L}{'e' if p == 1 else 'o'}" for L, p in self.irreps)


def _spinless_coupling(l1: int, l2: int) -> tuple[list[int], np.ndarray]:
    """Ls and the (d1 d2, sum_L (2L+1)) orthogonal matrix of the orbital coupling."""
    Ls = list(range(abs(l1 - l2), l1 + l2 + 1))
    cols = [np.sqrt(2 * L + 1) * wigner_3j(l1, l2, L).reshape((2 * l1 + 1) * (2 * l2 + 1), 2 * L + 1) for L in Ls]
    return Ls, np.concatenate(cols, axis=1)


@lru_cache(maxsize=None)
def pair_irreps(l1: int, l2: int, spinful: bool = False) -> PairIrreps:
    """Irreps decomposition of an (l1, l2) sub-block (cached)."""
    p = (-1) ** (l1 + l2)
    Ls, C = _spinless_coupling(l1, l2)  # (d1 d2, n)
    d1, d2 = 2 * l1 + 1, 2 * l2 + 1
    if not spinful:
        return PairIrreps(l1, l2, False, tuple((L, p) for L in Ls), tuple(f"L{L}" for L in Ls), C.copy())

    from .rotations import pauli_matrices

    sig = np.concatenate([np.eye(2, dtype=np.complex128)[None], pauli_matrices()])  # (4, 2, 2): 1, x, y, z
    # b_a[m1, m2] = sum_{s1 s2} sigma_a[s2, s1] B[s1, m1, s2, m2] / sqrt 2, as a (4, d1 d2) x (2 d1 2 d2) map
    spin = np.einsum("aij,mn,pq->ampinjq", sig.transpose(0, 2, 1), np.eye(d1), np.eye(d2)) / np.sqrt(2)
    spin = spin.reshape(4, d1 * d2, 4 * d1 * d2)  # [a, (m1 m2), (s1 m1 s2 m2)]
    rows: list[np.ndarray] = []  # complex rows of the coefficient map
    irreps: list[tuple[int, int]] = []
    labels: list[str] = []
    # spin-scalar part
    for k, L in enumerate(Ls):
        sl = slice(sum(2 * x + 1 for x in Ls[:k]), sum(2 * x + 1 for x in Ls[:k + 1]))
        rows.append(C[:, sl].T @ spin[0])
        irreps.append((L, p))
        labels.append(f"s0 L{L}")
    # spin-vector part, components in (y, z, x) order = Pauli indices (2, 3, 1)
    vec = np.stack([spin[2], spin[3], spin[1]])  # (3, d1 d2, 4 d1 d2)
    for k, L in enumerate(Ls):
        sl = slice(sum(2 * x + 1 for x in Ls[:k]), sum(2 * x + 1 for x in Ls[:k + 1]))
        t = np.einsum("xM,kxz->Mkz", C[:, sl], vec)  # (2L+1, 3, 4 d1 d2)
        for J in range(abs(L - 1), L + 2):
            CJ = np.sqrt(2 * J + 1) * wigner_3j(L, 1, J)  # (2L+1, 3, 2J+1)
            rows.append(np.einsum("MkN,Mkz->Nz", CJ, t))
            irreps.append((J, p))
            labels.append(f"sv L{L} J{J}")
    V = np.concatenate(rows, axis=0)  # (4 d1 d2, 4 d1 d2) complex unitary
    real = np.block([[V.real, -V.imag], [V.imag, V.real]])  # [Re c; Im c] = real @ [Re B; Im B]
    all_irreps = tuple(irreps) * 2
    all_labels = tuple("re " + s for s in labels) + tuple("im " + s for s in labels)
    return PairIrreps(l1, l2, True, all_irreps, all_labels, real.T.copy())


def _as_real_rows(blocks, pair: PairIrreps):
    """(..., rows, cols) sub-blocks -> (..., n_real) real rows (numpy or torch)."""
    lead = blocks.shape[:-2]
    if not pair.spinful:
        return blocks.reshape(*lead, -1)
    flat = blocks.reshape(*lead, -1)
    if isinstance(flat, np.ndarray):
        return np.concatenate([flat.real, flat.imag], axis=-1)
    import torch

    return torch.cat([flat.real, flat.imag], dim=-1)


def block_to_irreps(blocks, l1: int, l2: int, spinful: bool = False):
    """(..., rows, cols) shell-pair sub-blocks -> (..., dim) irreps (numpy or torch, vectorized).

    Spinless blocks are real ``(2l1+1, 2l2+1)``; spinful ones complex spin-major ``(2(2l1+1), 2(2l2+1))``.
    """
    pair = pair_irreps(l1, l2, spinful)
    if tuple(blocks.shape[-2:]) != pair.block_shape:
        raise ValueError(f"({l1},{l2}) sub-block must have shape {pair.block_shape}, got {tuple(blocks.shape[-2:])}")
    x = _as_real_rows(blocks, pair)
    if isinstance(x, np.ndarray):
        return x @ pair.matrix
    return x @ x.new_tensor(pair.matrix)


def irreps_to_block(irreps, l1: int, l2: int, spinful: bool = False):
    """Inverse of :func:`block_to_irreps`: (..., dim) -> (..., rows, cols) (complex if spinful)."""
    pair = pair_irreps(l1, l2, spinful)
    if isinstance(irreps, np.ndarray):
        x = irreps @ pair.matrix.T
    else:
        x = irreps @ irreps.new_tensor(pair.matrix).T
    lead = x.shape[:-1]
    if spinful:
        n = x.shape[-1] // 2
        if isinstance(x, np.ndarray):
            x = x[..., :n] + 1j * x[..., n:]
        else:
            import torch

            x = torch.complex(x[..., :n], x[..., n:])
    return x.reshape(*lead, *pair.block_shape)


# ---------------------------------------------------------------------- padded slot layout of a basis
def shell_zetas(ls: Sequence[int]) -> list[int]:
    """Index of each shell among the element's shells of the same l (``[0,0,1,1,2] -> [0,1,0,1,0]``)."""
    seen: dict[int, int] = {}
    out = []
    for l in ls:
        out.append(seen.get(l, 0))
        seen[l] = seen.get(l, 0) + 1
    return out


class SlotLayout:
    """Fixed-width irreps layout of every shell pair a basis can produce (padding with masks).

    A shell is identified across elements by ``(l, zeta)``, ``zeta`` its index among the element's shells
    of the same ``l``. ``n_zeta[l]`` is the largest such count over the basis' elements. Every edge gets
    the same vector, one e3nn chunk ``mul x (L, p)`` per irrep type (sorted), so that equivariant
    linear maps stay small. Within a chunk the copies run over the shell-pair types ``(l1, l2)``
    (sorted), then the irreps ``k`` of :func:`pair_irreps` of that type, then the slots
    ``s = z1 * n_zeta[l2] + z2``. Slots absent for an edge's element pair stay zero.

    Attributes
    ----------
    groups : list of ``(l1, l2)`` present.
    irreps_string : the e3nn irreps of the whole vector.
    dim : its length.
    n_slots : number of (l1, z1, l2, z2) slots; ``slot_offset[(l1, l2)]`` the first slot of a group.
    """

    def __init__(self, n_zeta: dict[int, int], spinful: bool):
        self.n_zeta = {int(l): int(n) for l, n in sorted(n_zeta.items()) if n > 0}
        self.spinful = bool(spinful)
        self.groups = [(l1, l2) for l1 in self.n_zeta for l2 in self.n_zeta]
        # copies per irrep type
        copies: dict[tuple[int, int], int] = {}
        first_copy: dict[tuple[tuple[int, int], int], int] = {}
        for l1, l2 in self.groups:
            n = self.n_zeta[l1] * self.n_zeta[l2]
            for k, ir in enumerate(pair_irreps(l1, l2, self.spinful).irreps):
                first_copy[(l1, l2), k] = copies.get(ir, 0)
                copies[ir] = copies.get(ir, 0) + n
        types = sorted(copies, key=lambda ir: (ir[0], -ir[1]))  # 0e, 0o, 1e, 1o, ...
        start: dict[tuple[int, int], int] = {}
        offset = 0
        for ir in types:
            start[ir] = offset
            offset += copies[ir] * (2 * ir[0] + 1)
        self.dim = offset
        self.irreps_string = "+".join(f"{copies[ir]}x{ir[0]}{'e' if ir[1] == 1 else 'o'}" for ir in types)
        self.slot_offset: dict[tuple[int, int], int] = {}
        # per group: arrays over the pair's irreps vector: base column, 2L+1 and M
        self.columns: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        slot = 0
        for l1, l2 in self.groups:
            self.slot_offset[(l1, l2)] = slot
            slot += self.n_zeta[l1] * self.n_zeta[l2]
            base, width, m = [], [], []
            for k, ir in enumerate(pair_irreps(l1, l2, self.spinful).irreps):
                d = 2 * ir[0] + 1
                base.extend([start[ir] + first_copy[(l1, l2), k] * d] * d)
                width.extend([d] * d)
                m.extend(range(d))
            self.columns[(l1, l2)] = (np.array(base, np.int64), np.array(width, np.int64), np.array(m, np.int64))
        self.n_slots = slot

    @classmethod
    def from_basis(cls, basis, spinful: bool) -> "SlotLayout":
        n_zeta: dict[int, int] = {}
        for e in basis.elements:
            for l in set(e.ls):
                n_zeta[l] = max(n_zeta.get(l, 0), e.ls.count(l))
        return cls(n_zeta, spinful)

    def check_basis(self, basis) -> None:
        """Raise if an element of ``basis`` has a shell the layout has no slot for."""
        from .orbitals import BasisError

        for e in basis.elements:
            for l in set(e.ls):
                if e.ls.count(l) > self.n_zeta.get(l, 0):
                    raise BasisError(f"element {e.symbol} ({e.spec()}) has {e.ls.count(l)} shells with l={l}; "
                                     f"the model's layout has {self.n_zeta.get(l, 0)}")

    def slot_columns(self, group: tuple[int, int], z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
        """(P, pair dim) column of each irreps component of each instance (numpy or torch indices)."""
        base, width, m = self.columns[group]
        s = z1 * self.n_zeta[group[1]] + z2
        if isinstance(s, np.ndarray):
            return base[None] + s[:, None] * width[None] + m[None]
        t = s.new_tensor
        return t(base)[None] + s[:, None] * t(width)[None] + t(m)[None]
