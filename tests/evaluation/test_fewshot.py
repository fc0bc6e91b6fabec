"""Few-shot evaluation: prompt layout (chat turns or prefixed shots), choice scoring of the final answer
only, cache keys (zero-shot keys unchanged), and left truncation of prompts longer than the context."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import pytest
import torch

from retain.evaluation import engine
from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, cache_key, evaluate, evaluate_task, task_key
from retain.models.device import FP32
from retain.models.formatting import format_prompt
from retain.models.loading import load_model
from retain.tasks import get_task
from retain.tasks.user import load_user_task

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
SHOTS = [("Review: good.\nIs this review positive or negative?", "positive"),
         ("Review: bad.\nIs this review positive or negative?", "negative")]

# EvalCache key of toy-sentiment (test, first 5) for a float32 CPU model with this fingerprint, as computed
# before few-shot prompts existed: zero-shot keys must not change, or every existing cache goes stale.
ZERO_SHOT_KEY = "7f95b7d6a4f118ba8f63d69d0bdaf147feeee5941be0254b1b25cfc9c1ea3d70"
FAKE_LM = SimpleNamespace(fingerprint="0123456789abcdef", dtype=torch.float32, device=torch.device("cpu"),
                          precision=FP32)


@pytest.fixture()
def llama(tiny_llama_dir):
    """A fresh tiny Llama (tests change its tokenizer and config)."""
    return load_model(str(tiny_llama_dir), device="cpu")


@pytest.fixture()
def chat_llama(llama):
    llama.tokenizer.chat_template = CHAT_TEMPLATE
    return llama


# --- prompt layout -----------------------------------------------------------------------------------

def test_zero_shots_give_todays_prompts(llama):
    prompt = SHOTS[0][0]
    assert format_prompt(llama.tokenizer, prompt, False) == prompt
    assert format_prompt(llama.tokenizer, prompt, True, shots=()) == prompt
    llama.tokenizer.chat_template = CHAT_TEMPLATE
    assert format_prompt(llama.tokenizer, prompt, False, shots=()) == f"<|user|>{prompt}\n<|assistant|>"


def test_chat_shots_are_user_assistant_turns(chat_llama):
    text = format_prompt(chat_llama.tokenizer, "Review: fine.", False, "auto", SHOTS)
    assert text == (f"<|user|>{SHOTS[0][0]}\n<|assistant|>positive\n"
                    f"<|user|>{SHOTS[1][0]}\n<|assistant|>negative\n"
                    "<|user|>Review: fine.\n<|assistant|>")
    # chat=off falls back to prefixed shots
    assert format_prompt(chat_llama.tokenizer, "Review: fine.", False, "off", SHOTS).startswith(SHOTS[0][0] + " positive")


def test_plain_shots_are_prefixed_with_blank_lines(llama):
    text = format_prompt(llama.tokenizer, "Review: fine.", False, "auto", SHOTS + [("Ends in space: ", "x")])
    assert text == (f"{SHOTS[0][0]} positive\n\n{SHOTS[1][0]} negative\n\nEnds in space: x\n\nReview: fine.")


# --- choice scoring ----------------------------------------------------------------------------------

def _by_hand(lm, context: str, continuation: str) -> float:
    """log p(continuation | context) from one forward pass over the whole text."""
    tok = lm.tokenizer
    ctx = tok(context)["input_ids"]
    full = tok(context + " " + continuation)["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(input_ids=torch.tensor([full])).logits[0].float(), -1)
    return sum(float(logprobs[t - 1, full[t]]) for t in range(len(ctx), len(full)))


@pytest.mark.parametrize("chat", [False, True])
def test_choice_with_shots_scores_only_the_final_answer(llama, chat, cache_dir):
    if chat:
        llama.tokenizer.chat_template = CHAT_TEMPLATE
    task = get_task("toy-sentiment")
    result = evaluate_task(llama, task, EvalSettings(limit=3, fewshot=2, n_boot=10), cache=None)
    zero = evaluate_task(llama, task, EvalSettings(limit=3, n_boot=10), cache=None)
    assert result.fewshot == {"k": 2, "seed": 0, "split": "train"}
    for ex, values, zero_values in zip(result.examples, result.choice_logprobs, zero.choice_logprobs):
        assert len(ex.shots) == 2
        if chat:
            turns = [{"role": r, "content": c} for s in ex.shots for r, c in (("user", s.prompt), ("assistant", s.target))]
            context = llama.tokenizer.apply_chat_template(turns + [{"role": "user", "content": ex.prompt}],
                                                          tokenize=False, add_generation_prompt=True)
            assert context.count("<|assistant|>") == 3
        else:
            context = "\n\n".join([f"{s.prompt} {s.target}" for s in ex.shots] + [ex.prompt])
        for choice, value, zero_value in zip(ex.choices, values, zero_values):
            assert value == pytest.approx(_by_hand(llama, context, choice), abs=1e-4)
            assert value != pytest.approx(zero_value, abs=1e-4)  # the shots really were in the context


# --- cache keys and results --------------------------------------------------------------------------

def test_zero_shot_cache_key_is_unchanged():
    task = get_task("toy-sentiment")
    assert cache_key(FAKE_LM, task, EvalSettings(limit=5)) == ZERO_SHOT_KEY
    assert cache_key(FAKE_LM, task, EvalSettings(limit=5, fewshot=0, fewshot_seed=7)) == ZERO_SHOT_KEY
    assert task_key(task, EvalSettings(limit=5)) == task.identity("test", 5)


def test_cache_key_covers_k_and_seed():
    task = get_task("toy-sentiment")
    keys = {cache_key(FAKE_LM, task, EvalSettings(limit=5, fewshot=k, fewshot_seed=s))
            for k, s in ((0, 0), (3, 0), (3, 1), (2, 0))}
    assert len(keys) == 4
    assert task_key(task, EvalSettings(limit=5, fewshot=3))["fewshot"]["k"] == 3


def test_fewshot_results_are_recorded_and_not_served_zero_shot(llama, cache_dir):
    task, cache = get_task("toy-ner"), EvalCache(cache_dir / "eval")
    zero = evaluate_task(llama, task, EvalSettings(limit=3, n_boot=10), cache)
    few = evaluate_task(llama, task, EvalSettings(limit=3, fewshot=3, n_boot=10), cache)
    again = evaluate_task(llama, task, EvalSettings(limit=3, fewshot=3, n_boot=10), cache)
    assert not zero.from_cache and not few.from_cache and again.from_cache
    doc = evaluate(llama, [task], EvalSettings(limit=3, fewshot=3, fewshot_seed=4, n_boot=10), cache)
    entry = doc["tasks"]["toy-ner"]
    assert doc["settings"]["fewshot"] == 3 and doc["settings"]["fewshot_seed"] == 4
    assert entry["fewshot"] == {"k": 3, "seed": 4, "split": "train"} and entry["truncated"] == 0
    train_ids = {ex.id for ex in task.examples("train")}
    assert all(len(e["shots"]) == 3 and set(e["shots"]) <= train_ids for e in entry["examples"])
    assert "shots" not in zero.to_json()["examples"][0] and zero.to_json()["fewshot"]["k"] == 0


# --- left truncation ---------------------------------------------------------------------------------

LONG = "Summarize the dialogue: " + " ".join(f"#Person{i % 2 + 1}#: Anna lives in Paris." for i in range(12))


def _shrink(lm, positions: int):
    lm.model.config.max_position_embeddings = positions
    return lm


def _kept(lm, ids: list[int], keep: int) -> list[int]:
    bos = lm.tokenizer.bos_token_id
    return [bos] + ids[len(ids) - keep + 1:] if ids[0] == bos else ids[len(ids) - keep:]


def test_generate_truncates_from_the_left_and_reports_it(llama):
    from retain.evaluation.greedy import greedy_decode

    lm, tok = _shrink(llama, 32), llama.tokenizer
    full = tok(LONG)["input_ids"]
    assert len(full) > 32
    truncated: list[int] = []
    out = engine.generate(lm, ["hi", LONG], max_new_tokens=6, batch_size=2, truncated=truncated)
    assert truncated == [1]
    kept = _kept(lm, full, 32 - 6)
    assert kept[-10:] == full[-10:]  # the end of the prompt survives
    ids = torch.tensor([kept])
    expected = tok.decode(greedy_decode(lm, ids, torch.ones_like(ids), 6)[0], skip_special_tokens=True).strip()
    assert out[1] == expected
    assert out[0] == engine.generate(lm, ["hi"], max_new_tokens=6)[0]


def test_loglikelihood_truncates_from_the_left_and_reports_it(llama):
    lm, tok = _shrink(llama, 24), llama.tokenizer
    truncated: list[int] = []
    values = engine.loglikelihood(lm, [("hi", "positive"), (LONG, "positive")], truncated=truncated)
    assert truncated == [1]
    full = tok(LONG + " positive")["input_ids"]
    n_cont = len(full) - len(tok(LONG)["input_ids"])
    kept = _kept(lm, full, 24)
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(input_ids=torch.tensor([kept])).logits[0].float(), -1)
    expected = sum(float(logprobs[t - 1, kept[t]]) for t in range(len(kept) - n_cont, len(kept)))
    assert values[1] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("kind", ["generate", "choice"])
def test_task_results_count_truncated_prompts(llama, tmp_path, kind):
    lines = [{"id": "short", "text": "hi", "answer": "positive"},
             {"id": "long1", "text": LONG, "answer": "negative"},
             {"id": "long2", "text": LONG + " Bye.", "answer": "positive"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    choices = "choices: [positive, negative]\n" if kind == "choice" else ""
    (tmp_path / "t.yaml").write_text(textwrap.dedent(f"""
        name: long-{kind}
        kind: {kind}
        data: test.jsonl
        prompt: "{{text}}"
        target: answer
        max_new_tokens: 4
        """) + choices)
    task = load_user_task(tmp_path / "t.yaml")
    result = evaluate_task(_shrink(llama, 28), task, EvalSettings(n_boot=10), cache=None)
    assert result.to_json()["truncated"] == 2
    assert result.outputs()["truncated"] == 2


def test_no_room_for_the_prompt_is_one_line(llama):
    from retain.errors import UserError

    with pytest.raises(UserError, match="max_new_tokens 40") as e:
        engine.generate(_shrink(llama, 32), ["hi"], max_new_tokens=40)
    assert "\n" not in str(e.value)
