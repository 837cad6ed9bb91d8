"""Deterministic seed planning: which documents, in which order, with which target S."""

from __future__ import annotations

import random
import re
from collections.abc import Collection
from typing import Any

from modules.errors import SageError
from modules.programs.signatures import ANSWER_TYPES

ANY_STEPS = "any"  # no target S: the generator is told "multiple" searches (the paper's
# "A_gen w/o S" row) and a pair is accepted on pass@K alone


def parse_steps(spec: str) -> dict[int | None, int | None]:
    """'2-5' -> {2..5: None} (uniform draw); '3' -> {3: None}; '2:10,4:5' -> per-S quotas;
    'any' -> {None: None} (no target)."""
    spec = spec.strip()
    if spec.lower() == ANY_STEPS:
        return {None: None}
    if re.fullmatch(r"\d+", spec):
        values = {int(spec): None}
    elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", spec):
        lo, hi = int(m[1]), int(m[2])
        if lo > hi:
            raise SageError(f"--steps {spec!r}: the range is empty")
        values = dict.fromkeys(range(lo, hi + 1))
    elif re.fullmatch(r"\d+:\d+(\s*,\s*\d+:\d+)*", spec):
        values = {int(s): int(q) for s, q in (p.split(":") for p in spec.split(","))}
    else:
        raise SageError(f"--steps {spec!r}: use N, LO-HI, S:COUNT,S:COUNT or any")
    if any(s < 1 or s > 10 for s in values):
        raise SageError(f"--steps {spec!r}: target searches must be between 1 and 10")
    return values


def parse_answer_types(spec: str) -> dict[str, float]:
    """'entity,date,number' -> equal weights; 'entity:2,number:1' -> weights 2:1."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, w = part.partition(":")
        if name not in ANSWER_TYPES:
            raise SageError(f"--answer-types {spec!r}: {name!r} is not one of {ANSWER_TYPES}")
        try:
            weights[name] = float(w) if w else 1.0
        except ValueError:
            raise SageError(f"--answer-types {spec!r}: weight {w!r} is not a number") from None
        if weights[name] < 0:
            raise SageError(f"--answer-types {spec!r}: weights must be >= 0")
    if not weights or not any(weights.values()):
        raise SageError(f"--answer-types {spec!r}: give at least one type with a weight > 0")
    return weights


def plan_seeds(
    doc_ids: list[str],
    steps: dict[int | None, int | None],
    n_seeds: int,
    seed: int,
    prefer: Collection[str] | None = None,
    answer_types: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """An ordered seed plan; the same inputs always give the same plan.

    Each seed also draws the type of its answer (entity, date or number, weighted by
    ``answer_types``; uniform by default, as the SAGE code does) from its own seeded stream,
    so adding types leaves the documents and targets of a plan as they were.

    With quotas, targets follow the quotas (in a shuffled order) and ``n_seeds`` is ignored
    beyond them; otherwise each seed draws S uniformly from the range. Documents are drawn
    without replacement and reused only when the corpus is smaller than the plan. Documents
    in ``prefer`` (e.g. new or changed ones) come first, in a seeded order.
    """
    if not doc_ids:
        raise SageError("the collection has no documents to seed from")
    rng = random.Random(seed)
    quotas = {s: q for s, q in steps.items() if q is not None}
    if quotas:
        targets = [s for s, q in sorted(quotas.items()) for _ in range(q)]
        rng.shuffle(targets)
    else:
        choices = sorted(steps, key=lambda s: -1 if s is None else s)
        targets = [rng.choice(choices) for _ in range(n_seeds)]
    wanted = set(prefer or ()) & set(doc_ids)
    first = sorted(wanted)
    rest = sorted(set(doc_ids) - wanted)
    rng.shuffle(first)
    rng.shuffle(rest)
    order = first + rest
    types = answer_types or dict.fromkeys(ANSWER_TYPES, 1.0)
    names = sorted(types)
    type_rng = random.Random(f"{seed}:answer_type")
    drawn = type_rng.choices(names, weights=[types[n] for n in names], k=len(targets))
    return [
        {
            "seed_id": f"s{i:05d}",
            "doc_id": order[i % len(order)],
            "target_steps": target,
            "answer_type": answer_type,
        }
        for i, (target, answer_type) in enumerate(zip(targets, drawn, strict=True))
    ]
