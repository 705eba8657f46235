"""Pure operations on block records: Hermitian symmetrisation, H0 + dH, masks, gauge MAE.

All functions return new arrays/records; inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from .record import RecordError, StructureRecord, conjugate_transpose_blocks


def hermitian_symmetrize(record: StructureRecord, name: str) -> StructureRecord:
    """``B_ij(R) <- (B_ij(R) + B_ji(-R)^dagger) / 2`` for matrix ``name`` (exactly Hermitian after)."""
    data = record.blocks[name]
    return record.with_blocks(**{name: 0.5 * (data + conjugate_transpose_blocks(record, name))})


def add_correction(record: StructureRecord, delta: np.ndarray, base: str = "H0", out: str = "H") -> StructureRecord:
    """``out = base + delta`` (e.g. ``H = H0 + dH``); ``delta`` packed like ``base``."""
    base_data = record.blocks[base]
    if delta.shape != base_data.shape:
        raise RecordError(f"correction has {delta.shape} values, {base} has {base_data.shape}")
    return record.with_blocks(**{out: base_data + delta})


def element_mask(record: StructureRecord, name: str, edge_mask: np.ndarray) -> np.ndarray:
    """Expand a per-edge boolean mask (E,) to the packed elements of ``name``."""
    sizes = np.diff(record.block_offsets(name))
    return np.repeat(np.asarray(edge_mask, dtype=bool), sizes)


def distance_mask(record: StructureRecord, r_min: float, r_max: float, include_onsite: bool = False) -> np.ndarray:
    """(E,) mask of edges with ``r_min < |r_ij| <= r_max`` (Å); on-site blocks only when asked."""
    r = record.edge_lengths
    m = (r > r_min) & (r <= r_max)
    return m | record.onsite_mask if include_onsite else m & ~record.onsite_mask


def spinful_overlap(record: StructureRecord) -> np.ndarray:
    """S blocks expanded to the spin-major layout of spinful H: ``I_2 ⊗ S_ij`` per block, packed like
    ``H`` (complex128); the spinless S itself for a spinless record. Vectorized over all elements."""
    if not record.spinful:
        return record.blocks["S"]
    edge, p, q = record.packed_coords("H")
    ni = record.atom_norb[record.edge_index[edge, 0]]
    nj = record.atom_norb[record.edge_index[edge, 1]]
    src = record.block_offsets("S")[edge] + (p % ni) * nj + q % nj
    return np.where(p // ni == q // nj, record.blocks["S"][src], 0.0).astype(np.complex128)


def optimal_shift(pred: np.ndarray, ref: np.ndarray, overlap: np.ndarray) -> float:
    """``mu* = Re sum (pred - ref) conj(S) / sum |S|^2`` (eV): the rigid shift that best aligns
    ``pred`` with ``ref + mu S`` in the least-squares sense (CONVENTIONS.md)."""
    denom = float(np.sum(np.abs(overlap) ** 2))
    if denom == 0.0:
        return 0.0
    return float(np.real(np.sum((pred - ref) * np.conj(overlap))) / denom)


def gauge_mae(record_pred: StructureRecord, record_ref: StructureRecord, name_pred: str = "H",
              name_ref: str = "H", mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """Gauge MAE between two Hamiltonians on the same edge list.

    Returns ``(gauge_mae_eV, plain_mae_eV, mu_eV)``: MAE of ``pred - (ref + mu S)`` with the optimal
    ``mu``, the plain MAE, and ``mu``. Complex entries count ``|z|``. ``mask`` selects packed elements.
    """
    if not np.array_equal(record_pred.edge_index, record_ref.edge_index) or \
            not np.array_equal(record_pred.edge_R, record_ref.edge_R):
        raise RecordError("gauge MAE needs both records on the same edge list")
    pred, ref = record_pred.blocks[name_pred], record_ref.blocks[name_ref]
    S = spinful_overlap(record_ref)
    if mask is not None:
        pred, ref, S = pred[mask], ref[mask], S[mask]
    mu = optimal_shift(pred, ref, S)
    return float(np.mean(np.abs(pred - ref - mu * S))), float(np.mean(np.abs(pred - ref))), mu
