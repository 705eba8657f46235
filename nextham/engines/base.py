"""Engine interface: an embedded electronic-structure code that turns a structure into a record.

An engine computes, for one ``ase.Atoms``, the real-space overlap ``S(R)``, the zeroth-step
Hamiltonian ``H0(R)`` (superposed neutral-atom densities, no SCF) and, unless ``h0_only``, the
self-consistent ``H(R)`` and Fermi level, all in nextham conventions (eV, Å, orbital order and
spin-major spin blocks of docs/conventions.md), as a :class:`~nextham.blocks.record.StructureRecord`.

Callers use only this interface (``get_engine(name, **settings)``, ``engine.compute(...)``), so a
second engine (PySCF, ABACUS through its binary) plugs in by subclassing :class:`Engine` and
registering itself in :data:`ENGINES`.
"""

from __future__ import annotations

import abc
from typing import Any, Callable

from ase import Atoms

from ..blocks.record import StructureRecord


class EngineError(RuntimeError):
    """The engine failed on a structure (SCF not converged, internal error, ...)."""


class EngineInputError(EngineError, ValueError):
    """The structure cannot be computed as given (element without setup, overlapping atoms, ...)."""


class EngineUnavailable(EngineError, ImportError):
    """The engine's code is not installed, or the installed version is not the pinned one."""


class Engine(abc.ABC):
    """An embedded DFT engine.

    Subclasses set :attr:`name`, implement :meth:`compute`, :meth:`settings` and :meth:`versions`.
    """

    name: str = "engine"
    prediction_settings: dict[str, Any] = {}
    """Settings that ``nextham predict`` overrides in the training data's: checks that verify stored
    data but do not change S or H0 (e.g. the GPAW engine's eigenvalue check)."""

    @abc.abstractmethod
    def compute(self, atoms: Atoms, soc: bool = False, h0_only: bool = False) -> StructureRecord:
        """S, H0 and (unless ``h0_only``) H of ``atoms``; spinful H0/H when ``soc``.

        The record's metadata hold at least ``engine``, ``settings``, ``versions``, ``timings``
        (``t_H0``, ``t_SCF`` in s) and the engine's own eigenvalues at check k-points.
        """

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that, with the versions, determine the result."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the engine's code and data (pseudopotentials, basis sets)."""

    def check_input(self, atoms: Atoms) -> None:
        """Raise :class:`EngineInputError` if ``atoms`` cannot be computed (default: no check)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()!r})"


ENGINES: dict[str, Callable[..., Engine]] = {}


def register_engine(name: str) -> Callable[[type[Engine]], type[Engine]]:
    """Class decorator adding an engine to :data:`ENGINES` under ``name``."""
    def deco(cls: type[Engine]) -> type[Engine]:
        ENGINES[name] = cls
        return cls
    return deco


def get_engine(name: str = "gpaw", **settings: Any) -> Engine:
    """Instantiate an engine by name (importing its module on demand)."""
    if name not in ENGINES and name.isidentifier():
        import importlib
        try:
            importlib.import_module(f"{__package__}.{name}")  # engine modules register themselves
        except ModuleNotFoundError:
            pass
    if name not in ENGINES:
        raise EngineUnavailable(f"unknown engine {name!r} (available: {sorted(ENGINES) or ['gpaw']})")
    return ENGINES[name](**settings)
