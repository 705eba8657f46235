"""Training losses: gauge-aligned real-space loss, k-space P/Q/PQ loss, trace loss, the objective."""
from .layout import PackedLayout, bloch_h, bloch_s, overlap_like_h, packed_layout
from .config import LossConfig, ReciprocalConfig, TraceConfig
from .objective import LossResult, Objective
from .gauge import gauge_mae, gauge_shift, weighted_median
from .real_space import optimal_mu, real_space_loss
from .reciprocal import dft_eigensystems, generalized_eigh, reciprocal_loss, sample_kpoints, shifted_grid
from .trace import combine_with_trace, trace_loss

__all__ = ["PackedLayout", "bloch_h", "bloch_s", "overlap_like_h", "packed_layout", "LossResult", "Objective",
           "LossConfig", "ReciprocalConfig", "TraceConfig", "gauge_mae", "gauge_shift", "optimal_mu", "real_space_loss", "weighted_median", "dft_eigensystems",
           "generalized_eigh", "reciprocal_loss", "sample_kpoints", "shifted_grid", "combine_with_trace",
           "trace_loss"]
