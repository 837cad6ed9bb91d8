"""`sage refresh`: the nightly dataset refresh, run once from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `refresh` command to the sage CLI."""

    @app.command("refresh")
    def refresh(
        ctx: typer.Context,
        corpus: Annotated[Path, typer.Argument(help="Corpus file or directory to re-index.")],
        dataset: Annotated[str, typer.Option(help="Published dataset name.")] = "default",
        collection: Annotated[str | None, typer.Option(help="Qdrant collection (alias).")] = None,
        n: Annotated[int, typer.Option("--n", help="Accepted items wanted.")] = 20,
        steps: Annotated[str, typer.Option(help="Target searches S.")] = "2-4",
        rounds: Annotated[int, typer.Option(help="Feedback rounds R.")] = 2,
        attempts: Annotated[int, typer.Option(help="Attempts K.")] = 4,
        max_searches: Annotated[int, typer.Option(help="Search-agent budget.")] = 10,
        generator_searches: Annotated[int, typer.Option(help="Generator budget.")] = 20,
        validate: Annotated[bool, typer.Option(help="Validate; publish the filtered copy.")] = True,
        keep_versions: Annotated[int, typer.Option(help="Published versions kept.")] = 7,
        datasets_dir: Annotated[Path, typer.Option(help="Where datasets are published.")] = Path(
            "datasets"
        ),
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Re-index, generate (new documents first), validate and publish a dataset version."""
        from flows.cli import emit
        from flows.refresh import nightly_refresh

        s = nightly_refresh(
            str(corpus), dataset=dataset, collection=collection, n=n, steps=steps,
            rounds=rounds, attempts=attempts, max_searches=max_searches,
            generator_searches=generator_searches, validate=validate,
            keep_versions=keep_versions, datasets_dir=str(datasets_dir),
            settings_overrides=ctx.obj.overrides,
        )  # fmt: skip
        emit(
            s,
            as_json,
            f"published {s['path']}: {s['items']} items ({s['new_items']} new); "
            f"{s['index']['embedded']} passages embedded",
        )
