"""SFT conversations from the agent's verified trajectories.

For each exported item, the fewest-search correct (and unforced) attempt of the round that
accepted it becomes one conversation, in one of two styles:

- ``searchr1``: Search-R1's own tags after Search-R1's prompt, so a model SFT'd on it speaks
  the format its RL stage expects: user = the prompt; assistant = ``<think> ... </think>``
  then ``<search> query </search>``; user = ``<information>Doc 1(Title: ...) ...
  </information>``; ...; last assistant = ``<think> ... </think>`` ``<answer> ... </answer>``.
- ``tools``: OpenAI chat messages: system, user (the question), assistant with
  ``tool_calls`` to a ``search`` function, ``tool`` results, ..., a last assistant message
  ending in "Answer: ...". The ``tools`` column holds the function's JSON schema.

Only assistant messages carry what the model should learn; the retrieved passages sit in
user / tool messages, which verl's multi-turn SFT dataset and TRL's SFTTrainer
(``assistant_only_loss``) leave out of the loss.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import polars as pl

from flows.runs.searchr1_layout import (
    SEARCH_R1_PROMPT,
    golds_of,
    render_passages,
    searchr1_question,
)
from modules.programs.attempts import Attempt, fewest_searches

Style = Literal["searchr1", "tools"]
ToolArguments = Literal["json", "object"]
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the corpus; returns the top passages for the query.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the search query"}},
            "required": ["query"],
        },
    },
}
TOOLS_SYSTEM = (
    "Answer the question. Call the search tool as often as you need and answer from the "
    "passages it returns, not from memory. End with 'Answer: ' and the short answer."
)


def sft_attempt(record: dict[str, Any] | None) -> Attempt | None:
    """The fewest-search correct attempt that answered by itself (never a forced answer),
    and whose trace ends in its answer step."""
    attempts = [Attempt.from_dict(a) for a in (record or {}).get("attempts") or []]
    usable = [
        a
        for a in attempts
        if a.correct and not a.forced and a.trace and a.trace[-1].get("type") == "answer"
    ]
    return fewest_searches(usable)


def searchr1_messages(question: str, trace: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The attempt in Search-R1's tags, user and assistant turns alternating."""
    msgs = [{"role": "user", "content": SEARCH_R1_PROMPT.format(question=question)}]
    for step in trace:
        think = f"<think> {str(step.get('reasoning') or '').strip()} </think>\n"
        if step["type"] == "search":
            msgs.append(
                {"role": "assistant", "content": f"{think}<search> {step['query']} </search>"}
            )
            info = render_passages(step.get("passages") or [])
            msgs.append({"role": "user", "content": f"<information>{info}</information>"})
        elif step["type"] == "answer":
            msgs.append(
                {"role": "assistant", "content": f"{think}<answer> {step['answer']} </answer>"}
            )
    return msgs


def tools_messages(
    question: str, trace: list[dict[str, Any]], arguments: ToolArguments = "json"
) -> list[dict[str, Any]]:
    """The attempt as OpenAI chat messages with ``search`` tool calls. ``arguments``:
    "json" = a JSON string (OpenAI's schema), "object" = a dict (what chat templates that
    ``tojson`` the arguments, e.g. Qwen2.5's, and TRL's docs expect)."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": TOOLS_SYSTEM},
        {"role": "user", "content": question},
    ]
    n = 0
    for step in trace:
        reasoning = str(step.get("reasoning") or "").strip()
        if step["type"] == "search":
            n += 1
            args: Any = {"query": step["query"]}
            call = {
                "id": f"call_{n}",
                "type": "function",
                "function": {
                    "name": "search",
                    "arguments": json.dumps(args) if arguments == "json" else args,
                },
            }
            msgs.append({"role": "assistant", "content": reasoning, "tool_calls": [call]})
            info = render_passages(step.get("passages") or [])
            msgs.append({"role": "tool", "tool_call_id": f"call_{n}", "content": info})
        elif step["type"] == "answer":
            answer = f"Answer: {step['answer']}"
            text = f"{reasoning}\n\n{answer}" if reasoning else answer
            msgs.append({"role": "assistant", "content": text})
    return msgs


def sft_row(
    item: dict[str, Any], record: dict[str, Any] | None, style: Style, arguments: ToolArguments
) -> dict[str, Any] | None:
    """One item's conversation row, or None when no attempt qualifies."""
    best = sft_attempt(record)
    if best is None:
        return None
    q = searchr1_question(item["question"])
    row: dict[str, Any] = {
        "id": item["id"],
        "question": q,
        "golden_answers": golds_of(item),
        "n_searches": best.n_searches,
        "target_steps": item.get("target_steps"),
    }
    if style == "searchr1":
        row["messages"] = searchr1_messages(q, best.trace)
    else:
        row["messages"] = tools_messages(q, best.trace, arguments)
        row["tools"] = [SEARCH_TOOL]
    return row


def sft_schema(style: Style, arguments: ToolArguments = "json") -> dict[str, pl.DataType]:
    """The parquet schema of the SFT rows (explicit, so every file has the same columns)."""
    s = pl.String()
    schema: dict[str, pl.DataType] = {
        "id": s,
        "question": s,
        "golden_answers": pl.List(s),
        "n_searches": pl.Int64(),
        "target_steps": pl.Int64(),
    }
    if style == "searchr1":
        schema["messages"] = pl.List(pl.Struct({"role": s, "content": s}))
        return schema
    args = s if arguments == "json" else pl.Struct({"query": s})
    call = pl.Struct({"id": s, "type": s, "function": pl.Struct({"name": s, "arguments": args})})
    schema["messages"] = pl.List(
        pl.Struct({"role": s, "content": s, "tool_calls": pl.List(call), "tool_call_id": s})
    )
    query = pl.Struct({"type": s, "description": s})
    params = pl.Struct(
        {"type": s, "properties": pl.Struct({"query": query}), "required": pl.List(s)}
    )
    fn = pl.Struct({"name": s, "description": s, "parameters": params})
    schema["tools"] = pl.List(pl.Struct({"type": s, "function": fn}))
    return schema
