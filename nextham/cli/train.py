"""`nextham train CONFIG [key=value ...]`: train a model (single process or under torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .errors import clear_errors, register_user_error


def register(app: typer.Typer) -> None:
    for name in ("nextham.train.config:ConfigError", "nextham.data.access:DatasetError",
                 "nextham.checkpoint:CheckpointError", "nextham.train.loop:TrainingDiverged"):
        register_user_error(name)  # by name: their modules import torch, which most commands never need

    @app.command()
    @clear_errors
    def train(config: Path = typer.Argument(..., help="training config (YAML)"),
              overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. optim.lr=1e-3"),
              resume: str = typer.Option("auto", "--resume", help="auto (resume <out_dir>/last.pt if present), "
                                                                    "never, or a checkpoint path"),
              print_config: bool = typer.Option(False, "--print-config", help="print the resolved config and exit")) -> None:
        """Train on a dataset. Distributed: `torchrun --nproc-per-node N -m nextham.cli.main train CONFIG`.

        Writes <out_dir>/last.pt (resumable), best.pt, model.pt, metrics.csv, config.yaml. Rerunning the
        same command after an interruption resumes exactly where it stopped.
        """
        from ..train.config import TrainConfig
        from ..train.distributed import cleanup_distributed
        from ..train.loop import Trainer, TrainingInterrupted

        import yaml

        from ..train.config import ConfigError

        if config.is_dir():
            raise ConfigError(f"{config}: is a directory; give the config file (YAML)")
        try:
            cfg = TrainConfig.from_yaml(config, overrides or [])
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f":{where.line + 1}" if where is not None else ""
            raise ConfigError(f"{config}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{config}: not a text file (a YAML config is expected)") from None
        if cfg.run.device != "auto":
            from .options import check_device

            check_device(cfg.run.device)
        if print_config:
            typer.echo(cfg.to_yaml())
            return
        try:
            trainer = Trainer(cfg, resume=resume)
            metrics = trainer.fit()
        except RuntimeError as exc:  # load_state_dict on --resume: weights of another model size
            if "state_dict" not in str(exc):
                raise
            from ..checkpoint import CheckpointError

            raise CheckpointError(f"the checkpoint to resume does not fit the configured model (another model "
                                  f"size?): {str(exc).splitlines()[0][:160]}") from None
        except TrainingInterrupted as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(130) from None
        finally:
            cleanup_distributed()
        if metrics and trainer.dist.is_main:
            typer.echo(f"done: {Path(cfg.run.out_dir) / 'model.pt'}; last epoch: " +
                       ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
