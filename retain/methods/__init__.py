"""Training methods: one small module per method, all trained by the one loop in `retain.training`.

Importing this package registers every built-in method (each registers itself where it is defined).
`make_method(name, options)` builds a validated method config; any PEFT method works by name.
"""

from retain.methods.base import (  # noqa: F401
    MethodConfig,
    TrainContext,
    make_method,
    method_names,
    register_fallback,
    register_method,
)

# Modules that register methods where they are defined.
from retain.methods import adapters, full, lora  # noqa: E402,F401
from retain.methods import ewc, l2sp, multitask, replay, wise_ft  # noqa: E402,F401
from retain.methods import checkpoints  # noqa: E402,F401  (a derived kind)
from retain.methods.derived import DerivedRun, derived_kind, derived_kinds  # noqa: E402,F401
from retain.methods.wise_ft import ModelRef, save_wise_ft, wise_ft_model  # noqa: E402,F401
