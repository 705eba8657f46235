"""One clear error line for user errors; internal errors keep their traceback.

User errors are :class:`nextham.errors.UserError` and the error types of the readers and writers
registered here (``FormatError``, ``RecordError``, ``BasisError``, ``StoreError``, ...) plus the
operating system's file errors (missing file, a directory given as a file, no permission). They are
printed as ``error: <message>`` on stderr with exit status 2. Anything else (a ``ValueError`` or
``KeyError`` from deep inside nextham, ...) is a bug: it propagates with its traceback (exit status
1). ``nextham --debug ...`` (or ``NEXTHAM_DEBUG=1``) shows the traceback of user errors too.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

import typer

from ..basis.orbitals import BasisError
from ..blocks.record import RecordError
from ..errors import UserError

F = TypeVar("F", bound=Callable)

USER_ERRORS: tuple[type[BaseException], ...] = (UserError, RecordError, BasisError, FileNotFoundError,
                                                IsADirectoryError, NotADirectoryError, PermissionError)


LAZY_USER_ERRORS: tuple[tuple[str, str], ...] = ()
"""User error types named ``(module, class)`` whose modules are not imported for the registration (the
training errors live in modules that import torch, ~2 s): an exception can only be an instance of
one if its module has been imported, so :func:`is_user_error` looks only in ``sys.modules``."""


def register_user_error(exc_type: type[BaseException] | str) -> None:
    """Add an exception type that the CLI reports as one line (e.g. a reader's FormatError), given as
    the type or as ``"module:ClassName"`` (resolved only if that module is ever imported)."""
    global USER_ERRORS, LAZY_USER_ERRORS
    if isinstance(exc_type, str):
        module, _, name = exc_type.partition(":")
        if (module, name) not in LAZY_USER_ERRORS:
            LAZY_USER_ERRORS = LAZY_USER_ERRORS + ((module, name),)
    elif exc_type not in USER_ERRORS:
        USER_ERRORS = USER_ERRORS + (exc_type,)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the registered user errors (eagerly or lazily registered)."""
    if isinstance(exc, USER_ERRORS):
        return True
    for module, name in LAZY_USER_ERRORS:
        loaded = sys.modules.get(module)
        exc_type = getattr(loaded, name, None) if loaded is not None else None
        if isinstance(exc_type, type) and isinstance(exc, exc_type):
            return True
    return False


_registered = False


def _register_library_errors() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from ..data.store import StoreError
    from ..engines.base import EngineError
    from ..io.errors import FormatError

    # EngineError covers EngineInputError (bad structure), EngineUnavailable and a failed calculation
    for exc in (FormatError, StoreError, EngineError):
        register_user_error(exc)
    for name in ("nextham.checkpoint:CheckpointError", "nextham.train.config:ConfigError",
                 "nextham.data.access:DatasetError"):
        register_user_error(name)


_debug = False


def set_debug(enabled: bool) -> None:
    """``nextham --debug``: user errors propagate with their traceback (set per invocation)."""
    global _debug
    _debug = bool(enabled)


def debug_enabled() -> bool:
    return _debug or os.environ.get("NEXTHAM_DEBUG", "") not in ("", "0")


def user_message(exc: BaseException) -> str:
    """The one-line text of a user error (OS errors get their file name in front)."""
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror.lower()}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())  # one line


def clear_errors(fn: F) -> F:
    """Decorator: report user errors as ``error: <message>`` on stderr and exit with status 2;
    let every other exception (a bug) through with its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _register_library_errors()
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if not is_user_error(exc) or debug_enabled():
                raise
            typer.echo(f"error: {user_message(exc)}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]

