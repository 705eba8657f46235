"""The loss settings, in one place: the ``loss`` section of the training configuration.

Reference weights (NextHAM): ``lambda_R = 0.99955``, ``lambda_P = 2e-4``, ``lambda_Q = 1e-4``,
``lambda_PQ = 1.5e-4``; trace term 0.2 of the objective, adaptively rescaled (docs/training.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..typed_config import StrictModel


class ReciprocalConfig(StrictModel):
    """k-space P/Q/PQ loss on the DFT eigenvectors."""

    enabled: bool = True
    weight_p: float = Field(2e-4, ge=0)
    weight_q: float = Field(1e-4, ge=0)
    weight_pq: float = Field(1.5e-4, ge=0)
    n_k: int = Field(1, ge=1, description="random k-points per structure and step")
    k_mesh: tuple[int, int, int] = (4, 4, 4)
    window_eV: float = Field(10.0, description="P = bands below E_F + window")
    overlap_threshold: float = Field(1e-6, gt=0)

    @property
    def weights(self) -> tuple[float, float, float]:
        """``(lambda_P, lambda_Q, lambda_PQ)``."""
        return self.weight_p, self.weight_q, self.weight_pq


class TraceConfig(StrictModel):
    """Trace loss on ``tr(dH dH^dagger)`` per shell pair."""

    enabled: bool = True
    weight: float = Field(0.2, ge=0, lt=1, description="fraction of the objective, adaptively rescaled")


class LossConfig(StrictModel):
    """The whole objective: real-space gauge loss, k-space loss and trace loss."""

    kind: Literal["l1", "mse"] = "l1"
    shift: Literal["auto", "lsq", "median", "none"] = "auto"
    weight_real: float = Field(0.99955, ge=0)
    reciprocal: ReciprocalConfig = ReciprocalConfig()
    trace: TraceConfig = TraceConfig()
