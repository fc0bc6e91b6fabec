"""Studies: a config of methods to compare, run and resumed as a whole, with their results and verdict.

`retain.study.config.load_study_config(path)` reads and validates a study YAML;
`retain.study.run.run_study(config, out)` runs (or resumes) it and returns the results document
(`retain.study/1`, docs/results-schema.md). Both are also `retain.load_study_config` and
`retain.run_study`.

This package imports nothing itself, so that validating a config (`retain study --check`, the
command line's usage errors) does not load torch and transformers.
"""
