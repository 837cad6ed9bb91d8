"""The OpenAI-style chat request and response every sage engine speaks (the in-process
llama.cpp server and self-hosted OpenAI-compatible servers)."""

from __future__ import annotations

from typing import Any

from dspy.lm15 import Message, Response, TextPart, Usage


def schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema inside an OpenAI-style response_format, if any."""
    if not isinstance(response_format, dict):
        return None
    if "json_schema" in response_format:
        inner = response_format["json_schema"]
        return inner.get("schema", inner) if isinstance(inner, dict) else None
    return response_format.get("schema")


def cap_strings(schema: Any, max_chars: int) -> Any:
    """Give every string property without a maxLength one, so a small model cannot ramble."""
    if isinstance(schema, dict):
        out = {k: cap_strings(v, max_chars) for k, v in schema.items()}
        if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
            out["maxLength"] = max_chars
        return out
    if isinstance(schema, list):
        return [cap_strings(v, max_chars) for v in schema]
    return schema


def cap_fields(schema: Any, field_chars: dict[str, int]) -> Any:
    """Give the string properties named in ``field_chars`` that maxLength (at any depth, so
    a plan step's ``sub_answer`` too), unless the schema already bounds them tighter."""
    if isinstance(schema, list):
        return [cap_fields(v, field_chars) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: cap_fields(v, field_chars) for k, v in schema.items()}
    props = out.get("properties")
    if isinstance(props, dict):
        for name, prop in props.items():
            cap = field_chars.get(name)
            text = isinstance(prop, dict) and prop.get("type") == "string"
            if cap and text and "enum" not in prop:
                prop["maxLength"] = min(cap, prop.get("maxLength", cap))
    return out


def chat_body(
    request: Any, max_string_chars: int | None = None, field_chars: dict[str, int] | None = None
) -> dict[str, Any]:
    """The chat-completions body for a DSPy request: messages, sampling options, and the
    signature's JSON schema as ``response_format`` (the fields named in ``field_chars``
    capped at their length, every other string at ``max_string_chars``, so a small model
    cannot ramble)."""
    cfg = request.config
    body: dict[str, Any] = {
        "messages": _messages(request),
        "max_tokens": cfg.max_tokens or 512,
        "temperature": 0.0 if cfg.temperature is None else cfg.temperature,
    }
    if cfg.stop:
        body["stop"] = list(cfg.stop)
    if cfg.seed is not None:
        body["seed"] = cfg.seed
    schema = schema_of(cfg.response_format) if cfg.response_format else None
    if schema:
        if field_chars:
            schema = cap_fields(schema, field_chars)
        if max_string_chars:
            schema = cap_strings(schema, max_string_chars)
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    elif cfg.response_format:
        body["response_format"] = {"type": "json_object"}
    return body


def chat_response(result: dict[str, Any], model: str) -> Response:
    """A chat-completions answer as DSPy's Response."""
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    return Response(
        id=result.get("id"),
        model=model,
        message=Message.assistant([TextPart((choice.get("message") or {}).get("content") or "")]),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        usage=Usage(
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        ),
    )


def _messages(request: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if request.system is not None:
        system = request.system
        text = system if isinstance(system, str) else "".join(p.text for p in system)
        out.append({"role": "system", "content": text})
    out.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return out
