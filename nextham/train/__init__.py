"""Training: typed config, the loop (Adam, warm-up + cosine, exact resume, DDP), checkpoints, datasets."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .data import open_dataset, load_or_create_splits
from .loop import Trainer, TrainingDiverged, TrainingInterrupted, lr_at, train

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "ConfigError", "TrainConfig", "open_dataset",
           "load_or_create_splits", "Trainer", "TrainingDiverged", "TrainingInterrupted", "lr_at", "train"]
