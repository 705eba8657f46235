"""Orbital bases, per-code orbital conventions and rotation matrices of real harmonics."""
from .orbitals import Basis, BasisError, ElementBasis, Shell

__all__ = ["Basis", "BasisError", "ElementBasis", "Shell"]
