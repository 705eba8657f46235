"""Suite-wide hygiene: tests that change torch's global default dtype do not leak it into others."""

import pytest


@pytest.fixture(autouse=True)
def _restore_torch_default_dtype():
    import torch

    old = torch.get_default_dtype()
    yield
    torch.set_default_dtype(old)
