"""Studies: a config of methods to compare, run and resumed as a whole, with their results and verdict.

`load_study_config(path)` reads and validates a study YAML; `run_study(config, out)` runs (or resumes)
it and returns the results document (`retain.study/1`, docs/results-schema.md).
"""

from retain.study.config import StudyConfig, load_study_config
from retain.study.run import run_study

__all__ = ["StudyConfig", "load_study_config", "run_study"]
