"""The `nextham` command: typer app assembling the thin sub-commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import convert, generate, physics

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="nextham: deep-learning DFT Hamiltonians of crystals from zeroth-step Hamiltonians.")
physics.register(app)
convert.register(app)
generate.register(app)


@app.command()
def demo(out: Path = typer.Option(Path("demo_output"), "--out", help="output folder"),
         builtin: bool = typer.Option(False, "--builtin", help="only the built-in analytic example")) -> None:
    """The main job: the built-in Si example (bands + DOS)."""
    from .demo_builtin import run_builtin_example

    result = run_builtin_example(out / "builtin")
    typer.echo(json.dumps(result, indent=2))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
