import os

import pytest
import torch

os.environ.setdefault("NEXTHAM_E3NN_OPT", "0")  # fast model builds in tests (runtime paths are identical)


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
