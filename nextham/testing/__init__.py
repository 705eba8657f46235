"""Reusable physics checks for tests: fixtures location, Hermiticity, equivariance, gauge, round trips.

Test support only: production code (everything else under ``nextham``) does not import this package.
"""
from .equivariance import assert_model_equivariant

__all__ = ["assert_model_equivariant"]
