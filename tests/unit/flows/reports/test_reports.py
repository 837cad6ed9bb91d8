"""Report rows and renderers: one table renderer for Markdown and HTML, the trace viewer's
data, the validation section, and escaping of model text in report.html."""

from __future__ import annotations

import json
import re

from flows.reports.html import render_html, trace_items, validation_view
from flows.reports.tables import cells, md_table
from flows.runs.metrics import candidates_frame, compute_metrics


def test_cells_and_markdown_table():
    rows = [{"a": 1, "b": None}, {"a": "x|y", "c": 3}]
    assert cells(rows, ["a", "b"]) == [["1", ""], ["x|y", ""]]
    assert md_table(rows, ["a", "b"]) == "| a | b |\n|---|---|\n| 1 |  |\n| x|y |  |\n"


def _trace(seed, rnd, status, question="Q?"):
    return {"seed_id": seed, "round": rnd, "status": status, "mode": "generate",
            "target_steps": 2, "candidate": {"question": question, "answer": "A",
            "plan": [{"sub_question": "s", "sub_answer": "t"}]},
            "generator_trace": [{"type": "search", "query": "q", "passages": [
                {"id": "p1", "title": "T", "text": "x" * 500}]}],
            "attempts": [{"index": 0, "answer": "A", "correct": True, "n_searches": 2,
                          "judgement": {"method": "exact"}, "trace": []}]}  # fmt: skip


def test_trace_items_order_rounds_and_take_the_last_status():
    items = trace_items([_trace("s1", 1, "accepted"), _trace("s1", 0, "too_easy")])
    (it,) = items
    assert [r["round"] for r in it["rounds"]] == [0, 1] and it["status"] == "accepted"
    r0 = it["rounds"][0]
    assert r0["plan"] == ["s → t"]
    assert len(r0["generator"][0]["passages"][0]["text"]) <= 220
    assert r0["attempts"][0]["judge"] == "exact"


def test_validation_view_before_and_after_a_validation(tmp_path):
    assert validation_view(tmp_path) is None
    vdir = tmp_path / "validation" / "latest"
    vdir.mkdir(parents=True)
    (vdir / "validation.json").write_text(json.dumps({
        "items": 2, "kept": 1, "flags": {"leakage": 1},
        "failure_taxonomy": {"too_easy": {"information_co_location": 3}},
        "reasoning_types": {"bridging": 2},
    }))  # fmt: skip
    v = validation_view(tmp_path)
    assert v["flag_rows"] == [{"check": "leakage", "flagged": 1}]
    assert v["taxonomy_rows"] == [
        {"failure": "too_easy", "cause": "information_co_location", "count": 3}
    ]
    assert v["reasoning_rows"] == [{"reasoning type": "bridging", "items": 2}]


def test_report_html_escapes_model_text_and_keeps_the_json_inert(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    evil = '<script>alert(1)</script> & "quotes"'
    params = {"collection": "<demo>", "strategy": "feedback", "attempts": 4, "rounds": 1,
              "steps": "2-4"}  # fmt: skip
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "r1", "params": params, "collection_version": "demo@1",
        "models": {"generator": "g", "agent": "a", "judge": "j"},
    }))  # fmt: skip
    rows = [{"seed_id": "s1", "round": 0, "status": "accepted", "target_steps": 2,
             "question": evil, "attempts": 4, "n_correct": 1, "pass_at_k": True, "avg_at_k": 0.25,
             "min_searches": 2, "mean_searches": 2.0, "lm_calls": 9, "tokens": 90,
             "seconds": 1.0}]  # fmt: skip
    metrics = compute_metrics(candidates_frame(rows), rounds=1)
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "traces.jsonl").write_text(json.dumps(_trace("s1", 0, "accepted", evil)) + "\n")
    page = render_html(run)
    assert "<code>&lt;demo&gt;</code>" in page
    data = re.search(r'id="trace-data">(.*?)</script>', page, re.S).group(1)
    assert "</script>" not in data and json.loads(data)[0]["rounds"][0]["question"] == evil
    assert "<p>Not validated yet" in page
    funnel = re.search(r'<table class="funnel">.*?</table>', page, re.S).group(0)
    assert "<tr><td>0</td><td>1</td><td>1</td><td>1</td></tr>" in funnel
    assert "9 LM calls, 90 tokens" in page
