"""One table renderer for every report: rows of dicts -> cells, as Markdown here and as HTML
in ``report.html.j2`` (both through ``cells``)."""

from __future__ import annotations

from typing import Any

METRIC_COLS = ["seeds", "pct_correct", "pct_pass", "avg_at_k", "mean_min_searches", "mean_searches"]
FUNNEL_COLS = ["round", "candidates", "correct", "accepted"]


def cells(rows: list[dict[str, Any]], cols: list[str]) -> list[list[str]]:
    """Each row's values in ``cols`` order as text (missing or None -> empty)."""
    return [["" if r.get(c) is None else str(r.get(c)) for c in cols] for r in rows]


def md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """A GitHub Markdown table."""
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in cells(rows, cols))
