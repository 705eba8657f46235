"""Orbital basis specifications: shells per element, offsets and counts.

Conventions (``docs/conventions.md``): per atom the shells come in the order of the
element's basis specification; within a shell the ``2l+1`` real spherical harmonics are ordered
``m = -l, ..., l`` (no Condon-Shortley phase: p = (y, z, x), d = (xy, yz, 3z^2-r^2, xz, x^2-y^2)).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

L_LETTERS = "spdfghi"


class BasisError(ValueError):
    """An orbital basis is malformed or does not match the data it describes."""


def check_element(symbol: str) -> str:
    """Return ``symbol`` if it is a chemical element, else raise a clear error."""
    if symbol not in atomic_numbers or symbol == "X":
        raise BasisError(f"unknown element {symbol!r}")
    return symbol


@dataclass(frozen=True)
class Shell:
    """One radial shell: angular momentum ``l`` and a free-form label (e.g. ``"2p"`` or ``"p1"``)."""

    l: int
    label: str = ""

    def __post_init__(self) -> None:
        if not 0 <= int(self.l) <= 6:
            raise BasisError(f"shell angular momentum l={self.l} outside 0..6")

    @property
    def size(self) -> int:
        """Number of orbitals ``2l+1`` (spinless)."""
        return 2 * self.l + 1


@dataclass(frozen=True)
class ElementBasis:
    """The ordered shells of one element."""

    symbol: str
    shells: tuple[Shell, ...]

    def __post_init__(self) -> None:
        check_element(self.symbol)
        if not self.shells:
            raise BasisError(f"element {self.symbol}: basis has no shells")

    @classmethod
    def from_string(cls, symbol: str, spec: str) -> "ElementBasis":
        """Parse an ABACUS/zeta-count style spec such as ``"2s2p1d"`` (shells s,s,p,p,d).

        Shells are ordered by l first (all s, then all p, ...), as ABACUS and OpenMX write them.
        """
        parts = re.findall(r"(\d+)([spdfghi])", spec)
        if not parts or "".join(n + c for n, c in parts) != spec.replace(" ", ""):
            raise BasisError(f"element {symbol}: cannot parse basis spec {spec!r} (expected e.g. '2s2p1d')")
        counts: dict[int, int] = {}
        for n, c in parts:
            counts[L_LETTERS.index(c)] = counts.get(L_LETTERS.index(c), 0) + int(n)
        shells = [Shell(l, f"{L_LETTERS[l]}{z}") for l in sorted(counts) for z in range(counts[l])]
        return cls(symbol, tuple(shells))

    @classmethod
    def from_ls(cls, symbol: str, ls: Iterable[int]) -> "ElementBasis":
        """Build from a sequence of shell angular momenta, in order."""
        seen: dict[int, int] = {}
        shells = []
        for l in ls:
            seen[l] = seen.get(l, 0) + 1
            shells.append(Shell(int(l), f"{L_LETTERS[l]}{seen[l] - 1}"))
        return cls(symbol, tuple(shells))

    @property
    def ls(self) -> tuple[int, ...]:
        return tuple(s.l for s in self.shells)

    @property
    def norb(self) -> int:
        """Number of spinless orbitals."""
        return sum(s.size for s in self.shells)

    @property
    def shell_offsets(self) -> np.ndarray:
        """Start of each shell within the atom's orbitals, shape ``(n_shells + 1,)``."""
        return np.concatenate([[0], np.cumsum([s.size for s in self.shells])]).astype(np.int64)

    @property
    def orbital_l(self) -> np.ndarray:
        """l of each orbital, shape ``(norb,)``."""
        return np.concatenate([np.full(s.size, s.l) for s in self.shells]).astype(np.int64)

    @property
    def orbital_m(self) -> np.ndarray:
        """m of each orbital (``-l..l`` per shell), shape ``(norb,)``."""
        return np.concatenate([np.arange(-s.l, s.l + 1) for s in self.shells]).astype(np.int64)

    def spec(self) -> str:
        """Compact spec such as ``"2s2p1d"`` when shells are sorted by l, else a list of ls."""
        ls = self.ls
        if list(ls) == sorted(ls):
            return "".join(f"{ls.count(l)}{L_LETTERS[l]}" for l in sorted(set(ls)))
        return ",".join(str(l) for l in ls)


@dataclass(frozen=True)
class Basis:
    """Orbital basis of a set of elements (immutable value type)."""

    elements: tuple[ElementBasis, ...]

    def __post_init__(self) -> None:
        symbols = [e.symbol for e in self.elements]
        if len(set(symbols)) != len(symbols):
            raise BasisError(f"duplicate element in basis: {symbols}")
        object.__setattr__(self, "elements", tuple(sorted(self.elements, key=lambda e: atomic_numbers[e.symbol])))

    @classmethod
    def from_specs(cls, specs: Mapping[str, str | Sequence[int]]) -> "Basis":
        """``{"Si": "2s2p1d", "O": [0, 0, 1, 1, 2]}`` -> Basis."""
        return cls(tuple(
            ElementBasis.from_string(s, v) if isinstance(v, str) else ElementBasis.from_ls(s, v)
            for s, v in specs.items()
        ))

    @cached_property
    def _by_symbol(self) -> dict[str, ElementBasis]:
        return {e.symbol: e for e in self.elements}

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(e.symbol for e in self.elements)

    def __getitem__(self, symbol: str) -> ElementBasis:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise BasisError(f"element {symbol!r} has no orbital basis (basis covers {list(self.symbols)})") from None

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def norb_per_atom(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Spinless orbital count of each atom, shape ``(n_atoms,)``."""
        return np.array([self[chemical_symbols[int(z)]].norb for z in numbers], dtype=np.int64)

    def atom_offsets(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Start of each atom's orbitals in the cell-wide order, shape ``(n_atoms + 1,)`` (spinless)."""
        return np.concatenate([[0], np.cumsum(self.norb_per_atom(numbers))]).astype(np.int64)

    def restrict(self, numbers: Sequence[int] | np.ndarray) -> "Basis":
        """The basis of only the elements present in ``numbers``."""
        present = {chemical_symbols[int(z)] for z in numbers}
        return Basis(tuple(self[s] for s in sorted(present)))

    def merged(self, other: "Basis") -> "Basis":
        """Union of two bases; an element in both must have the same shells."""
        out = dict(self._by_symbol)
        for e in other.elements:
            if e.symbol in out and out[e.symbol].ls != e.ls:
                raise BasisError(f"element {e.symbol}: inconsistent bases {out[e.symbol].spec()} vs {e.spec()}")
            out[e.symbol] = e
        return Basis(tuple(out.values()))

    def to_json(self) -> str:
        return json.dumps({e.symbol: [[s.l, s.label] for s in e.shells] for e in self.elements})

    @classmethod
    def from_json(cls, text: str) -> "Basis":
        data = json.loads(text)
        return cls(tuple(ElementBasis(sym, tuple(Shell(int(l), str(lab)) for l, lab in shells))
                         for sym, shells in data.items()))
