"""Fixtures for the method tests (the same as tests/training uses)."""

from tests.training.helpers import _one_thread_and_private_cache, model_dirs  # noqa: F401
