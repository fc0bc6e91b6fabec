"""retain's benchmarks, run as modules from the repository root: `python -m bench.compare`, `python -m
bench.real_model.run`, ... (see bench/README.md). Each writes JSON with the machine it ran on."""
