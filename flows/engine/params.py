"""One parameter model per flow: the single source of its options. The CLI builds its
command from the model's fields, the flow takes the model (Prefect validates it), the
manifest records it and a resumed run compares it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.config import SageConfig, build_config
from modules.errors import SageError

# The options several flows share, each declared once (type, bounds, help) and reused with
# the flow's own default (``max_searches: MaxSearches = 10``); a flow whose help says more
# gives it with ``option(default, help)``, keeping the type and bounds. A flow that needs a
# stricter bound declares a plain type: pydantic keeps the annotated ``ge`` over the field's.
Collection = Annotated[str | None, Field(description="Collection to search [SAGE_COLLECTION].")]
Steps = Annotated[str, Field(description="Target searches S.")]
Rounds = Annotated[int, Field(ge=0, description="Feedback rounds R.")]
Attempts = Annotated[int, Field(ge=1, description="Search-agent attempts K.")]
MaxSearches = Annotated[int, Field(ge=0, description="Search-agent budget.")]
RunMaxSearches = Annotated[int | None, Field(ge=0, description="Search-agent budget.")]
RunAttempts = Annotated[int | None, Field(ge=1, description="Search-agent attempts K.")]
GeneratorSearches = Annotated[int, Field(ge=0, description="Generator search budget.")]
AttemptWorkers = Annotated[int, Field(ge=1, description="K attempts run at once.")]
Against = Annotated[
    list[str], Field(description="Eval file/folder to decontaminate against (repeatable).")
]
Tag = Annotated[bool, Field(description="LLM-tag failure causes and reasoning types.")]
RunId = Annotated[str | None, Field(description="Run id; re-use it to resume.")]
# the loop knobs a flow's options may set in its SageConfig (modules/config.py)
CONFIG_KNOBS = (
    "attempts",
    "rounds",
    "strategy",
    "max_searches",
    "generator_searches",
    "attempt_workers",
    "keep_unverified",
    "answer_source",
)


class FlowParams(BaseModel):
    """Base of the flows' parameter models. ``RESUME_KEYS``: the fields a resumed run must
    keep (a run id re-used with another value is refused)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    RESUME_KEYS: ClassVar[tuple[str, ...]] = ()
    # the options this flow hands on unchanged to the flow it runs (refresh, demo: generate)
    SHARES: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, **values: Any) -> Any:
        """The model from option values; a bad value is one SageError naming the option."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SageError(options_error(exc)) from None

    def record(self) -> dict[str, Any]:
        """What the manifest keeps."""
        return self.model_dump(mode="json")

    def config_knobs(self) -> dict[str, Any]:
        """The SAGE loop knobs this flow's options set (its fields named in CONFIG_KNOBS)."""
        return {k: getattr(self, k) for k in CONFIG_KNOBS if k in type(self).model_fields}

    def sage_config(self, settings: Any) -> SageConfig:
        """The flow's SAGE configuration: the settings' profile and knobs with this flow's
        loop options on top (the one place a flow's options become a SageConfig)."""
        return build_config(settings, **self.config_knobs())


def options_error(exc: ValidationError) -> str:
    """'--max-searches: Input should be greater than or equal to 0; ...'"""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        flag = f"--{name.replace('_', '-')}: " if name else ""
        parts.append(f"{flag}{err['msg']}")
    return "; ".join(parts)


def option(default: Any = None, help: str = "", **kw: Any) -> Any:
    """A field shown as a CLI option (``--name``); ``flag`` names another spelling; no
    ``help``: the shared option type's."""
    extra = {k: kw.pop(k) for k in ("flag",) if k in kw}
    if help:
        kw["description"] = help
    return Field(default, json_schema_extra=extra or None, **kw)


def argument(help: str = "", **kw: Any) -> Any:
    """A required field shown as a CLI positional argument."""
    return Field(..., description=help, json_schema_extra={"argument": True}, **kw)


def hidden(default: Any = None, **kw: Any) -> Any:
    """A field the flow takes but the CLI does not show (set by other flows)."""
    return Field(default, json_schema_extra={"cli": False}, **kw)
