"""report.html: one self-contained file per run (metrics tables, plots, validation summary and
a trace viewer showing the generator's trace beside the search agent's attempts)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from flows.reports.tables import FUNNEL_COLS, METRIC_COLS, cells
from flows.runs.store import RunStore

TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("flows.reports", "."),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("report.html.j2")

PASSAGE_CHARS = 220
MAX_VIEWER_SEEDS = 300  # seeds in the trace viewer; every trace stays in traces.jsonl


def _clip(text: Any, n: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def _passages(ps: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [
        {
            "id": str(p.get("id")),
            "title": str(p.get("title")),
            "text": _clip(p.get("text"), PASSAGE_CHARS),
        }
        for p in ps or []
    ]


def _steps(trace: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for t in trace or []:
        step = {k: _clip(t.get(k), 600) for k in ("type", "reasoning", "query", "answer", "error")}
        step["passages"] = _passages(t.get("passages"))
        out.append({k: v for k, v in step.items() if v})
    return out


def trace_items(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compact per-seed view data: every round's candidate, generator steps and attempts."""
    seeds: dict[str, dict[str, Any]] = {}
    for r in records:
        s = seeds.setdefault(r["seed_id"], {"seed_id": r["seed_id"], "rounds": []})
        cand = r.get("candidate") or {}
        s["rounds"].append(
            {
                "round": r.get("round"),
                "status": r.get("status"),
                "mode": r.get("mode"),
                "target_steps": r.get("target_steps"),
                "question": cand.get("question"),
                "answer": cand.get("answer"),
                "plan": [
                    f"{p.get('sub_question')} → {p.get('sub_answer')}"
                    for p in cand.get("plan") or []
                ],
                "generator": _steps(r.get("generator_trace")),
                "attempts": [
                    {
                        "index": a.get("index"),
                        "answer": _clip(a.get("answer"), 300),
                        "correct": bool(a.get("correct")),
                        "n_searches": a.get("n_searches"),
                        "forced": bool(a.get("forced")),
                        "judge": (a.get("judgement") or {}).get("method"),
                        "steps": _steps(a.get("trace")),
                    }
                    for a in r.get("attempts") or []
                ],
                "error": r.get("error"),
            }
        )
    items = list(seeds.values())
    for it in items:
        it["rounds"].sort(key=lambda x: x["round"] or 0)
        it["status"] = it["rounds"][-1]["status"] if it["rounds"] else "?"
    return items


def _img(path: Path) -> str | None:
    """A PNG as a data URI (the report is one self-contained file)."""
    if not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def validation_view(run_dir: Path) -> dict[str, Any] | None:
    """The latest validation's summary with its table rows, or None before any."""
    path = run_dir / "validation" / "latest" / "validation.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    return s | {
        "flag_rows": [{"check": k, "flagged": v} for k, v in s["flags"].items()],
        "taxonomy_rows": [
            {"failure": kind, "cause": c, "count": n}
            for kind, causes in s["failure_taxonomy"].items()
            for c, n in causes.items()
        ],
        "reasoning_rows": [
            {"reasoning type": k, "items": v} for k, v in s["reasoning_types"].items()
        ],
    }


def viewer_traces(path: Path, max_seeds: int = MAX_VIEWER_SEEDS) -> tuple[list[dict], int]:
    """The traces of the first ``max_seeds`` seeds (streamed: a big run's traces.jsonl
    never sits in memory) and how many seeds there are in all."""
    kept: list[dict[str, Any]] = []
    kept_ids: set[str] = set()
    all_ids: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                sid = rec["seed_id"]
                all_ids.add(sid)
                if sid in kept_ids or len(kept_ids) < max_seeds:
                    kept_ids.add(sid)
                    kept.append(rec)
    return kept, len(all_ids)


def render_html(run_dir: Path) -> str:
    store = RunStore(run_dir.parent, run_dir.name)
    manifest = store.read_manifest()
    traces, total = viewer_traces(run_dir / "traces.jsonl")
    data = json.dumps(trace_items(traces), ensure_ascii=False).replace("</", "<\\/")
    return TEMPLATE.render(
        title=f"sage run {manifest['run_id']}",
        manifest=manifest,
        p=manifest["params"],
        metrics=(m := json.loads((run_dir / "metrics.json").read_text())),
        cost=m["cost"],
        plots={
            "rounds": _img(run_dir / "plot_rounds.png"),
            "steps": _img(run_dir / "plot_target_steps.png"),
        },
        validation=validation_view(run_dir),
        shown=len({t["seed_id"] for t in traces}),
        total=total,
        data=Markup(data),
        cells=cells,
        metric_cols=METRIC_COLS,
        funnel_cols=FUNNEL_COLS,
    )


def write_html_report(run_dir: Path) -> Path:
    """Write (or rewrite) run_dir/report.html."""
    out = Path(run_dir) / "report.html"
    store = RunStore(out.parent.parent, out.parent.name)
    store.write_text("report.html", render_html(Path(run_dir)))
    return out
