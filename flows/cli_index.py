"""`sage index`: corpus file or directory -> versioned Qdrant collection (incremental)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `index` command to the sage CLI."""

    @app.command("index")
    def index(
        ctx: typer.Context,
        path: Annotated[Path, typer.Argument(help="JSONL, Parquet or CSV file, or a text dir.")],
        collection: Annotated[
            str | None, typer.Option(help="Collection alias. [SAGE_COLLECTION]")
        ] = None,
        id_field: Annotated[str | None, typer.Option(help="Column holding the doc id.")] = None,
        title_field: Annotated[str | None, typer.Option(help="Column holding the title.")] = None,
        text_field: Annotated[str | None, typer.Option(help="Column holding the text.")] = None,
        on_error: Annotated[
            str, typer.Option(help="Bad records: 'fail' (stop) or 'skip' (rejects file).")
        ] = "fail",
        chunk_words: Annotated[int, typer.Option(min=8, help="Words per passage.")] = 200,
        overlap_words: Annotated[int, typer.Option(min=0, help="Words shared by neighbours.")] = 40,
        keep_versions: Annotated[int, typer.Option(min=1, help="Versions kept per alias.")] = 2,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Index a corpus; re-running embeds only new/changed passages and swaps the alias."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from flows.cli import emit
        from flows.index import index_corpus, progress_hook
        from modules.errors import SageError

        if on_error not in ("skip", "fail"):
            raise SageError(f"--on-error must be 'skip' or 'fail', not {on_error!r}")
        settings = ctx.obj.settings(collection=collection)
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
            s = index_corpus(
                str(path),
                collection=settings.collection,
                id_field=id_field,
                title_field=title_field,
                text_field=text_field,
                on_error=on_error,
                chunk_words=chunk_words,
                overlap_words=overlap_words,
                keep_versions=keep_versions,
                settings=settings,
            )
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
        emit(s, as_json, human)
