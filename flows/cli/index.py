"""`sage index`: corpus file or directory -> versioned collection (incremental)."""

from __future__ import annotations

from typing import Any

import typer

from flows.cli.options import add_flow_command, emit
from flows.index import IndexParams


def index(ctx: typer.Context, params: IndexParams, as_json: bool) -> None:
    """Index a corpus; re-running embeds only new/changed passages and switches the name."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from flows.index import index_corpus, progress_hook

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=as_json,
        transient=True,
    )
    task_id = bar.add_task("indexing", total=None)

    def hook(phase: str, done: int, total: int) -> None:
        bar.update(task_id, description=phase, completed=done, total=total)

    with bar, progress_hook(hook):
        s = index_corpus(params, ctx.obj.overrides)
    emit(s, as_json, summary_line(s))


def summary_line(s: dict[str, Any]) -> str:
    human = (
        f"{s['collection']} -> {s['version']}: {s['documents']} documents, "
        f"{s['passages']} passages ({s['embedded']} embedded, {s['reused']} reused, "
        f"{s['deleted']} removed), {s['rejects']} rejects, {s['duplicates']} duplicates, "
        f"{s['seconds']} s, {s['passages_per_s']} passages/s"
    )
    if s["skipped_files"]:
        human += f", {s['skipped_files']} files skipped (not .txt or .md)"
    if s["rejects_file"]:
        human += f"\nrejects: {s['rejects_file']}"
    return human


def register(app: typer.Typer) -> None:
    """Add the `index` command to the sage CLI."""
    add_flow_command(app, "index", IndexParams, index)
