"""The one item a short run shows at its end: an accepted item with the queries of its
fewest-search attempt, or, when none was accepted, the best candidate and why it failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modules.programs.attempts import Attempt, fewest_searches
from modules.programs.status import Status

_RANK = {Status.ACCEPTED: 4, Status.TOO_EASY: 3, Status.INCORRECT: 2}


def _rounds(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "traces.jsonl"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _reason(r: dict[str, Any], best: Attempt | None) -> str:
    """One line: why a round's candidate was not accepted."""
    s = r.get("target_steps")
    if r.get("status") == Status.TOO_EASY and best:
        return f"too easy: solved in {best.n_searches} search(es), fewer than S={s}"
    if r.get("candidate") is None:
        return f"no valid pair was written ({r.get('error') or 'generation failed'})"
    return "no search-agent attempt found the answer"


def showcase(run_dir: Path) -> dict[str, Any] | None:
    """The accepted item (question, answer, S, fewest-search queries and which of them
    counted), else the best candidate (most right attempts, then the latest round) with
    ``reason``; None if no round was written."""
    rounds = _rounds(run_dir)
    if not rounds:
        return None

    def rank(r: dict[str, Any]) -> tuple:
        right = sum(bool(a.get("correct")) for a in r.get("attempts") or [])
        return (_RANK.get(r.get("status"), r.get("candidate") is not None), right, r["round"])

    top = max(rounds, key=rank)
    attempts = [Attempt.from_dict(a) for a in top.get("attempts") or []]
    best = fewest_searches(attempts)
    shown = best or (attempts[0] if attempts else None)
    searches = [t for t in (shown.trace if shown else []) if t["type"] == "search"]
    cand = top.get("candidate") or {}
    item = {
        "seed_id": top["seed_id"],
        "round": top["round"],
        "status": top["status"],
        "question": cand.get("question"),
        "answer": cand.get("answer"),
        "target_steps": top.get("target_steps"),
        "searches": best.n_searches if best else None,
        "queries": [t["query"] for t in searches],
        "counted": [t.get("new", True) for t in searches],
        "agent_answer": shown.answer if shown else None,
    }
    if top["status"] != Status.ACCEPTED:
        item["reason"] = _reason(top, best)
    return item


def showcase_lines(item: dict[str, Any] | None) -> str:
    """The item as the demo prints it."""
    if item is None:
        return "no round was written"
    head = (
        "accepted item"
        if item["status"] == Status.ACCEPTED
        else "no item was accepted; the best "
        f"candidate ({item['status']}, round {item['round']}): {item['reason']}"
    )
    lines = [head, f"  question: {item['question']}", f"  answer:   {item['answer']}"]
    if item["status"] == Status.ACCEPTED:
        lines.append(f"  S={item['target_steps']}, solved in {item['searches']} searches:")
    elif item["queries"]:
        lines.append(f"  an attempt searched (and answered {item['agent_answer']!r}):")
    lines += [
        f"    {i}. {q}" + ("" if new else "  (a repeat: not counted)")
        for i, (q, new) in enumerate(zip(item["queries"], item["counted"], strict=True), start=1)
    ]
    return "\n".join(lines)
