"""Two processes (torchrun, gloo on CPU) train and evaluate as one process does.

Training: 2 processes x batch B against 1 process x batch 2B on the tiny Llama: `train` under
torchrun, killed (-9, both processes) after its step-2 checkpoint, resumed by `accelerate launch -m
retain train` (the same command a user runs, no config of its own). The two
runs see the same examples at every optimizer step (the length-grouped order is drawn for the whole
step, `RetainTrainer._get_train_sampler`) and minimise the same loss: transformers sums the label
tokens of the step over both processes, each process divides its summed token losses by that global
count and DDP averages the gradients. What differs is the order of float additions only: each
process packs and reduces its own two examples, then gloo adds the two gradients (and the loss
sums); one process packs four examples into other rows and sums them in one matmul. Measured here
(fp32): training losses and gradient norms agree to 1.5e-7 relative, validation losses and learning
rates exactly, the weights (|w| <= 1) to 6e-8 absolute; the test allows 1e-5 relative for losses
and norms and 1e-6 absolute for weights. (The tiny Llama has no dropout: with dropout, each process
draws its own masks and the curves agree only in distribution; see docs/scale-out.md.)

The output folders hold the same files with the same content apart from timings and what must
differ: `settings.batch_size` in config.yaml (2 vs 4: the user's micro-batch per process), the
launch record, the weight fingerprints (float rounding) and padding (each process packs its own
rows). The one-process run is killed (an exception) after the same checkpoint and resumed in-process,
so that both record the same resume and count the same steps' tokens.

Evaluation: `torchrun -m retain eval` on two processes writes the same results and the same cache
entries, byte for byte, as one process: each process runs whole batches of the single-process order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, evaluate
from retain.methods import make_method
from retain.models import load_model
from retain.tasks import get_task
from retain.training.loop import train
from tests.training.helpers import KillAt, fast, logged

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

ROOT = Path(__file__).resolve().parents[2]
B = 2  # micro-batch per process
RUN = dict(max_steps=4, train_examples=16, eval_examples=4, save_steps=2, logging_steps=1, warmup=0.0,
           keep_at=[0.5], progress=False)
FLAGS = ["--max-steps", "4", "--batch-size", str(B), "--train-examples", "16", "--eval-examples", "4",
         "--save-steps", "2", "--logging-steps", "1", "--warmup", "0", "--keep-at", "0.5", "--no-progress"]
TASKS = ["toy-ner", "toy-sentiment"]  # greedy generation and choice log-likelihoods
EVAL = dict(limit=10, batch_size=3)

# Run by torchrun: `retain train` as a library call, every process killed (-9) once the step-2
# checkpoint is complete on all of them.
KILLED = """
import os, signal, sys
import torch.distributed as dist
from transformers import TrainerCallback
from retain.methods import make_method
from retain.training.config import TrainSettings
from retain.training.loop import train

class Kill9(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:
            dist.barrier()
            os.kill(os.getpid(), signal.SIGKILL)

settings = TrainSettings(**{**%r, "batch_size": %d})
train(sys.argv[1], "toy-ner", make_method("full"), settings, sys.argv[2], callbacks=[Kill9()])
"""


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RETAIN_CPU_BF16": "0",
            "RETAIN_CACHE_DIR": str(tmp_path / "retain-cache"), "TOKENIZERS_PARALLELISM": "false"}


def _torchrun(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(cmd, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)


def _accelerate(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    # `--multi_gpu` is accelerate's DDP launcher (torchrun underneath); on a machine without GPUs the
    # processes train on the CPU with gloo. (`--cpu` alone would start one process.)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *map(str, args)]
    return subprocess.run(cmd, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tiny_llama_dir, tmp_path_factory):
    """(2-process run killed at step 2 and resumed, its `retain train` output, 1-process run killed
    and resumed likewise)."""
    tmp = tmp_path_factory.mktemp("distributed")
    two = tmp / "two"
    script = tmp / "killed.py"
    script.write_text(KILLED % (RUN, B))
    killed = _torchrun(tmp, script, tiny_llama_dir, two)
    assert killed.returncode != 0 and (two / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file(), \
        killed.stderr[-3000:]
    assert not (two / "metadata.json").exists()
    resumed = _accelerate(tmp, "-m", "retain", "train", "-m", tiny_llama_dir, "-t", "toy-ner", "--out", two, *FLAGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RETAIN_CACHE_DIR", str(tmp / "retain-cache"))
            # killed at the same step and resumed, so that both runs count the tokens of steps 3-4
            args = (str(tiny_llama_dir), "toy-ner", make_method("full"), fast(**RUN, batch_size=2 * B), tmp / "one")
            with pytest.raises(RuntimeError, match="simulated kill"):
                train(*args, callbacks=[KillAt(2)])
            one = train(*args)
    finally:
        torch.set_num_threads(threads)
    return two, resumed, one.out_dir


def test_two_processes_train_as_one_with_twice_the_batch(runs):
    two, _, one = runs
    for key in ("loss", "grad_norm", "learning_rate", "eval_loss"):
        a, b = logged(two, key), logged(one, key)
        assert a.keys() == b.keys() and a, key
        assert a == pytest.approx(b, rel=1e-5, abs=1e-12), key
    from safetensors.torch import load_file

    for name in ("model.safetensors", "steps/step-2/model.safetensors"):
        w2, w1 = load_file(two / name), load_file(one / name)
        assert w2.keys() == w1.keys()
        for k in w1:
            torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-6)


def test_the_output_folders_match_apart_from_timings(runs):
    two, _, one = runs

    def files(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and "tensorboard" not in p.parts)

    assert files(two) == files(one)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
                 "steps/step-2/config.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    if (one / "tensorboard").is_dir():  # tensorboard installed: the main process's events, one file per launch
        assert len(list((two / "tensorboard").iterdir())) == 2
    c2, c1 = (two / "config.yaml").read_text(), (one / "config.yaml").read_text()
    assert c2.replace(f"batch_size: {B}\n", f"batch_size: {2 * B}\n") == c1

    m2 = json.loads((two / "metadata.json").read_text().replace(str(two), str(one)))  # paths: its own folder
    m1 = json.loads((one / "metadata.json").read_text())
    assert m2["launch"] == {"world_size": 2, "distributed_type": "MULTI_CPU", "backend": "gloo"}
    assert m1["launch"] == {"world_size": 1, "distributed_type": "NO", "backend": None}
    assert m2["effective_batch_size"] == m1["effective_batch_size"] == 2 * B
    assert m2["real_tokens"] == m1["real_tokens"]  # both processes' tokens counted (steps 3-4)
    assert m2["resumed_from_step"] == m1["resumed_from_step"] == 2
    for key in ("train_loss", "eval_loss"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-5)
    # git_commit: a commit may land in the checkout between the two runs
    differ = {"config", "launch", "fingerprint", "padding_fraction", "train_loss", "eval_loss", "git_commit",
              "train_seconds", "tokens_per_second", "wall_seconds", "peak_memory", "machine", "finished_at"}
    assert {k: v for k, v in m2.items() if k not in differ} == {k: v for k, v in m1.items() if k not in differ}

    log2, log1 = ([{k: v for k, v in json.loads(line).items() if not _timing(k)} for line in
                   (d / "train_log.jsonl").read_text().splitlines()] for d in (two, one))
    assert [sorted(r) for r in log2] == [sorted(r) for r in log1]


def _timing(key: str) -> bool:
    return key == "time" or key.endswith(("runtime", "per_second", "_flos"))


def test_only_the_main_process_prints(runs):
    _, resumed, _ = runs
    assert resumed.stdout.count("done: 4 steps") == 1, resumed.stdout
    assert resumed.stderr.count("training ") == 1, resumed.stderr[-3000:]


def test_two_processes_evaluate_as_one(runs, tmp_path, monkeypatch):
    two, _, _ = runs
    args = ["--limit", EVAL["limit"], "--batch-size", EVAL["batch_size"]]
    tasks = [a for t in TASKS for a in ("-t", t)]
    done = _torchrun(tmp_path, "-m", "retain", "eval", "-m", two, *tasks, *args, "--cache-dir", tmp_path / "c2",
                     "--out", tmp_path / "two.json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1, done.stdout

    monkeypatch.setenv("RETAIN_CPU_BF16", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        doc = evaluate(load_model(str(two)), [get_task(t) for t in TASKS], EvalSettings(**EVAL),
                       EvalCache(tmp_path / "c1"))
    finally:
        torch.set_num_threads(threads)
    got = json.loads((tmp_path / "two.json").read_text())
    for name in TASKS:
        a, b = got["tasks"][name], doc["tasks"][name]
        a.pop("seconds"), b.pop("seconds")
        assert a == json.loads(json.dumps(b)), name
    entries = {p.relative_to(tmp_path / "c1"): p.read_bytes() for p in (tmp_path / "c1").rglob("*.json")}
    assert len(entries) == len(TASKS)
    assert {p.relative_to(tmp_path / "c2"): p.read_bytes() for p in (tmp_path / "c2").rglob("*.json")} == entries


def test_commands_other_than_train_and_eval_refuse_a_launch(monkeypatch, capsys):
    from tests.cli_helpers import run_cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, out, err = run_cli(["tasks"], capsys)
    assert code == 2 and err.count("\n") == 1 and "only train and eval run under torchrun" in err, err
    monkeypatch.setenv("RANK", "1")  # the other processes leave the saying to the main one
    assert run_cli(["tasks"], capsys) == (2, "", "")
    # ... unless the processes had joined: an error then may be this process's own (out of memory)
    monkeypatch.setattr("retain.cli.joined", lambda: True)
    code, out, err = run_cli(["tasks"], capsys)
    assert (code, out) == (2, "") and err.startswith("rank 1: error: retain tasks runs as one process"), err


def test_a_checkpoint_resumes_only_with_the_processes_that_wrote_it(tmp_path):
    from retain.errors import UserError
    from retain.training.config import RunConfig
    from retain.training.run_folder import prepare_folder

    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    for name in ("trainer_state.json", "model.safetensors", "rng_state_0.pth", "rng_state_1.pth"):
        (ckpt / name).write_text("{}")
    config = RunConfig(model="m", target="toy-ner", method={"name": "full"}, settings=fast())
    with pytest.raises(UserError, match="written by 2 processes and this launch has 1: resume with 2"):
        prepare_folder(tmp_path / "run", config, resume=True)
    for name in ("rng_state_0.pth", "rng_state_1.pth"):
        (ckpt / name).unlink()
    (ckpt / "rng_state.pth").write_text("{}")
    assert prepare_folder(tmp_path / "run", config, resume=True) == ckpt
