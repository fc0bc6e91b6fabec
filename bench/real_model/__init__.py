"""The real-model study: SmolLM2-135M-Instruct fine-tuned on DialogSum (`python -m bench.real_model.run`)."""
