"""Checkpoints as derived runs: the model kept part-way through a training run (`checkpoints:` on a
study entry, `keep_at` in the training settings), evaluated like any run. Drawn on its parent's path
from the base to the end of training, it shows where forgetting sets in; weighed by the
recommendation like any run, it is early stopping chosen by the forgetting budget.

A checkpoint of a fraction of training is named once its parent has trained and the fraction became a
step (`NAME+step-N`); until then the plan shows it as `NAME+at-FRACTION`.
"""

from __future__ import annotations

from pathlib import Path

from retain.methods.derived import DerivedRun, register_derived

KIND = "checkpoint"


class Checkpoints:
    kind = KIND
    after_all = False

    def planned(self, entries, parent_entry, parent: dict | None) -> list[DerivedRun]:
        name = parent_entry.run_name
        if parent is not None:  # trained: each kept step is known
            return [DerivedRun(f"{name}+step-{k['step']}", KIND, parent_entry.method, name, key={"step": k["step"]},
                               detail=f"step {k['step']} of {parent['steps']} (asked: {k['point']:g})")
                    for k in parent.get("kept", [])]
        return [DerivedRun(f"{name}+step-{int(x)}" if x >= 1 else f"{name}+at-{x:g}", KIND, parent_entry.method, name,
                           detail=f"at step {int(x)}" if x >= 1 else f"at {x:g} of training (step known after training)",
                           known=False)
                for x in getattr(parent_entry, "checkpoints", None) or []]

    def _kept(self, parent: dict, run: DerivedRun) -> dict:
        return next(k for k in parent["kept"] if k["step"] == run.key["step"])

    def model(self, parent: dict, run: DerivedRun, device: str, dtype: str):
        from retain.models.loading import LazyModel
        from retain.training.loop import load_trained

        trained = load_trained(parent["train_dir"])
        folder = str(Path(parent["train_dir"]) / self._kept(parent, run)["path"])
        if trained.adapter_path:
            return LazyModel(trained.model_path, adapter=folder, device=device, dtype=dtype)
        return LazyModel(folder, device=device, dtype=dtype)

    def fields(self, parent: dict, run: DerivedRun) -> dict:
        return {"method": parent["method"], "options": parent["options"], "alpha": None, "step": run.key["step"],
                "of_steps": parent["steps"], "point": self._kept(parent, run)["point"]}

    def cost(self, parent: dict, run: DerivedRun) -> dict:
        # Its training is the first `step` of the parent's steps: that share of the parent's cost.
        pc = parent["cost"]
        share = run.key["step"] / parent["steps"]
        return {**pc, "train_seconds": round(pc["train_seconds"] * share, 3) if pc.get("train_seconds") else None}


register_derived(Checkpoints())
