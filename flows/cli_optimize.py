"""`sage optimize`: DSPy optimization of the search agent, generator or reviser."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `optimize` command to the sage CLI."""

    @app.command("optimize")
    def optimize(
        ctx: typer.Context,
        module: Annotated[str, typer.Option(help="agent | generator | reviser")],
        runs: Annotated[
            list[Path] | None, typer.Option(help="A previous run directory (repeatable).")
        ] = None,
        more_runs: Annotated[
            list[Path] | None,
            typer.Argument(metavar="RUN_DIR", help="More run directories (--runs A B C)."),
        ] = None,
        qa: Annotated[
            list[Path] | None,
            typer.Option(
                help="A QA set to train/score the agent on (repeatable); needs "
                "--collection when no --runs."
            ),
        ] = None,  # fmt: skip
        qa_format: Annotated[
            str, typer.Option(help="Format of --qa: sage | hotpotqa | musique | qa.")
        ] = "qa",
        optimizer: Annotated[str, typer.Option(help="bootstrap | mipro | gepa")] = "bootstrap",
        dev_frac: Annotated[float, typer.Option(help="Held-out dev fraction.")] = 0.3,
        seed: Annotated[int, typer.Option(help="Split and optimizer seed.")] = 0,
        max_train: Annotated[int | None, typer.Option(help="At most N train examples.")] = None,
        max_dev: Annotated[int | None, typer.Option(help="At most N dev examples.")] = None,
        collection: Annotated[
            str | None, typer.Option(help="Qdrant collection (default: the runs').")
        ] = None,
        out_dir: Annotated[Path, typer.Option(help="Where program files go.")] = Path("programs"),
        attempts: Annotated[int, typer.Option(help="Agent attempts K verifying a pair.")] = 1,
        max_searches: Annotated[int, typer.Option(help="Search-agent budget.")] = 10,
        generator_searches: Annotated[int, typer.Option(help="Generator search budget.")] = 20,
        max_demos: Annotated[int, typer.Option(help="Bootstrapped demos per predictor.")] = 2,
        trials: Annotated[int, typer.Option(help="MIPROv2 trials / GEPA iterations.")] = 4,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Optimize a SAGE module on previous runs (or the agent on QA sets); writes
        OUT_DIR/<module>-<time>.json."""
        from flows.cli import emit
        from flows.optimize import OptimizeParams, optimize_module

        params = OptimizeParams(
            module=module, runs=[str(r) for r in [*(runs or []), *(more_runs or [])]],
            qa=[str(q) for q in qa or []], qa_format=qa_format, optimizer=optimizer,
            dev_frac=dev_frac, seed=seed, max_train=max_train,
            max_dev=max_dev, collection=collection, out_dir=str(out_dir), attempts=attempts,
            max_searches=max_searches, generator_searches=generator_searches,
            max_demos=max_demos, trials=trials,
        )  # fmt: skip
        params.validate()  # fail before Prefect starts
        s = optimize_module(**asdict(params), settings_overrides=ctx.obj.overrides)
        b, a = s["dev_score_before"], s["dev_score_after"]
        change = "no change" if a == b else f"{a - b:+.3f}"
        human = (
            f"program: {s['program']}\n"
            f"{s['module']} optimized with {s['optimizer']} on {s['train_size']} train / "
            f"{s['dev_size']} dev examples: dev score {b} -> {a} ({change})"
        )
        emit(s, as_json, human)
