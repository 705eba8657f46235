"""Training: typed config, the loop (Adam, warm-up + cosine, exact resume, DDP)."""
from .config import ConfigError, TrainConfig
from .loop import Trainer, TrainingDiverged, TrainingInterrupted, lr_at, train

__all__ = ["ConfigError", "TrainConfig", "Trainer", "TrainingDiverged", "TrainingInterrupted", "lr_at", "train"]
