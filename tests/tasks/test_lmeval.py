"""`lm-eval:TASK` tasks on the tiny Llama, checked against lm-eval's own `simple_evaluate` on the same model.

The tasks are local YAMLs over a local JSONL file (tests/tasks/lmeval_fixture.py): one multiple-choice
and one generate_until task. The generation task's answers are set to the model's own greedy outputs
for two documents, so that exact match is neither all 0 nor all 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from retain.errors import UserError
from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, cache_key, evaluate_task
from retain.tasks import get_task
from tests.tasks.lmeval_fixture import write_tasks

pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")

MATCHED = (0, 3)  # documents whose generation answer is the model's own output
# lm-eval batches and pads requests its own way. Where the CPU's float32 kernels depend on the batch
# shape (seen on an AMD EPYC without AVX-512: -12.637537002 against -12.637537956), log-probs then
# agree to about 1e-7 relative, not bit for bit; a different computation would differ far more.
REL = 1e-5


def _logprobs_agree(got, samples) -> bool:
    want = [[r[0] for r in samples[i]["filtered_resps"]] for i in sorted(samples)]
    return len(got) == len(want) and all(g == pytest.approx(w, rel=REL) for g, w in zip(got, want))


def _simple(lm, folder, names, k=None):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4)
    return simple_evaluate(model=harness, tasks=list(names), num_fewshot=k,  # lm-eval's default seeds
                           task_manager=TaskManager(include_path=str(folder), include_defaults=False),
                           log_samples=True, bootstrap_iters=0)


@pytest.fixture(scope="module")
def lm(tiny_llama_dir):
    from retain.models.loading import load_model

    return load_model(str(tiny_llama_dir), device="cpu")


@pytest.fixture(scope="module")
def harness(lm, tmp_path_factory):
    """(task folder, lm-eval's own results on it)."""
    root = tmp_path_factory.mktemp("lmeval")
    probe = _simple(lm, write_tasks(root / "probe"), ["tiny_gen"])
    said = {s["doc_id"]: s["filtered_resps"][0] for s in probe["samples"]["tiny_gen"]}
    folder = write_tasks(root / "tasks", answers={i: said[i] for i in MATCHED})
    return folder, _simple(lm, folder, ["tiny_mc", "tiny_gen", "tiny_bleu", "tiny_rolling"])


@pytest.mark.parametrize("name,metrics", [("tiny_mc", ("acc", "acc_norm")), ("tiny_gen", ("exact_match",))])
def test_per_example_scores_equal_lm_evals_samples(lm, harness, name, metrics):
    folder, ref = harness
    task = get_task(f"lm-eval:{name}", [folder])
    result = evaluate_task(lm, task, EvalSettings(n_boot=200))
    samples = {s["doc_id"]: s for s in ref["samples"][name]}
    assert [ex.id for ex in result.examples] == [str(i) for i in sorted(samples)]
    for m in metrics:
        assert result.scores.per_example[m].tolist() == [float(samples[i][m]) for i in sorted(samples)]
        assert result.scores.value(m) == pytest.approx(ref["results"][name][f"{m},none"], abs=1e-12)
        lo, hi = result.metrics[m]["ci95"]
        assert lo <= result.metrics[m]["value"] <= hi
    if name == "tiny_mc":
        assert _logprobs_agree(result.choice_logprobs, samples)
    else:
        assert result.predictions == [samples[i]["filtered_resps"][0] for i in sorted(samples)]
        assert result.scores.value("exact_match") == pytest.approx(len(MATCHED) / len(samples))


def test_corpus_level_bleu_is_lm_evals_own_aggregation_on_every_resample(lm, harness):
    from retain.evaluation.bootstrap import paired_bootstrap
    from retain.evaluation.runner import result_from_outputs

    folder, ref = harness
    task = get_task("lm-eval:tiny_bleu", [folder])
    settings = EvalSettings(n_boot=50)
    result = evaluate_task(lm, task, settings)
    assert set(result.scores.corpus) == {"bleu", "ter"} and result.scores.primary == "bleu"
    for m in ("bleu", "ter"):
        assert result.scores.value(m) == pytest.approx(ref["results"]["tiny_bleu"][f"{m},none"], rel=1e-9)
    assert 0 < result.scores.value("bleu") < 100  # two of six answers are the model's own
    lo, hi = result.metrics["bleu"]["ci95"]
    assert lo <= hi and lo < result.scores.value("bleu")
    # rebuilt from stored outputs (a study's result.json, the cache): the same scores
    again = result_from_outputs(task, result.examples, json.loads(json.dumps(result.outputs())), settings)
    assert again.metrics == result.metrics
    assert paired_bootstrap(result.scores, again.scores, "bleu", n_boot=50)["delta"] == 0
    from retain.evaluation.metrics import higher_is_better

    assert higher_is_better("lm-eval", "ter") is False


def test_rolling_perplexities_are_lm_evals_and_lower_is_better(lm, harness):
    from retain.evaluation.metrics import higher_is_better

    folder, ref = harness
    result = evaluate_task(lm, get_task("lm-eval:tiny_rolling", [folder]), EvalSettings(n_boot=50))
    assert result.scores.primary == "word_perplexity"
    for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert result.scores.value(m) == pytest.approx(ref["results"]["tiny_rolling"][f"{m},none"], rel=REL)
        assert higher_is_better("lm-eval", m) is False
    samples = sorted(ref["samples"]["tiny_rolling"], key=lambda s: s["doc_id"])
    stats = result.scores.stats["word_perplexity"].tolist()
    assert len(stats) == len(samples)
    assert all(got == pytest.approx(list(s["word_perplexity"]), rel=REL) for got, s in zip(stats, samples))


def test_a_group_is_flattened_into_its_tasks_documents(lm, harness):
    folder, _ = harness
    ref = _simple(lm, folder, ["tiny_group"])
    task = get_task("lm-eval:tiny_group", [folder])
    result = evaluate_task(lm, task, EvalSettings(n_boot=50))
    n = len(ref["samples"]["tiny_mc"])
    assert [ex.id for ex in result.examples] == [f"tiny_mc/{i}" for i in range(n)] + [f"tiny_mc2/{i}" for i in range(n)]
    want = [float(s["acc"]) for leaf in ("tiny_mc", "tiny_mc2")
            for s in sorted(ref["samples"][leaf], key=lambda s: s["doc_id"])]
    assert result.scores.per_example["acc"].tolist() == want
    assert result.scores.value("acc") == pytest.approx(ref["results"]["tiny_group"]["acc,none"], abs=1e-12)
    part = evaluate_task(lm, task, EvalSettings(n_boot=50, limit=n + 2))  # all of tiny_mc, two of tiny_mc2
    assert part.scores.ids[-2:] == ["tiny_mc2/0", "tiny_mc2/1"]
    assert part.scores.per_example["acc"].tolist() == want[:n + 2]
    with pytest.raises(UserError, match="mixes request kinds or metrics"):
        get_task("lm-eval:tiny_mixed", [folder])


def test_few_shot_equals_lm_eval_with_the_same_shots(lm, harness):
    folder, _ = harness
    ref = _simple(lm, folder, ["tiny_mc"], k=2)
    task = get_task("lm-eval:tiny_mc@2", [folder])
    assert task.fewshot == 2
    result = evaluate_task(lm, task, EvalSettings(n_boot=50))
    samples = {s["doc_id"]: s for s in ref["samples"]["tiny_mc"]}
    assert result.fewshot["k"] == 2
    assert _logprobs_agree(result.choice_logprobs, samples)


def test_cache_is_keyed_on_retains_fingerprint(lm, harness, tmp_path):
    folder, _ = harness
    task = get_task("lm-eval:tiny_mc", [folder])
    cache = EvalCache(tmp_path)
    settings = EvalSettings(n_boot=50, limit=3)
    first = evaluate_task(lm, task, settings, cache)
    again = evaluate_task(lm, task, settings, cache)
    assert not first.from_cache and again.from_cache
    assert again.scores.stats["acc"].tolist() == first.scores.stats["acc"].tolist()
    assert again.choice_logprobs == first.choice_logprobs
    other = replace(lm, fingerprint="another-model")
    assert cache_key(other, task, settings) != cache_key(lm, task, settings)
    assert cache_key(lm, get_task("lm-eval:tiny_mc@1", [folder]), settings) != cache_key(lm, task, settings)


def test_the_documents_are_the_examples(harness):
    folder, _ = harness
    task = get_task("lm-eval:tiny_mc", [folder])
    ex = task.examples("test")[1]
    assert (ex.id, ex.prompt, ex.choices, ex.label, ex.target) == ("1", "Q: Fire is\nA:", ("cold", "hot", "wet"), 1, "hot")
    assert [e.id for e in task.examples("test", 2)] == ["0", "1"]
    with pytest.raises(UserError, match="no 'train' split"):
        task.examples("train")


def test_missing_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    with pytest.raises(UserError, match=r"pip install 'retain\[lm-eval\]'"):
        get_task("lm-eval:hellaswag")


def test_bad_spec_and_missing_include_folder(tmp_path):
    with pytest.raises(UserError, match="lm-eval:TASK@SHOTS"):
        get_task("lm-eval:tiny mc")
    with pytest.raises(UserError, match="include folder not found"):
        get_task("lm-eval:tiny_mc", [tmp_path / "nowhere"])


def test_retain_eval_console_script_matches_lm_eval(harness, tiny_llama_dir, tmp_path):
    from tests.cli.test_console_script import one_error_line, retain

    folder, ref = harness
    out = tmp_path / "eval.json"
    res = retain("eval", "--model", tiny_llama_dir, "--task", "lm-eval:tiny_mc", "--task", "lm-eval:tiny_gen",
                 "--lm-eval-include", folder, "--out", out, "--no-cache", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    for name, metric in (("tiny_mc", "acc"), ("tiny_gen", "exact_match")):
        got = doc["tasks"][f"lm-eval:{name}"]
        assert got["kind"] == "lm-eval" and got["primary"] == metric
        assert got["metrics"][metric]["value"] == pytest.approx(ref["results"][name][f"{metric},none"], abs=1e-12)
        samples = {str(s["doc_id"]): float(s[metric]) for s in ref["samples"][name]}
        assert {e["id"]: e["scores"][metric] for e in got["examples"]} == samples
    bad = retain("eval", "--model", tiny_llama_dir, "--task", "lm-eval:no_such_task", "--lm-eval-include", folder,
                 "--out", tmp_path / "bad.json")
    assert bad.returncode == 2
    assert "unknown lm-eval task 'no_such_task'" in one_error_line(bad)
    stub = tmp_path / "stub" / "lm_eval"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no lm-eval here')\n")
    missing = retain("eval", "--model", tiny_llama_dir, "--task", "lm-eval:tiny_mc", "--out", tmp_path / "m.json",
                     env_extra={"PYTHONPATH": str(stub.parent)})
    assert missing.returncode == 2
    assert "retain[lm-eval]" in one_error_line(missing)


def test_a_seq2seq_model_equals_lm_eval_too(tiny_t5_dir, harness):
    from retain.models.loading import load_model

    folder, _ = harness
    t5 = load_model(str(tiny_t5_dir), device="cpu")
    ref = _simple(t5, folder, ["tiny_mc"])
    result = evaluate_task(t5, get_task("lm-eval:tiny_mc", [folder]), EvalSettings(n_boot=50))
    samples = {s["doc_id"]: s for s in ref["samples"]["tiny_mc"]}
    # equal up to float noise: the encoder batches differ (retain's batch size 16, the reference's 4)
    for got, i in zip(result.choice_logprobs, sorted(samples)):
        assert got == pytest.approx([r[0] for r in samples[i]["filtered_resps"]], rel=1e-5)
    assert result.scores.per_example["acc"].tolist() == [float(samples[i]["acc"]) for i in sorted(samples)]
