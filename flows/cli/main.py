"""The `sage` command line: global options, the subcommands of flows/cli/, and one line on
stderr for a failure."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.options import Ctx, say
from modules.errors import SageError

try:  # Typer >= 0.24 vendors Click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on the click package
    from click.exceptions import NoArgsIsHelpError, UsageError
from modules.model_store import ModelVerificationError

LOG: dict[str, Path | None] = {"path": None}  # this command's log file, once routed
# commands that run Prefect flows: their log is routed to a file, and once their options
# are valid they get a temporary Prefect API that dies with sage (options.open_api)
FLOW_COMMANDS = {
    "index",
    "generate",
    "demo",
    "validate",
    "evaluate",
    "optimize",
    "refresh",
    "experiment",
}
# flows/cli/<part>.py registers its commands; a command that runs no flow loads only its own
# part (no Prefect, no flows: `sage config` starts in 2 s instead of 4)
PARTS = "models generate index evaluate optimize refresh export search judge experiment".split()
LIGHT = {name: name for name in ("models", "export", "search", "judge")} | {"config": "models"}
FLAGS = {"--verbose", "-v", "--help"}  # the global options that take no value


def _global(
    ctx: typer.Context,
    lm: Annotated[
        str | None, typer.Option(help="Generator LM: 'local' or LiteLLM string. [SAGE_LM]")
    ] = None,
    agent_lm: Annotated[str | None, typer.Option(help="Search-agent LM. [SAGE_AGENT_LM]")] = None,
    judge_lm: Annotated[str | None, typer.Option(help="Judge LM. [SAGE_JUDGE_LM]")] = None,
    api_base: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL of every served role. [SAGE_API_BASE]"),
    ] = None,
    generator_api_base: Annotated[
        str | None, typer.Option(help="The generator's server. [SAGE_GENERATOR_API_BASE]")
    ] = None,
    agent_api_base: Annotated[
        str | None, typer.Option(help="The search agent's server. [SAGE_AGENT_API_BASE]")
    ] = None,
    judge_api_base: Annotated[
        str | None, typer.Option(help="The judge's server. [SAGE_JUDGE_API_BASE]")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="paper (served/API models) | small (the local model). [SAGE_PROFILE]"),
    ] = None,
    qdrant: Annotated[
        str | None, typer.Option(help="Embedded path or server URL. [SAGE_QDRANT]")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory. [SAGE_DATA_DIR]")] = None,
    retriever: Annotated[
        str | None,
        typer.Option(help="qdrant, or a Search-R1 retrieval server URL. [SAGE_RETRIEVER]"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show Prefect's log on the console.")
    ] = False,
) -> None:
    """Global options apply to every subcommand (put them before it)."""
    ctx.obj = Ctx(
        dict(
            lm=lm,
            agent_lm=agent_lm,
            judge_lm=judge_lm,
            api_base=api_base,
            generator_api_base=generator_api_base,
            agent_api_base=agent_api_base,
            judge_api_base=judge_api_base,
            profile=profile,
            qdrant=qdrant,
            data_dir=data_dir,
            retriever=retriever,
        )
    )
    if ctx.invoked_subcommand in FLOW_COMMANDS and "--help" not in sys.argv:
        from flows.engine.logs import route_logs

        LOG["path"] = ctx.obj.log_path = route_logs(ctx.obj.settings().data_dir, verbose)
        if verbose:
            say(f"sage: log file {LOG['path']}")


def subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (sage's arguments), past the global options."""
    words = iter(argv)
    for word in words:
        if word in FLAGS or word.startswith("--") and "=" in word:
            continue
        if word.startswith("-"):
            next(words, None)  # the option's value
            continue
        return word
    return None


def make_app(sub: str | None = None) -> typer.Typer:
    """The command line with every command, or with only ``sub``'s part when ``sub`` runs
    no flow."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        help="sage: difficulty-controlled deep-search QA generation with execution feedback.",
    )
    app.callback()(_global)
    for part in [LIGHT[sub]] if sub in LIGHT else PARTS:
        importlib.import_module(f"flows.cli.{part}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``flows.cli.main.app``: the command line with every command (for tests, tools)."""
    if name == "app":
        return make_app()
    raise AttributeError(name)


def main() -> None:
    """Console entry point: one line on stderr and a non-zero exit on failure.

    Expected failures print `sage: error: <reason>` (`<file>:<line>: <field>: <reason>`
    where those apply) as the last and only line on stderr and exit 1, Prefect's log of
    them going to the log file; a usage error (an unknown option, a bad choice) is one such
    line too, and exits 2; a bug prints its traceback and where the full log is (exit 1);
    Ctrl-C exits 130 and SIGTERM 143 at once (finished rounds are checkpointed).
    """
    try:
        code = make_app(subcommand(sys.argv[1:]))(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except NoArgsIsHelpError as exc:  # bare `sage` or `sage models`: the help, as Click does
        typer.echo(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(2)
    except UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "sage"
        typer.echo(f"sage: error: {one_line(exc.format_message())} (see {cmd} --help)", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("sage: interrupted", err=True)
        sys.exit(130)
    except (SageError, ModelVerificationError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"sage: error: {one_line(exc)}", err=True)
        sys.exit(1)
    except Exception:  # a bug: show it, and where the whole log is
        import traceback

        traceback.print_exc()
        where = f"; full log: {LOG['path']}" if LOG["path"] else ""
        typer.echo(f"sage: unexpected error (a bug){where}", err=True)
        sys.exit(1)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, shortened in the middle if it is very long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else f"{text[: limit - 60]} … {text[-55:]}"


if __name__ == "__main__":
    main()
