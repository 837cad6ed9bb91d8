"""`sage refresh`: the nightly dataset refresh, run once from the command line."""

from __future__ import annotations

import typer

from flows.cli.options import add_flow_command, emit
from flows.refresh import RefreshParams


def refresh(ctx: typer.Context, params: RefreshParams, as_json: bool) -> None:
    """Re-index, generate (new documents first), validate and publish a dataset version."""
    from flows.refresh import nightly_refresh

    s = nightly_refresh(params, ctx.obj.overrides)
    emit(
        s,
        as_json,
        f"published {s['path']}: {s['items']} items ({s['new_items']} new); "
        f"{s['index']['embedded']} passages embedded",
    )


def register(app: typer.Typer) -> None:
    """Add the `refresh` command to the sage CLI."""
    add_flow_command(app, "refresh", RefreshParams, refresh)
