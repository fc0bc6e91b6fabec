"""The real-model study's configs (bench/real_model): the main study, its companion variants and the hub
version all validate, and they agree with each other where the scripts rely on it."""

from __future__ import annotations

from pathlib import Path

from bench.real_model.lr_sweep import DEFAULT_RATES
from bench.real_model.run import CONFIG, PROBE, VARIANTS, probe_length
from tests.conftest import DATA, needs_data


@needs_data
def test_the_main_study_and_its_variants_validate_and_share_the_evaluation(monkeypatch):
    from retain.study.config import load_study_config

    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA))
    main = load_study_config(CONFIG)
    assert {m.method for m in main.methods} == {"full", "lora", "multitask", "replay", "l2sp", "wise-ft"}
    assert main.eval.limit >= 150 and main.target.train_examples == 500
    assert probe_length(main) == next(p.max_new_tokens for p in main.protect if p.task == "instructions")
    assert any(p.task == f"instructions:{PROBE}" for p in main.protect)
    for name, overrides in VARIANTS.items():
        variant = load_study_config(CONFIG, overrides=overrides)
        # The same tasks and evaluation: the base (and any model already scored) comes from the cache.
        assert (variant.protect, variant.eval, variant.target, variant.dtype) == \
            (main.protect, main.eval, main.target, main.dtype), name
    rates = load_study_config(CONFIG, overrides=VARIANTS["rates"])
    swept = {f"{m}-lr{lr:g}" for m, lrs in DEFAULT_RATES.items() for lr in lrs}
    assert {m.run_name for m in rates.methods} <= swept  # lr_sweep.py's run folders are found by name
    for m in rates.methods:
        assert m.run_name.endswith(f"lr{m.settings.learning_rate or m.method_config.learning_rate():g}")


def test_the_hub_version_validates_without_the_internet():
    from retain.study.config import load_study_config

    hub = load_study_config(Path(CONFIG).with_name("study-hub.yaml"))
    main_lora = next(m for m in load_study_config(CONFIG, {"protect": hub.protect}).methods if m.method == "lora")
    assert next(m for m in hub.methods if m.method == "lora").train == main_lora.train
    assert all(":hf:" in t or t.startswith("instructions:") for t in [hub.target.task, *(p.task for p in hub.protect)])


@needs_data
def test_a_partial_rerun_keeps_the_named_runs_and_their_wise_ft_points(monkeypatch):
    import pytest

    from bench.real_model.run import only, parse_args
    from retain.study.config import load_study_config

    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA))
    main = load_study_config(CONFIG)
    assert only(main, None) is main
    part = only(main, "full, lora")
    assert [m.run_name for m in part.methods] == ["full", "lora", "wise-ft"]
    assert next(m for m in part.methods if m.method == "wise-ft").of == "full"
    assert [m.run_name for m in only(main, "lora").methods] == ["lora"]
    with pytest.raises(SystemExit, match="no run named 'ful'"):
        only(main, "ful")
    with pytest.raises(SystemExit):  # a partial study must not replace the published report
        parse_args(["--only", "full"])
    assert parse_args(["--only", "full", "--compare-to", "r.json"]).only == "full"


@needs_data
def test_a_rerun_can_leave_out_wise_ft_and_evaluate_in_another_precision(monkeypatch):
    import pytest

    from bench.real_model.run import adjust, parse_args, probe_matches
    from retain.study.config import load_study_config

    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA))
    main = load_study_config(CONFIG)
    assert adjust(main, parse_args([])) is main
    args = parse_args(["--only", "full", "--without-wise-ft", "--dtype", "float32", "--compare-to", "r.json"])
    rerun = adjust(main, args)
    assert [m.run_name for m in rerun.methods] == ["full"]
    assert (rerun.dtype, main.dtype) == ("float32", "bf16-autocast")
    for flag in (["--without-wise-ft"], ["--dtype", "float32"]):  # either changes the study: never published
        with pytest.raises(SystemExit):
            parse_args(flag)

    made = {"limit": 150, "max_new_tokens": 64, "model": main.model, "dtype": "bf16-autocast", "batch_size": 16}
    assert probe_matches(made, main)
    assert not probe_matches(made, rerun)  # a float32 rerun makes its own probe: the base must match itself
    assert not probe_matches({**made, "batch_size": 8}, main)  # other batches, other bf16 answers
    older = {k: v for k, v in made.items() if k not in ("dtype", "batch_size")}
    assert probe_matches({**older, "model_info": {"precision": "bf16-autocast"}}, main)
