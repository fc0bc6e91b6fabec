"""Models: loading (model + tokenizer + optional adapter), fingerprints, and tiny models for tests.

The names below are imported on first use (PEP 562), so that light modules such as
`retain.models.sources` can be imported (e.g. by the command line, for its help text) without torch.
"""

_EXPORTS = {"fingerprint_path": "retain.models.fingerprint", "fingerprint_state": "retain.models.fingerprint",
            "LoadedModel": "retain.models.loading", "load_model": "retain.models.loading",
            "pick_device": "retain.models.loading", "pick_dtype": "retain.models.loading"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'retain.models' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
