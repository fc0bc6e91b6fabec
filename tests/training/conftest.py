"""Fixtures for the training tests (shared with tests/methods through `tests.training.helpers`)."""

from tests.training.helpers import _one_thread_and_private_cache, model_dirs  # noqa: F401
