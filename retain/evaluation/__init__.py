"""Evaluation: metrics computed per example, bootstrap confidence intervals and paired comparisons.

`metrics` turns predictions and references into per-example statistics (`Scores`); `bootstrap`
turns those into 95% confidence intervals and base-versus-fine-tuned deltas on the same examples.
Import the submodules directly; this package imports nothing heavy.
"""
