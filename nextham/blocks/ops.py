"""Pure operations on block records: Hermitian symmetrisation, H0 + dH, masks.

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
