"""One clear error line instead of a traceback for the user-facing failures of nextham."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

import typer

from ..basis.orbitals import BasisError
from ..blocks.record import RecordError

F = TypeVar("F", bound=Callable)

USER_ERRORS: tuple[type[BaseException], ...] = (RecordError, BasisError, FileNotFoundError, ValueError, OSError)


def register_user_error(exc_type: type[BaseException]) -> None:
    """Add an exception type that the CLI reports as one line (e.g. a reader's FormatError)."""
    global USER_ERRORS
    if exc_type not in USER_ERRORS:
        USER_ERRORS = USER_ERRORS + (exc_type,)


def clear_errors(fn: F) -> F:
    """Decorator: report user errors as ``error: <message>`` on stderr and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:  # noqa: B902
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
