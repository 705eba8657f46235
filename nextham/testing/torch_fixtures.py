"""Pytest fixtures for exact model tests: float64 and one torch thread, restored afterwards.

Import the fixture into a ``conftest.py`` (``from nextham.testing.torch_fixtures import
float64_single_thread``). Importing this module also turns e3nn's einsum path optimisation off for fast model
builds (``NEXTHAM_E3NN_OPT=0``) unless the variable is set: builds take about half the time, steps about 1.4x
longer, outputs agree to rounding (measured: relative 1.4e-15 on tiny models, float64).
"""

import os

import pytest
import torch

os.environ.setdefault("NEXTHAM_E3NN_OPT", "0")


@pytest.fixture(autouse=True)
def float64_single_thread():
    """float64 for exact checks; one thread (these tensors are small, and 2-thread OpenMP is slower on a
    shared 2-core machine)."""
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)
