"""lm-eval comparison, the contenders: retain's engine calls, lm-eval's `simple_evaluate`, and what each computes.

- `retain_choice` / `retain_generate`: `retain.evaluation.engine.loglikelihood` / `generate` as the
  runner calls them (shots included), without the cache;
- `lmeval_run`: one `lm_eval.simple_evaluate` of a custom task on a pre-loaded `HFLM`, its scoring
  time measured by `ScoringTimer` (the time inside `HFLM.loglikelihood` / `generate_until`);
- `WorkCounter`: forward hooks counting calls and token rows of the model's stacks.

Used by `bench/peers/lmeval.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parents[1]
from bench.peers.lmeval_tasks import TASK_NAMES


class ScoringTimer:
    """Wraps an HFLM instance's request methods to time the scoring inside `simple_evaluate`.

    `around`, when set, is called as `around(thunk)` in place of `thunk()` (used to profile only the
    scoring part of a `simple_evaluate`).
    """

    def __init__(self, hflm):
        self.seconds = 0.0
        self.around: Callable[[Callable[[], Any]], Any] | None = None
        for name in ("loglikelihood", "generate_until"):
            setattr(hflm, name, self._timed(getattr(hflm, name)))

    def _timed(self, method):
        def call(requests, disable_tqdm: bool = False):
            def thunk():
                return method(requests, disable_tqdm=True)

            start = time.perf_counter()
            try:
                return self.around(thunk) if self.around else thunk()
            finally:
                self.seconds += time.perf_counter() - start
        return call


class WorkCounter:
    """Counts what a model computes: calls and token rows of its encoder (seq2seq) and decoder stacks.

    Forward hooks on the two stacks (negligible cost) record, per call, batch x length of the input:
    for the encoder the padded tokens (and the real ones, from the attention mask); for the decoder
    the rows x positions run (one position per step when generating with the KV cache); and the
    wall-clock time spent inside each stack.
    """

    def __init__(self, model):
        self.reset()
        self._started: dict[str, float] = {}
        stacks = [("decoder", model.get_decoder(), self._decoder)]
        if model.config.is_encoder_decoder:
            stacks.insert(0, ("encoder", model.get_encoder(), self._encoder))
        for part, stack, count in stacks:
            stack.register_forward_pre_hook(count, with_kwargs=True)
            stack.register_forward_pre_hook(self._start(part))
            stack.register_forward_hook(self._stop(part))

    def reset(self) -> None:
        self.counts = {"encoder_calls": 0, "encoder_tokens_padded": 0, "encoder_tokens_real": 0,
                       "decoder_calls": 0, "decoder_row_positions": 0}
        self.seconds = {"encoder": 0.0, "decoder": 0.0}

    def snapshot(self) -> dict:
        # Time in the decoder stack excludes the LM head and log-softmax (outside the stack).
        return {**self.counts, **{f"{k}_stack_s": round(v, 4) for k, v in self.seconds.items()}}

    def _start(self, part):
        def hook(module, args):
            self._started[part] = time.perf_counter()
        return hook

    def _stop(self, part):
        def hook(module, args, output):
            self.seconds[part] += time.perf_counter() - self._started.pop(part, time.perf_counter())
        return hook

    @staticmethod
    def _shape(args, kwargs):
        x = kwargs.get("input_ids", args[0] if args else None)
        if x is None:
            x = kwargs.get("inputs_embeds")
        return tuple(x.shape[:2]) if x is not None else (0, 0)

    def _encoder(self, module, args, kwargs):
        b, n = self._shape(args, kwargs)
        mask = kwargs.get("attention_mask")
        self.counts["encoder_calls"] += 1
        self.counts["encoder_tokens_padded"] += b * n
        self.counts["encoder_tokens_real"] += int(mask.sum()) if mask is not None else b * n

    def _decoder(self, module, args, kwargs):
        b, n = self._shape(args, kwargs)
        self.counts["decoder_calls"] += 1
        self.counts["decoder_row_positions"] += b * n


def _shots(ex) -> list[tuple[str, str]]:
    return [(s.prompt, s.target) for s in ex.shots]


def retain_choice(lm, examples, batch_size: int) -> dict:
    from retain.evaluation import engine

    start = time.perf_counter()
    requests = [(ex.prompt, choice) for ex in examples for choice in ex.choices]
    shots = [_shots(ex) for ex in examples for _ in ex.choices] if any(ex.shots for ex in examples) else None
    values = iter(engine.loglikelihood(lm, requests, batch_size=batch_size, shots=shots))
    logprobs = [[next(values) for _ in ex.choices] for ex in examples]
    predictions = [ex.choices[max(range(len(lp)), key=lp.__getitem__)] for ex, lp in zip(examples, logprobs)]
    return {"scoring_s": time.perf_counter() - start, "predictions": predictions, "logprobs": logprobs}


def retain_generate(lm, examples, max_new_tokens: int, batch_size: int) -> dict:
    from retain.evaluation import engine

    start = time.perf_counter()
    shots = [_shots(ex) for ex in examples] if any(ex.shots for ex in examples) else None
    predictions = engine.generate(lm, [ex.prompt for ex in examples], max_new_tokens, batch_size=batch_size,
                                  shots=shots)
    return {"scoring_s": time.perf_counter() - start, "predictions": predictions}


def lmeval_run(hflm, timer: ScoringTimer, task_manager, kind: str, limit: int) -> dict:
    """One `simple_evaluate` of one task; scoring time, total time, per-example outputs."""
    import lm_eval

    timer.seconds = 0.0
    start = time.perf_counter()
    out = lm_eval.simple_evaluate(model=hflm, tasks=[TASK_NAMES[kind]], task_manager=task_manager, limit=limit,
                                  log_samples=True, bootstrap_iters=0, use_cache=None, cache_requests=False)
    total = time.perf_counter() - start
    name = TASK_NAMES[kind]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    res = {"scoring_s": timer.seconds, "simple_evaluate_s": total, "metrics": out["results"][name],
           "contexts": [s["arguments"][0][0] for s in samples]}
    if kind == "choice":
        res["continuations"] = [[a[1] for a in s["arguments"]] for s in samples]
        res["logprobs"] = [[float(r[0][0]) for r in s["resps"]] for s in samples]
        res["acc"] = [float(s["acc"]) for s in samples]
    else:
        res["predictions"] = [s["filtered_resps"][0] for s in samples]
        res["raw_predictions"] = [s["resps"][0][0] for s in samples]
    return res
