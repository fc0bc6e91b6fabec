"""The report rendered from the synthetic study: files, escaping, matrix values, verdict, determinism."""

from __future__ import annotations

import re

from htmlcells import parse
from report_fixture import DANGER, DELTAS, TASKS, build_results

from retain.report import render_report

MINUS = "\u2212"


def signed(x: float) -> str:
    return f"{'+' if x > 0 else MINUS}{abs(x):.3f}"


def test_files_written_and_non_empty(rendered):
    paths, out = rendered["paths"], rendered["out"]
    assert paths["markdown"] == out / "report.md" and paths["html"] == out / "report.html"
    assert {"tradeoff", "heatmap", *(f"task:{t}" for t in TASKS)} <= set(paths)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 500, path
    for key in ("tradeoff", "heatmap", "task:toy-ner"):
        assert paths[key].parent == out / "plots"
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](plots/{paths[key].name})" in rendered["md"]
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temp files


def test_html_is_self_contained(rendered):
    page = rendered["html"]
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "<link" not in page
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 2 + len(TASKS)  # heatmap, trade-off, per task
    assert "<script" not in page.lower()  # no script of ours, none from the data


def test_dangerous_text_is_escaped(rendered):
    page = rendered["html"]
    assert DANGER not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "</pre><img" not in page
    assert "Johnson &amp; Johnson" in page and "Johnson & Johnson" not in page
    assert "Tom &amp; Jerry&#x27;s &lt;b&gt;Diner&lt;/b&gt;" in page
    # inside attributes too: the crafted id cannot open a new attribute
    assert 'onmouseover="' not in page
    assert 'data-id="ner-0042&quot;onmouseover=&quot;alert(1)"' in page
    tags = parse(page).tags
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert not any(tag in ("script", "img") and not (attrs.get("src") or "").startswith("data:image/png")
                   for tag, attrs in tags)


def test_markdown_keeps_data_text_inert(rendered):
    md = rendered["md"]
    assert "`<script>alert(1)</script>`" in md  # a code span shows it literally
    for line in md.splitlines():
        if line.startswith("|"):
            assert "<script" not in line.replace("`<script>alert(1)</script>`", "")
    # a prediction with newlines and pipes stays in one table row, pipes escaped
    assert "`Simon sent potatoes. \u23ce \\| LOC \\| Norway \\|`" in md
    # multi-line prompts go in fenced code blocks
    assert "```text\nContext: Ivan loves eating cheese." in md


def test_every_run_and_task_named(rendered):
    names = [r["name"] for r in build_results()["runs"]]
    for text in (rendered["md"], rendered["html"]):
        for name in names + list(TASKS):
            assert name in text, name


def test_matrix_cells_carry_signed_deltas(rendered):
    cells = parse(rendered["html"]).cells
    for run, tasks in DELTAS.items():
        for task, (delta, _) in tasks.items():
            cell = cells[(run, task)]
            assert float(cell["attrs"]["data-delta"]) == delta
            assert cell["text"].startswith(signed(delta)), (run, task, cell["text"])
    assert cells[("full", "toy-ner")]["text"].startswith(f"{MINUS}0.412*")  # significant -> *
    assert cells[("multitask", "toy-ner")]["text"].startswith(f"{MINUS}0.018[")  # not significant
    assert cells[("full", "toy-summarize")]["text"].startswith("+0.318*")
    assert f"[{MINUS}0.460, {MINUS}0.364]" in cells[("full", "toy-ner")]["text"]
    row = next(line for line in rendered["md"].splitlines() if line.startswith("| `full` "))
    assert f"**{MINUS}0.412**\\* \u2717 [{MINUS}0.460, {MINUS}0.364]" in row
    assert f"| {MINUS}0.206 |" in row  # mean protected change


def test_cell_colours_follow_the_sign(rendered):
    cells = parse(rendered["html"]).cells

    def rgb(cell):
        h = re.search(r"background:#([0-9a-f]{6})", cell["attrs"]["style"])[1]
        return [int(h[i:i + 2], 16) for i in (0, 2, 4)]

    r, g, _ = rgb(cells[("full", "toy-ner")])
    assert r > g  # drop -> red
    r, g, _ = rgb(cells[("full", "toy-summarize")])
    assert g > r  # gain -> green
    strong, weak = rgb(cells[("full", "toy-ner")]), rgb(cells[("lora-r8", "toy-ner")])
    assert sum(strong) < sum(weak)  # larger drop -> deeper colour


def test_budget_violations_marked(rendered):
    cells = parse(rendered["html"]).cells
    run_tasks = {(r["name"], v["task"]) for r in build_results()["runs"] for v in r.get("budget_violations") or []}
    assert ("full", "toy-ner") in run_tasks and ("lora-r8", "toy-ner") in run_tasks
    for key, cell in cells.items():
        classes = cell["attrs"]["class"].split()
        assert ("over" in classes) == (key in run_tasks), key
        assert ("\u2717" in cell["text"]) == (key in run_tasks), key
    assert "\u2717 2 over" in rendered["md"] and "\u2717 1 over" in rendered["md"]


def test_recommendation_at_the_top(rendered):
    for text in (rendered["md"], rendered["html"]):
        assert "Use multitask" in text
        assert "best target gain among runs within budget" in text
        assert text.index("Use multitask") < text.index("Forgetting matrix")
    assert 'class="verdict ok"' in rendered["html"]
    assert "+0.289 (0.212 \u2192 0.501)" in rendered["md"]


def test_header_and_skill_flag(rendered):
    md = rendered["md"]
    assert "google/flan-t5-small" in md and "toy-summarize, metric rouge (primary rougeL)" in md
    assert "| `toy-ner` | protected | entity\\_f1 | 0.684 | [0.644, 0.724] | 200 | drop \u2264 0.050 | yes |" in md
    for text in (md, rendered["html"]):
        assert "toy-sentiment" in text and "Forgetting there means nothing." in text
        assert "at chance" in text


def test_forgotten_examples_side_by_side(rendered):
    page = rendered["html"]
    article = page[page.index('data-id="ner-0017"'):]
    article = article[:article.index("</article>")]
    assert "Charlie is the cat of Grace Okafor" in article  # prompt
    assert article.count("PER: Charlie; PER: Grace Okafor") == 2  # reference and the base answer
    assert "#Person1# says Charlie is the cat." in article and 'data-run="full"' in article


def test_failed_run_shown_with_error(rendered):
    for text in (rendered["md"], rendered["html"]):
        assert "Failed runs" in text and "CUDA out of memory" in text
    assert "&lt;GPU 0&gt; &amp; more" in rendered["html"]


def test_cost_table(rendered):
    md = rendered["md"]
    assert "| `lora-r8` | lora | 4 min 58 s | 4 min 25 s | 3,090 | 294.9K | 60.8M | 0.5% | 3.0 GB |" in md
    assert "| `full+wise-ft-0.5` | wise-ft | 35 s | \u2014 | \u2014 | 0 | 60.5M | 0.0% | \u2014 |" in md


def test_rerender_is_byte_identical(tmp_path):
    a = render_report(build_results(), tmp_path / "a")
    b = render_report(build_results(), tmp_path / "b")
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    again = render_report(build_results(), tmp_path / "a")  # into the same folder: replaced, same bytes
    assert again["markdown"].read_bytes() == b["markdown"].read_bytes()


def test_accepts_a_path(tmp_path, results):
    import json

    src = tmp_path / "results.json"
    src.write_text(json.dumps(results), encoding="utf-8")
    paths = render_report(src, tmp_path / "out")
    assert "Use multitask" in paths["markdown"].read_text("utf-8")
