"""The `nextham` command: typer app assembling the thin sub-commands.

Distributed training: ``torchrun --nproc-per-node N -m nextham.cli.main train CONFIG``.
"""

from __future__ import annotations

import typer

from . import convert, demo, evaluate, generate, physics, predict, train

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="nextham: deep-learning DFT Hamiltonians of crystals from zeroth-step Hamiltonians.")
for _module in (demo, physics, convert, generate, train, predict, evaluate):
    _module.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
