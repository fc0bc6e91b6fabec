"""Training: the one loop every method shares, its typed settings, data handling and run metadata.

    from retain.methods import make_method
    from retain.training import TrainSettings, train

    result = train("google/flan-t5-small", "toy-ner", make_method("lora", {"r": 8}),
                   TrainSettings(max_steps=200), out_dir="runs/lora")
    lm = result.load()            # LoadedModel: base + adapter, or the fine-tuned model

The loop never imports `retain.methods`: a method is anything with the hooks of
`retain.training.hooks.TrainingMethod`, which `retain.methods.base.MethodConfig` implements.
"""

from retain.training.config import RunConfig, TrainSettings, make_settings
from retain.training.data import Sample
from retain.training.hooks import TrainContext, TrainingMethod
from retain.training.loop import TrainResult, load_trained, train

__all__ = ["RunConfig", "Sample", "TrainContext", "TrainResult", "TrainSettings", "TrainingMethod", "load_trained",
           "make_settings", "train"]
