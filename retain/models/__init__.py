"""Models: loading (model + tokenizer + optional adapter), fingerprints, and tiny models for tests."""

from retain.models.fingerprint import fingerprint_path, fingerprint_state  # noqa: F401
from retain.models.loading import LoadedModel, load_model, pick_device, pick_dtype  # noqa: F401
