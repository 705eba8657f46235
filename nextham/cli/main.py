"""The `nextham` command: typer app assembling the thin sub-commands.

Distributed training: ``torchrun --nproc-per-node N -m nextham.cli.main train CONFIG``.
``nextham --debug COMMAND ...`` shows the traceback of user errors too (internal errors always
show theirs).
"""

from __future__ import annotations

import typer

from . import convert, demo, evaluate, generate, physics, predict, train
from .errors import set_debug

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="nextham: deep-learning DFT Hamiltonians of crystals from zeroth-step Hamiltonians.")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show tracebacks of user errors too")) -> None:
    set_debug(debug)


for _module in (demo, physics, convert, generate, train, predict, evaluate):
    _module.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
