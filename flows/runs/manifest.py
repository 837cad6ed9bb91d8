"""The one manifest builder of every flow's run directory (generation, experiment and its
arms, evaluation, validation): what ran, when, with which options, settings and models."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import subprocess
from pathlib import Path
from typing import Any

ROLES = ("generator", "agent", "judge")
PACKAGES = ("prefect", "dspy", "qdrant-client", "fastembed", "polars", "xllamacpp")


def now() -> str:
    """The UTC time, ISO 8601 (a manifest's ``created``)."""
    return dt.datetime.now(dt.UTC).isoformat()


def models_of(settings: Any, roles: tuple[str, ...] = ROLES) -> dict:
    """The models a run used, by role, for its manifest."""
    return {role: settings.model_of(role) for role in roles}


def endpoints_of(settings: Any, roles: tuple[str, ...] = ROLES) -> dict:
    """Where each role's requests went (None: the provider's own API or the local model)."""
    return {role: settings.endpoint(role)[0] for role in roles}


def git_commit() -> str | None:
    """The sage checkout's commit, if it is one."""
    try:
        here = Path(__file__).resolve().parent
        cmd = ["git", "rev-parse", "HEAD"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, cwd=here)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    """The installed versions of the packages a run depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "missing"
    return out


def run_manifest(
    kind: str | None,
    run_id: str | None,
    params: Any,
    settings: Any,
    roles: tuple[str, ...] = ROLES,
    with_settings: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A run's manifest: its kind (None: a generation run, which records none), id,
    creation time, options (``params.record()``), public settings and models by role, then
    ``fields`` (collection version, plan, config ...) in the order given."""
    head: dict[str, Any] = {"kind": kind} if kind else {}
    head |= {"run_id": run_id, "created": now(), "params": params.record()}
    if with_settings:
        head["settings"] = settings.public_dict()
    return head | {"models": models_of(settings, roles)} | fields
