"""Typed, versioned training configuration (YAML), with dotted ``key=value`` overrides.

Unknown keys are rejected everywhere (a typo is an error, never a silently ignored setting). The
``version`` field lets a later nextham migrate or refuse old files explicitly.

Example::

    version: 1
    data: {path: data/demo.lmdb}
    model: {preset: small}
    optim: {epochs: 50, lr: 5.0e-4}
    run: {out_dir: runs/demo}

Overrides: ``optim.lr=1e-3 loss.reciprocal.enabled=false model.overrides.num_blocks=2``; values are
parsed as YAML scalars/lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..losses.config import LossConfig, ReciprocalConfig, TraceConfig  # noqa: F401 (the ``loss`` section)
from ..models import model_kind
from ..typed_config import StrictModel

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


_Strict = StrictModel


class SplitConfig(_Strict):
    train: float = Field(0.8, ge=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sum(self):
        if abs(self.train + self.val + self.test - 1.0) > 1e-9:
            raise ValueError(f"split fractions must sum to 1 (got {self.train + self.val + self.test:g})")
        return self


class DataConfig(_Strict):
    path: str = Field(..., description="dataset file (nextham store) or folder of record files")
    split: SplitConfig = SplitConfig()
    cutoff: float = Field(8.0, gt=0, description="graph cutoff (Å)")
    limit: int | None = Field(None, ge=1, description="use only the first N structures (debugging)")
    cache_mb: float = Field(4096.0, ge=0, description="memory (MiB) for the built graphs of the records, each "
                            "decoded once per run; 0 rebuilds every step")
    exclude_elements: list[str] = Field(default_factory=list, description="structures containing any of these "
                                        "elements are left out of training and validation (zero-shot tests); "
                                        "the model's basis still covers them")


class ModelSection(_Strict):
    kind: str = Field("nextham", description="a registered model kind (nextham.models)")
    preset: str = "small"
    overrides: dict[str, Any] = Field(default_factory=dict, description="passed to ModelConfig.preset")
    statistics_init: bool = Field(True, description="fit the model's output scale and shift per species pair, "
                                  "shell pair and irreps channel on the training split before training "
                                  "(models with fit_output_statistics; docs/model.md)")
    init_from: str | None = Field(None, description="fine-tune: start from this model's weights (a registered "
                                  "name such as universal-v1, or a .pt file); its architecture, basis and "
                                  "output statistics are kept (preset/overrides/statistics_init are then unused)")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        model_kind(v)
        return v


class OptimConfig(_Strict):
    lr: float = Field(5e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(5.0, ge=0, description="linear warm-up length (epochs, may be fractional)")
    epochs: int = Field(100, ge=1, description="training length; with max_minutes, an upper bound")
    max_minutes: float | None = Field(None, gt=0, description="time budget (minutes of training, validation "
                                      "included): the run ends cleanly when it is spent, and the cosine decay "
                                      "runs over the budget instead of the epochs")
    batch_size: int = Field(1, ge=1, description="global batch (structures per step, over all processes)")
    clip_grad_norm: float | None = Field(None, gt=0)


class RunConfig(_Strict):
    out_dir: str = "runs/nextham"
    seed: int = 0
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda, cuda:N")
    dtype: Literal["float32", "float64"] = "float32"
    val_every: int = Field(1, ge=1, description="validate every N epochs")
    checkpoint_every: int = Field(1, ge=1, description="save last.pt every N epochs")
    progress: bool = True
    tensorboard: bool = True
    num_threads: int | None = Field(None, ge=1)


class TrainConfig(_Strict):
    version: int = CONFIG_VERSION
    data: DataConfig
    model: ModelSection = ModelSection()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != CONFIG_VERSION:
            raise ValueError(f"config version {v} is not supported by this nextham (expects {CONFIG_VERSION})")
        return v

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> "TrainConfig":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = apply_overrides(data, overrides)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: " + _format_errors(exc)) from None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: Sequence[str]) -> "TrainConfig":
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (values parsed as YAML)."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-3)")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        value = yaml.safe_load(raw) if raw.strip() else None
        node = data
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
            node = node[p]
        node[parts[-1]] = value
    return data


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {loc!r}")
        else:
            lines.append(f"{loc}: {err['msg']}")
    return "invalid training config: " + "; ".join(lines)
