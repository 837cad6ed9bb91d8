"""One parameter model per flow: the single source of its options. The CLI builds its
command from the model's fields, the flow takes the model (Prefect validates it), the
manifest records it and a resumed run compares it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modules.errors import SageError


class FlowParams(BaseModel):
    """Base of the flows' parameter models. ``RESUME_KEYS``: the fields a resumed run must
    keep (a run id re-used with another value is refused)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    RESUME_KEYS: ClassVar[tuple[str, ...]] = ()

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


def options_error(exc: ValidationError) -> str:
    """'--max-searches: Input should be greater than or equal to 0; ...'"""
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        flag = f"--{name.replace('_', '-')}: " if name else ""
        parts.append(f"{flag}{err['msg']}")
    return "; ".join(parts)


def option(default: Any = None, help: str = "", **kw: Any) -> Any:
    """A field shown as a CLI option (``--name``); ``flag`` names another spelling."""
    extra = {k: kw.pop(k) for k in ("flag",) if k in kw}
    return Field(default, description=help, json_schema_extra=extra or None, **kw)


def argument(help: str = "", **kw: Any) -> Any:
    """A required field shown as a CLI positional argument."""
    return Field(..., description=help, json_schema_extra={"argument": True}, **kw)


def hidden(default: Any = None, **kw: Any) -> Any:
    """A field the flow takes but the CLI does not show (set by other flows)."""
    return Field(default, json_schema_extra={"cli": False}, **kw)
