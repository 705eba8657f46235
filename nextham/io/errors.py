"""The one error type that every reader and writer of ``nextham.io`` raises for bad input."""

from __future__ import annotations

import os


class FormatError(ValueError):
    """A file does not have the format a reader expects.

    The message always names the file and, where it is known, the 1-based line number, e.g.
    ``data-HR-sparse_SPIN0.csr:12: expected 43 column indices, found 42``.

    Attributes
    ----------
    path : the offending file (or folder), as given.
    line : 1-based line number or None.
    reason : the message without the location prefix.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.reason = reason
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {reason}")


def wrap_errors(path, fn, *args, **kwargs):
    """Call ``fn``; turn stray low-level errors into a :class:`FormatError` naming ``path``."""
    from ..basis.orbitals import BasisError
    from ..blocks.record import RecordError

    try:
        return fn(*args, **kwargs)
    except FormatError:
        raise
    except (BasisError, RecordError) as exc:
        raise FormatError(path, str(exc)) from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # unreadable files, h5py open errors
        raise FormatError(path, f"cannot read: {exc}") from None
