"""What the published study scripts (bench/real_study, bench/real_model) share: publishing a study's
report without weights, and checking a rerun against the committed results within noise."""

from __future__ import annotations

import shutil
from pathlib import Path

PUBLISHED_SUFFIXES = (".md", ".png", ".svg", ".json")


def agreement(old: dict, new: dict) -> list[dict]:
    """Per run and task: committed and rerun change against the base, and whether they agree within noise.

    Two noisy estimates of one change agree when they differ by at most the root sum of squares of
    their 95% CI half-widths (the CI of a difference of two independent estimates).
    """
    rows = []
    old_runs = {r["name"]: r for r in old["runs"] if r.get("status") == "done"}
    for run in new["runs"]:
        if run.get("status") != "done" or run["name"] not in old_runs:
            continue
        for task, c in run["change"].items():
            o = old_runs[run["name"]]["change"].get(task)
            if o is None:
                continue
            half = lambda ch: (ch["ci95"][1] - ch["ci95"][0]) / 2  # noqa: E731
            tolerance = (half(o) ** 2 + half(c) ** 2) ** 0.5 + 1e-9
            rows.append({"run": run["name"], "task": task, "committed": round(o["delta"], 4),
                         "rerun": round(c["delta"], 4), "tolerance": round(tolerance, 4),
                         "agrees": abs(o["delta"] - c["delta"]) <= tolerance})
    return rows


def print_agreement(rows: list[dict], compared_to: Path, console) -> None:
    for r in rows:
        mark = "ok " if r["agrees"] else "DIFF"
        console.print(f"{mark} {r['run']:<28} {r['task']:<45} committed {r['committed']:+.3f} "
                      f"rerun {r['rerun']:+.3f} (tolerance {r['tolerance']:.3f})")
    agree = sum(r["agrees"] for r in rows)
    console.print(f"{agree}/{len(rows)} changes agree with {compared_to} within noise")


def publish(study_out: Path, timings: dict, dest: Path) -> None:
    """Copy the study's report, plots and results (no weights, no HTML) to `dest`, replacing it whole."""
    from retain.io import atomic_write_json

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in sorted(study_out.iterdir()):
        if f.is_file() and f.suffix in PUBLISHED_SUFFIXES and f.name != "report.html":
            shutil.copy(f, tmp / f.name)
    plots = study_out / "plots"
    if plots.is_dir():
        shutil.copytree(plots, tmp / "plots")
    atomic_write_json(tmp / "timings.json", timings)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def run_and_report(config, out: Path, timings: dict, compare_to: Path | None, no_publish: bool, dest: Path,
                   console, name: str = "study") -> dict:
    """Run (or resume) the study into OUT/NAME, record its timings, then check or publish it."""
    import time

    from retain.cli.study import run_with_progress
    from retain.cli.summary import print_summary
    from retain.io import atomic_write_json, read_json

    start = time.perf_counter()
    study_out = out / name
    doc = run_with_progress(config, study_out, console)
    timings["stages"]["study_seconds_this_call"] = round(time.perf_counter() - start, 1)
    timings["runs"] = {r["name"]: r.get("cost") for r in doc["runs"]}
    suffix = "" if name == "study" else f"-{name}"
    atomic_write_json(out / f"timings{suffix}.json", timings)
    print_summary(doc, study_out, console)
    if compare_to is not None:
        rows = agreement(read_json(compare_to), doc)
        print_agreement(rows, compare_to, console)
        atomic_write_json(out / f"agreement{suffix}.json", {"compared_to": str(compare_to), "rows": rows})
    elif not no_publish:
        publish(study_out, timings, dest)
        console.print(f"published to {dest}")
    return doc
