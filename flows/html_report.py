"""report.html: one self-contained file per run (metrics tables, plots, validation summary and
a trace viewer showing the generator's trace beside the search agent's attempts)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from flows.run_store import RunStore

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


def _table(rows: list[dict[str, Any]], cols: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols
        )
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _validation_section(run_dir: Path) -> str:
    vdir = run_dir / "validation" / "latest"
    if not (vdir / "validation.json").exists():
        return '<section id="validation"><h2>Validation</h2><p>Not validated yet: run <code>sage validate</code>.</p></section>'
    s = json.loads((vdir / "validation.json").read_text())
    flags = [{"check": k, "flagged": v} for k, v in s["flags"].items()]
    tax = [
        {"failure": kind, "cause": c, "count": n}
        for kind, causes in s["failure_taxonomy"].items()
        for c, n in causes.items()
    ]
    rtypes = [{"reasoning type": k, "items": v} for k, v in s["reasoning_types"].items()]
    return (
        f'<section id="validation"><h2>Validation</h2><p>{s["items"]} items, {s["kept"]} kept.</p>'
        + _table(flags, ["check", "flagged"], "flags")
        + "<h3>Failure taxonomy (rejected seeds)</h3>"
        + _table(tax, ["failure", "cause", "count"], "taxonomy")
        + "<h3>Reasoning types (accepted items)</h3>"
        + _table(rtypes, ["reasoning type", "items"], "reasoning")
        + "</section>"
    )


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:.9em}
th{background:#f2f2f2}.cols{display:flex;gap:1em}.col{flex:1;min-width:0}
.step{border-left:3px solid #99c;margin:.4em 0;padding:.2em .6em;background:#fafaff}
.attempt{border:1px solid #ddd;margin:.5em 0;padding:.4em}.attempt.ok{border-color:#3a3}
.attempt.bad{border-color:#c33}.p{color:#555;font-size:.85em}.status{font-weight:bold}
img{max-width:100%}
"""

JS = """
const items = JSON.parse(document.getElementById('trace-data').textContent);
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function steps(list){ return list.map(s => `<div class="step"><b>${esc(s.type)}</b>` +
  (s.query ? ` <i>${esc(s.query)}</i>` : '') + (s.answer ? ` → <b>${esc(s.answer)}</b>` : '') +
  (s.reasoning ? `<div>${esc(s.reasoning)}</div>` : '') + (s.error ? `<div>${esc(s.error)}</div>` : '') +
  (s.passages||[]).map(p => `<div class="p">[${esc(p.title)}] ${esc(p.text)}</div>`).join('') +
  '</div>').join(''); }
function show(seedId){
  const it = items.find(i => i.seed_id === seedId) || items[0];
  if(!it) return;
  document.getElementById('item-select').value = it.seed_id;
  const rounds = it.rounds.map(r => `<h3 class="round">Round ${r.round}: <span class="status">${esc(r.status)}</span> (${esc(r.mode)}, S=${r.target_steps})</h3>
    <div class="cols"><div class="col gen"><h4>Generator</h4><p class="question"><b>Q:</b> ${esc(r.question)}<br><b>A:</b> ${esc(r.answer)}</p>
      <ol>${r.plan.map(p => `<li>${esc(p)}</li>`).join('')}</ol>${steps(r.generator)}${r.error ? `<p>${esc(r.error)}</p>` : ''}</div>
    <div class="col agent"><h4>Search agent</h4>${r.attempts.map(a => `<div class="attempt ${a.correct ? 'ok' : 'bad'}">
      <b>Attempt ${a.index}</b>: ${esc(a.answer)} — ${a.correct ? 'correct' : 'wrong'} (${a.n_searches} searches${a.forced ? ', forced' : ''}, judge ${esc(a.judge)})
      ${steps(a.steps)}</div>`).join('') || '<p>no attempts</p>'}</div></div>`).join('');
  document.getElementById('viewer').innerHTML = `<h3>Seed ${esc(it.seed_id)} — ${esc(it.status)}</h3>` + rounds;
}
const sel = document.getElementById('item-select');
sel.innerHTML = items.map(i => `<option value="${esc(i.seed_id)}">${esc(i.seed_id)} — ${esc(i.status)} — ${esc((i.rounds.at(-1)||{}).question).slice(0,80)}</option>`).join('');
sel.addEventListener('change', () => { location.hash = 'item=' + sel.value; });
const fromHash = () => show(decodeURIComponent((location.hash.match(/item=([^&]+)/)||[])[1] || ''));
window.addEventListener('hashchange', fromHash);
fromHash();
"""


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
    metrics = json.loads((run_dir / "metrics.json").read_text())
    traces, total = viewer_traces(run_dir / "traces.jsonl")
    data = json.dumps(trace_items(traces), ensure_ascii=False).replace("</", "<\\/")
    p = manifest["params"]
    cols = ["seeds", "pct_correct", "pct_pass", "avg_at_k", "mean_min_searches", "mean_searches"]
    cost = metrics["cost"]
    title = f"sage run {manifest['run_id']}"
    shown = (
        f"<p>The first {len({t['seed_id'] for t in traces})} of {total} seeds; every trace is "
        "in <code>traces.jsonl</code>.</p>"
        if total > len({t["seed_id"] for t in traces})
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p id="run-info">collection <code>{html.escape(str(p["collection"]))}</code> ({html.escape(str(manifest.get("collection_version")))}),
strategy {html.escape(str(p["strategy"]))}, K={p["attempts"]}, R={p["rounds"]}, S {html.escape(str(p["steps"]))};
generator <code>{html.escape(str(manifest["models"]["generator"]))}</code>, agent <code>{html.escape(str(manifest["models"]["agent"]))}</code>.</p>
<section id="metrics"><h2>By round</h2>{_table(metrics["per_round"], ["round", *cols], "per-round")}
{_img(run_dir / "plot_rounds.png", "pass rate and searches by round")}
<h2>By target searches S</h2>{_table(metrics["per_target_steps"], ["target_steps", *cols], "per-s")}
{_img(run_dir / "plot_target_steps.png", "pass rate by S")}
<h2>Funnel and cost</h2>{_table(metrics["funnel"]["per_round"], ["round", "candidates", "correct", "accepted"], "funnel")}
<p>{cost["lm_calls"]} LM calls, {cost["tokens"]} tokens; per accepted item {cost["lm_calls_per_accepted"]} calls, {cost["tokens_per_accepted"]} tokens.</p></section>
{_validation_section(run_dir)}
<section id="traces"><h2>Trace viewer</h2>{shown}<label>Seed <select id="item-select"></select></label><div id="viewer"></div></section>
<script type="application/json" id="trace-data">{data}</script>
<script>{JS}</script>
</body></html>
"""


def write_html_report(run_dir: Path) -> Path:
    """Write (or rewrite) run_dir/report.html."""
    out = Path(run_dir) / "report.html"
    store = RunStore(out.parent.parent, out.parent.name)
    store.write_text("report.html", render_html(Path(run_dir)))
    return out
