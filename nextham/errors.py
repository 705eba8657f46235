"""The user-error family: exceptions that mean "the input is wrong", not "nextham has a bug".

The command line reports a :class:`UserError` (and the registered reader/writer errors of
:mod:`nextham.cli.errors`) as one line ``error: <message>`` with exit status 2. Every other
exception is an internal error and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input given by the user: the message names the input and the problem."""


class UsageError(UserError, ValueError):
    """A command-line option or argument with an invalid value (checked before any work starts)."""


class InputFileError(UserError, ValueError):
    """An input file (structure, record, dataset, checkpoint) is missing, unreadable or invalid."""
