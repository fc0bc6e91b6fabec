"""Read a study's `results.json` into one tidy view that every renderer shares.

The markdown, HTML and plot renderers all need the same derived facts: the task order (target
first), each task's base score and budget, which runs finished, the colour scale, the verdict in
plain words. Computing them once here keeps the three outputs consistent and lets the renderers be
pure formatting. Every optional field of the schema may be missing; nothing here raises on absence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retain.io import read_json
from retain.report.schema import validate_results

MINUS = "\u2212"  # typographic minus: "−0.045" lines up with "+0.123"
DASH = "\u2014"  # shown for a missing value


PENDING = "pending"  # a planned run without a result yet


@dataclass(frozen=True)
class TaskInfo:
    """One task as the report shows it: role, primary metric, base score, budget and skill flag."""

    name: str
    role: str  # "target" | "protected"
    metric: str
    primary: str
    n: int | None
    budget: dict | None
    base_value: float | None
    base_ci: tuple[float, float] | None
    has_skill: bool | None
    chance: float | None
    skill_note: str | None
    higher_is_better: bool = True  # False: a rise of the metric is the drop (a perplexity task's nll)

    @property
    def no_skill(self) -> bool:
        """A protected task the base cannot do: forgetting there means nothing."""
        return self.role == "protected" and self.has_skill is False


@dataclass(frozen=True)
class Verdict:
    """The recommendation in plain words: `kind` is "ok", "closest" or "none"."""

    kind: str
    headline: str
    body: list[str]
    run: str | None


@dataclass
class ReportData:
    """Everything the renderers need, derived once from the results document."""

    raw: dict
    study: dict
    model: dict
    target: dict
    tasks: list[TaskInfo]
    runs: list[dict]
    pareto: list[str]
    recommendation: dict | None
    verdict: Verdict = field(init=False)

    def __post_init__(self) -> None:
        self.verdict = build_verdict(self)

    @property
    def done_runs(self) -> list[dict]:
        return [r for r in self.runs if r.get("status") == "done"]

    @property
    def failed_runs(self) -> list[dict]:
        return [r for r in self.runs if r.get("status") not in ("done", PENDING)]

    @property
    def pending_runs(self) -> list[dict]:
        """Planned runs without a result yet (a study still running, or stopped part-way)."""
        return [r for r in self.runs if r.get("status") == PENDING]

    @property
    def protected(self) -> list[TaskInfo]:
        return [t for t in self.tasks if t.role == "protected"]

    @property
    def target_task(self) -> TaskInfo | None:
        return next((t for t in self.tasks if t.role == "target"), None)

    def task(self, name: str) -> TaskInfo | None:
        return next((t for t in self.tasks if t.name == name), None)

    def run(self, name: str | None) -> dict | None:
        return next((r for r in self.runs if r.get("name") == name), None)

    def delta_scale(self) -> float:
        """Size of change shown at full colour intensity (at least 0.05, so noise stays pale)."""
        deltas = [abs(c["delta"]) for r in self.done_runs for c in (r.get("change") or {}).values()
                  if isinstance(c, dict) and c.get("delta") is not None]
        return max([0.05, *deltas])

    def common_budget(self) -> float | None:
        """The absolute max drop shared by every protected task, or None if budgets differ."""
        budgets = {(b.get("max_drop"), bool(b.get("relative"))) for t in self.protected
                   if (b := t.budget) is not None}
        missing = any(t.budget is None for t in self.protected)
        if len(budgets) != 1 or missing:
            return None
        max_drop, relative = budgets.pop()
        return None if relative or max_drop is None else float(max_drop)


def load(results: str | Path | dict) -> ReportData:
    """Build the report view from a results path or an already-loaded results dict.

    Raises:
        UserError: the file is missing, not JSON, or not a `retain.study/1` document.
    """
    where = str(results) if isinstance(results, (str, Path)) else "results"
    doc = validate_results(read_json(results) if isinstance(results, (str, Path)) else results, where)
    runs = doc.get("runs") or []
    runs = [{**r, "name": str(r.get("name") or f"run-{i + 1}")} for i, r in enumerate(runs)]
    return ReportData(raw=doc, study=doc.get("study") or {}, model=doc.get("model") or {},
                      target=doc.get("target") or {}, tasks=_tasks(doc, runs), runs=runs,
                      pareto=[str(p) for p in doc.get("pareto") or []],
                      recommendation=doc.get("recommendation"))


def _tasks(doc: dict, runs: list[dict]) -> list[TaskInfo]:
    declared = doc.get("tasks") or {}
    target = (doc.get("target") or {}).get("task")
    names = list(declared)
    for r in runs:  # tasks a run was scored on but the header forgot still get a column
        names += [t for t in (r.get("change") or {}) if t not in names]
    if target and target not in names:
        names.insert(0, target)
    base = doc.get("base") or {}
    infos = []
    for name in names:
        spec = declared.get(name) or {}
        role = spec.get("role") or ("target" if name == target else "protected")
        primary = spec.get("primary") or _primary_from_runs(runs, name) or "score"
        score = ((base.get("scores") or {}).get(name) or {}).get(primary) or {}
        skill = (base.get("skills") or {}).get(name) or {}
        ci = score.get("ci95")
        infos.append(TaskInfo(
            name=name, role=role, metric=spec.get("metric") or primary, primary=primary, n=spec.get("n"),
            budget=spec.get("budget"), base_value=score.get("value", skill.get("value")),
            base_ci=tuple(ci) if ci else None, has_skill=skill.get("has_skill"),
            chance=skill.get("chance"), skill_note=skill.get("note"),
            higher_is_better=spec.get("higher_is_better") is not False))
    infos.sort(key=lambda t: t.role != "target")  # stable: target first, then the declared order
    return infos


def _primary_from_runs(runs: list[dict], task: str) -> str | None:
    for r in runs:
        change = (r.get("change") or {}).get(task)
        if isinstance(change, dict) and change.get("metric"):
            return change["metric"]
    return None


# --- facts about one run -----------------------------------------------------------------------

def change(run: dict, task: str) -> dict | None:
    c = (run.get("change") or {}).get(task)
    return c if isinstance(c, dict) else None


def gain(c: dict | None) -> float | None:
    """A change signed so that positive is better (a lower-is-better metric's delta negated): colours."""
    if not c or not isinstance(c.get("delta"), (int, float)):
        return None
    g = c.get("gain")
    return float(g) if isinstance(g, (int, float)) else float(c["delta"])


def score(run: dict, task: TaskInfo) -> tuple[float | None, tuple[float, float] | None]:
    """A run's primary-metric value on a task and its 95% CI."""
    s = ((run.get("scores") or {}).get(task.name) or {}).get(task.primary) or {}
    value, ci = s.get("value"), s.get("ci95")
    if value is None and (c := change(run, task.name)):
        value = c.get("value")
    return value, tuple(ci) if ci else None


def violations(run: dict) -> dict[str, dict]:
    """Budget violations of a run, by task."""
    return {v["task"]: v for v in run.get("budget_violations") or [] if isinstance(v, dict) and "task" in v}


def is_wise(run: dict) -> bool:
    return run.get("parent") is not None and run.get("alpha") is not None


def is_checkpoint(run: dict) -> bool:
    """A model kept part-way through its parent's training (`checkpoints:` in the study)."""
    return run.get("parent") is not None and run.get("step") is not None


def path_position(run: dict) -> float | None:
    """Where a derived run lies between the base (0) and its parent (1): WiSE-FT's alpha, or the
    checkpoint's share of the parent's steps; None for a run that is not derived."""
    if is_wise(run):
        return float(run["alpha"])
    if is_checkpoint(run) and run.get("of_steps"):
        return run["step"] / run["of_steps"]
    return None


def path_label(run: dict, name: str) -> str:
    """How the trade-off plot labels a point: alpha on a WiSE-FT path, the step on a training path."""
    if is_wise(run):
        return f"\u03b1={run['alpha']:g}"
    if is_checkpoint(run):
        return f"step {run['step']}"
    return name


def budget_text(budget: dict | None, higher_is_better: bool = True) -> str:
    if not budget or budget.get("max_drop") is None:
        return DASH
    drop, word = float(budget["max_drop"]), "drop" if higher_is_better else "rise"
    return f"{word} \u2264 {drop * 100:g}% of base" if budget.get("relative") else f"{word} \u2264 {drop:.3f}"


# --- number formatting -------------------------------------------------------------------------

def fmt_value(x: float | None) -> str:
    return DASH if x is None else f"{x:.3f}"


def fmt_delta(x: float | None) -> str:
    """Signed delta with 3 decimals: "+0.123", "−0.045", "0.000"."""
    if x is None:
        return DASH
    r = round(float(x), 3)
    if r == 0:
        return "0.000"
    return f"{'+' if r > 0 else MINUS}{abs(r):.3f}"


def fmt_ci(ci: tuple | list | None, signed: bool = False) -> str:
    if not ci or len(ci) != 2 or None in ci:
        return DASH
    f = fmt_delta if signed else fmt_value
    return f"[{f(ci[0])}, {f(ci[1])}]"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return DASH
    s = float(s)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60)):02d} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60)):02d} min"


def fmt_count(n: float | None) -> str:
    if n is None:
        return DASH
    n = float(n)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_rate(x: float | None) -> str:
    return DASH if x is None else f"{x:,.0f}"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return DASH
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def fmt_share(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return DASH
    pct = 100 * part / whole
    return f"{pct:.1f}%" if pct >= 0.1 or pct == 0 else f"{pct:.3f}%"


# --- the verdict -------------------------------------------------------------------------------

def build_verdict(data: ReportData) -> Verdict:
    """Turn `recommendation` into a headline and a few plain sentences."""
    rec = data.recommendation if isinstance(data.recommendation, dict) else None
    target = data.target_task
    what = f"{target.name} {target.primary}" if target else "the target"
    if rec and rec.get("run") and rec.get("within_budget", True) and data.run(rec["run"]):
        run = data.run(rec["run"])
        body = [f"It changes {what} by {fmt_delta(run.get('target_gain'))}"
                + _base_to_run(run, target) + " and keeps every protected task within its forgetting "
                f"budget (mean protected change {fmt_delta(run.get('mean_protected_change'))})."]
        if rec.get("reason"):
            body.append(f"Why: {rec['reason']}.")
        over = [r for r in data.done_runs if not r.get("within_budget", True)
                and (r.get("target_gain") or 0) > (run.get("target_gain") or 0)]
        if over:
            body.append("Runs that gain more break the budget: " + "; ".join(
                f"{r['name']} ({fmt_delta(r.get('target_gain'))}, {_worst(r)})" for r in over[:3]) + ".")
        return Verdict("ok", f"Use {run['name']}", body, run["name"])
    closest = (rec or {}).get("closest") if rec else None
    if rec and isinstance(closest, dict) and closest.get("run"):
        run = data.run(closest["run"]) or {"name": closest["run"]}
        body = [f"Closest: {run['name']}, over the budget by {fmt_value(closest.get('excess'))} "
                f"({_worst(run)}). It changes {what} by {fmt_delta(run.get('target_gain'))}"
                + _base_to_run(run, target) + "."]
        if rec.get("run") and rec["run"] != run["name"]:
            body.append(f"The study suggests {rec['run']}" + (f": {rec['reason']}." if rec.get("reason") else "."))
        elif rec.get("reason"):
            body.append(f"Why: {rec['reason']}.")
        return Verdict("closest", "No run fits the forgetting budget", body, run["name"])
    if not data.done_runs:
        why = "no run has finished yet" if not data.study.get("finished", True) else "no run finished"
        return Verdict("none", "No recommendation", [f"The study has no recommendation: {why}."], None)
    return Verdict("none", "No recommendation",
                   ["The results carry no recommendation; compare the runs in the matrix below."], None)


def _base_to_run(run: dict, target: TaskInfo | None) -> str:
    if target is None or (c := change(run, target.name)) is None:
        return ""
    if c.get("base") is None or c.get("value") is None:
        return ""
    return f" ({fmt_value(c['base'])} \u2192 {fmt_value(c['value'])})"


def _worst(run: dict) -> str:
    """The run's worst budget violation as "toy-ner −0.412 vs allowed −0.050"."""
    def worse_first(v: dict) -> float:  # `excess` is direction-free (lower-is-better metrics too)
        if isinstance(v.get("excess"), (int, float)):
            return -v["excess"]
        return (v.get("delta") or 0) - (v.get("allowed") or 0)

    vs = sorted(violations(run).values(), key=worse_first)
    if not vs:
        return "no violation recorded"
    v = vs[0]
    return f"{v['task']} {fmt_delta(v.get('delta'))} vs allowed {fmt_delta(v.get('allowed'))}"
