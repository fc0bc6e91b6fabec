"""Training: the one loop every method shares, its typed settings, data handling and run metadata.

    from retain.methods import make_method
    from retain.training.config import TrainSettings
    from retain.training.loop import train

    result = train("google/flan-t5-small", "toy-ner", make_method("lora", {"r": 8}),
                   TrainSettings(max_steps=200), out_dir="runs/lora")
    lm = result.load()            # LoadedModel: base + adapter, or the fine-tuned model

(`retain.train` and `retain.TrainSettings` are the same functions, for notebooks.)

This package imports nothing itself, so that reading the typed settings (`retain.training.config`,
which the command line does to build its options) does not load transformers' Trainer. The loop never
imports `retain.methods`: a method is anything with the hooks of `retain.training.hooks.TrainingMethod`,
which `retain.methods.base.MethodConfig` implements.
"""
