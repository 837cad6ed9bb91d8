"""Optimized program files: the saved DSPy state of one SAGE sub-module (or of a whole Sage).

A sub-module file is ``<sub-module>.save(path)`` plus a ``"sage_module"`` key naming it
(``agent``, ``generator`` or ``reviser``); a sidecar ``<stem>.meta.json`` with a ``"module"``
key works too. A demos file (``"sage_demos"``: sub-module -> predictor -> DSPy state, as
``save_demos`` writes it) gives only few-shot demos: loading it keeps the signatures'
instructions. A file with none of these is the state of a whole Sage program.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy

from modules.errors import SageError

MODULE_KEY = "sage_module"
DEMOS_KEY = "sage_demos"
# The predictors each sub-module owns (the reviser's generator belongs to the generator).
OWNED: dict[str, tuple[str, ...]] = {
    "agent": ("step", "final"),
    "generator": ("research", "write"),
    "reviser": ("revise",),
}


def meta_path(path: Path | str) -> Path:
    """``programs/agent-X.json`` -> ``programs/agent-X.meta.json``."""
    return Path(path).with_suffix(".meta.json")


def save_program(module: dspy.Module, which: str, path: Path) -> Path:
    """Save ``module`` (the ``which`` sub-module) as a program file tagged with its name."""
    if which not in OWNED:
        raise SageError(f"unknown module {which!r}: use one of {', '.join(OWNED)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    module.save(str(path))
    state = json.loads(path.read_text())
    state[MODULE_KEY] = which
    path.write_text(json.dumps(state, indent=2) + "\n")
    return path


def program_module(path: Path, state: dict[str, Any]) -> str | None:
    """Which sub-module a program file holds (None = a whole Sage program)."""
    which = state.get(MODULE_KEY)
    meta = meta_path(path)
    if which is None and meta.exists():
        try:
            which = json.loads(meta.read_text()).get("module")
        except json.JSONDecodeError as exc:
            raise SageError(f"{meta}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if which is not None and which not in OWNED:
        raise SageError(f"{path}: unknown module {which!r} (use {', '.join(OWNED)})")
    return which


def load_predictors(
    module: dspy.Module, names: list[str] | tuple[str, ...], state: dict[str, Any], path: Path
) -> None:
    """Load the named predictors of ``module`` from ``state``, in place.

    (``Module.load_state`` first loads a deep copy, which breaks on a Sage: its copy no
    longer shares the generator between ``generator`` and ``reviser``.)
    """
    predictors = dict(module.named_predictors())
    for name in names:
        if name not in state or name not in predictors:
            raise SageError(f"{path}: no state for {name!r}: not a program file of this module")
        try:
            predictors[name].load_state(state[name])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SageError(f"{path}: invalid state for {name!r} ({exc!r})") from exc


def save_demos(
    predictors: dict[str, dict[str, dspy.Predict]], path: Path, meta: dict[str, Any]
) -> Path:
    """Save compiled predictors (sub-module -> predictor name -> Predict) as a demos file
    with ``meta`` (how it was made)."""
    for which, preds in predictors.items():
        unknown = set(preds) - set(OWNED.get(which, ()))
        if unknown:
            raise SageError(f"{which!r} owns no predictor {sorted(unknown)}: see OWNED")
    state = {
        DEMOS_KEY: {w: {n: p.dump_state() for n, p in ps.items()} for w, ps in predictors.items()},
        "meta": meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1, ensure_ascii=False) + "\n")
    return path


def load_demos(sage: Any, state: dict[str, Any], path: Path) -> str:
    """Set the few-shot demos of a demos file's predictors (their instructions stay the
    signatures'); returns ``demos:<sub-modules>``."""
    parts = state[DEMOS_KEY]
    if not isinstance(parts, dict):
        raise SageError(f"{path}: {DEMOS_KEY!r} must map sub-modules to predictors")
    for which, preds in parts.items():
        if which not in OWNED or not isinstance(preds, dict):
            raise SageError(f"{path}: unknown module {which!r} (use {', '.join(OWNED)})")
        owned = dict(getattr(sage, which).named_predictors())
        for name, pstate in preds.items():
            demos = pstate.get("demos") if isinstance(pstate, dict) else None
            if name not in owned or not isinstance(demos, list):
                raise SageError(f"{path}: no demos for {which}.{name}")
            owned[name].demos = [dspy.Example(**d) for d in demos]
    return "demos:" + ",".join(parts)


def load_program(sage: Any, path: Path | str) -> str:
    """Load a program file into a Sage module; returns what was loaded (a module name or
    ``sage``). A sub-module file goes into ``sage.agent``, ``sage.generator`` or
    ``sage.reviser``; any other file is loaded into the whole program."""
    path = Path(path)
    if not path.exists():
        raise SageError(f"--program {path}: no such file")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SageError(f"--program {path}: not a JSON program file ({exc})") from exc
    if not isinstance(state, dict):
        raise SageError(f"--program {path}: not a DSPy program file")
    if DEMOS_KEY in state:
        return load_demos(sage, state, path)
    which = program_module(path, state)
    if which is None:
        load_predictors(sage, [n for n, _ in sage.named_predictors()], state, path)
        return "sage"
    load_predictors(getattr(sage, which), OWNED[which], state, path)
    return which
