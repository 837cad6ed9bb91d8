"""The CLI's building blocks: commands made from a flow's parameter model (each field an
option or a positional argument, with its default and help from the model, so an option is
declared once), the context every command gets, and how a command prints its result."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.engine.params import FlowParams
from modules.settings import Settings, load_settings

KW = inspect.Parameter.KEYWORD_ONLY
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]


@dataclass
class Ctx:
    """What the global options set: setting overrides for every command, and the log file
    a flow command's Prefect log goes to (routed before the command runs)."""

    overrides: dict[str, Any]
    log_path: Path | None = None

    def settings(self, **more: Any) -> Settings:
        return load_settings(**{**self.overrides, **more})


def emit(summary: dict[str, Any], as_json: bool, human: str) -> None:
    """Print either the JSON summary or the human text."""
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else human)


def say(message: str) -> None:
    """A progress or status line on stderr."""
    typer.echo(message, err=True)


def model_parameters(model: type[FlowParams]) -> list[inspect.Parameter]:
    """The Typer parameters of a model's fields (fields marked ``cli: False`` left out)."""
    out = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False:
            continue
        default = ... if field.is_required() else field.default
        if extra.get("argument"):
            spec = typer.Argument(default, help=field.description or "")
        else:
            flags = [extra["flag"]] if extra.get("flag") else []
            spec = typer.Option(default, *flags, help=field.description or "")
        out.append(inspect.Parameter(name, KW, default=spec, annotation=field.annotation))
    return out


def open_api(ctx: typer.Context) -> None:
    """A temporary Prefect API for this command (unless ``PREFECT_API_URL`` names one),
    stopped when the command ends: opened once its options are valid, so a bad option is
    reported at once, without an API started and stopped for nothing."""
    from flows.engine.api_server import temporary_api

    ctx.with_resource(temporary_api(ctx.obj.log_path))


def add_flow_command(
    app: typer.Typer,
    name: str,
    model: type[FlowParams],
    run: Callable[..., None],
    extra: dict[str, tuple[Any, Any]] | None = None,
) -> None:
    """Register ``sage NAME``: options from ``model`` plus ``extra`` ({name: (annotation,
    default)}, e.g. ``--json``); calls ``run(ctx, params, **extra_values)``."""
    extra = {"as_json": (JsonOpt, False), **(extra or {})}
    params = [inspect.Parameter("ctx", KW, annotation=typer.Context)]
    params += model_parameters(model)
    params += [inspect.Parameter(k, KW, default=d, annotation=a) for k, (a, d) in extra.items()]

    def command(ctx: typer.Context, **values: Any) -> None:
        rest = {k: values.pop(k) for k in extra}
        params = model.build(**values)
        open_api(ctx)
        run(ctx, params, **rest)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = run.__doc__
    command.__name__ = f"{name}_command"
    app.command(name)(command)
