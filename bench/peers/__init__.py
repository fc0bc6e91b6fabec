"""Sections of `bench/compare.py`: retain against a peer tool, one module per comparison.

Each module exposes `add_args(parser)` (its own `--SECTION-...` flags) and `run(args, log) -> dict`
(a JSON-able result) and can be run alone as a script.
"""
