"""Analytic two-centre (Slater-Koster) tight-binding models: built-in examples and physics tests."""
from .slater_koster import TwoCentreModel, angular_momentum_matrices, two_centre_block
from .examples import silicon_vogl

__all__ = ["TwoCentreModel", "angular_momentum_matrices", "silicon_vogl", "two_centre_block"]
