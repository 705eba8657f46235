"""The NextHAM network: E(3)-equivariant Transformer with TraceGrad on zeroth-step Hamiltonian features."""
from .config import PRESETS, ModelConfig
from .model import ModelOutput, NextHAMModel, default_device, predict_record

__all__ = ["PRESETS", "ModelConfig", "ModelOutput", "NextHAMModel", "default_device", "predict_record"]
