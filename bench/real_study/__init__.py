"""The real-data study on a base model built here (`python -m bench.real_study.run`)."""
