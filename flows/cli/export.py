"""`sage export`: a run's verified items for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import JsonOpt, emit


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or runs/latest).")],
    fmt: Annotated[str, typer.Option("--format", help="hf | searchr1")] = "hf",
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    data_source: Annotated[
        str, typer.Option(help="data_source of every row (Search-R1 picks its reward by it).")
    ] = "sage",
    test_frac: Annotated[float, typer.Option(help="Share held out as test.parquet.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    validated: Annotated[
        bool | None,
        typer.Option(
            "--validated/--unvalidated",
            help="Export the latest validation's filtered copy / the raw dataset. "
            "Default: the filtered copy when a validation exists.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's verified items as HF-datasets parquet or the Search-R1/verl RL layout."""
    from flows.runs.export import export_run

    res = export_run(run_dir, fmt, out, data_source, test_frac, seed, validated)  # type: ignore[arg-type]
    human = "\n".join(f"{split}: {path} ({res['counts'][split]} rows)"
                      for split, path in res["paths"].items())  # fmt: skip
    emit(res, as_json, f"{human}\nfrom {res['source']}")


def register(app: typer.Typer) -> None:
    """Add `export` to the sage CLI."""
    app.command("export")(export)
