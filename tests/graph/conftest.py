"""float64, one thread (shared fixture)."""

from nextham.testing.torch_fixtures import float64_single_thread  # noqa: F401
