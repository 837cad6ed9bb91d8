"""`sage search`: the top passages of the index for a query."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.options import JsonOpt, emit
from modules.settings import Settings


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to search for.")],
    collection: Annotated[
        str | None, typer.Option(help="Collection name. [SAGE_COLLECTION]")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Passages to show.")] = 3,
    mode: Annotated[str, typer.Option(help="hybrid | dense | sparse")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Show the top passages of the index for a query (id, title, score, text)."""
    from modules.index.retriever import open_retriever

    settings: Settings = ctx.obj.settings(collection=collection)
    retriever = open_retriever(settings, mode=mode, k=k)  # type: ignore[arg-type]
    hits = retriever.search(query)
    rows = [
        {
            "rank": i,
            "id": h.id,
            "doc_id": h.doc_id,
            "title": h.title,
            "score": round(h.score, 4),
            "text": h.text,
        }
        for i, h in enumerate(hits, 1)
    ]
    human = (
        "\n".join(
            f"{r['rank']}. [{r['score']}] {r['title']} ({r['id']})\n   {r['text'][:300]}"
            for r in rows
        )
        or "no passages"
    )
    emit(
        {"collection": retriever.collection, "query": query, "mode": mode, "hits": rows},
        as_json,
        human,
    )


def register(app: typer.Typer) -> None:
    """Add `search` to the sage CLI."""
    app.command("search")(search)
