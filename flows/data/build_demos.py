"""The few-shot demos the small profile loads by default: a hand-written trainset of good
search-agent and generator steps on the demo corpus, compiled with DSPy's ``LabeledFewShot``
into ``flows/data/programs/small.json``.

The trainset uses only documents that are not the demo's seeds (``flows/demo.py``
``DEMO_SEEDS``): their passages are read from the corpus and shown with the renderers the
prompts use (``render_trajectory``, ``render_notes``), cut short so the demos stay cheap in
an 8k context. Rebuild after changing the trainset or a signature's fields:

    .venv/bin/python -m flows.data.build_demos   # checks, compiles, writes, prints sizes
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
from dspy.teleprompt import LabeledFewShot

from flows.data import BUNDLED_PROGRAM
from modules.programs.adapter import json_adapter
from modules.programs.agent import render_trajectory
from modules.programs.context import clip
from modules.programs.generator import render_notes
from modules.programs.program_file import save_demos
from modules.programs.reviser import render_attempt, render_research
from modules.programs.signatures import (
    ANSWER_SOURCES,
    NextStep,
    ResearchStep,
    ReviseQA,
    WriteQA,
)

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "demo" / "corpus.jsonl"
PASSAGE_CHARS = 220  # a passage in a demo trajectory
NOTE_CHARS = 260  # a note in a demo
DOC_CHARS = 420  # the seed document of a generator demo
TRACE_CHARS = 120  # a passage in a reviser demo's search trace
REVISE_NOTE_CHARS = 180  # a note in a reviser demo (the bridge fact is early)
REVISE_DOC_CHARS = 200  # the seed document of a reviser demo (its answer is early)


# A seed document written for one research and one write demo (not in the corpus, so no
# run retrieves it): its date is "the year the Imbrey Dam was completed", which only the
# dam's passage (w073, a trainset document) gives. The demo's own seed has that pattern
# with other entities; a demo shows the model what to search and where the answer is.
BRIDGE_SEED = {
    "id": "x001",
    "title": "Sull Valley Growers' Cooperative",
    "text": "The Sull Valley Growers' Cooperative is an association of fruit farmers in the "
    "orchards along the River Sull on Ilvaro. It was founded in the year the Imbrey Dam was "
    "completed, when the end of the spring floods let the growers plant the low fields, and "
    "it runs a shared packing house and cider press in the valley.",
}


def corpus() -> dict[str, dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as fh:
        return {d["id"]: d for d in map(json.loads, fh)} | {BRIDGE_SEED["id"]: BRIDGE_SEED}


def _trace(docs: dict[str, Any], searches: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "search",
            "query": q,
            "passages": [
                {
                    "id": i,
                    "title": docs[i]["title"],
                    "text": docs[i]["text"],
                    "chars": len(docs[i]["text"]),
                }
                for i in ids
            ],
        }
        for q, ids in searches
    ]


def agent_steps(docs: dict[str, Any]) -> list[dspy.Example]:
    """Three NextStep demos: a first search phrased as a question about one entity, a second
    built from what the first found, and a short answer once the passages hold it."""
    q1 = "Who was the first rector of the university from which Petra Solvaine graduated in law?"
    q2 = (
        "How many people were killed by the storm that the founding of the Tarvessan "
        "Meteorological Office was a response to?"
    )
    s1 = [("Why was the Tarvessan Meteorological Office founded?", ["w026", "w084", "w042"])]
    s2 = s1 + [("How many people did the Great Storm of 1893 kill?", ["w042", "w009", "w070"])]
    rows = [
        (
            q1,
            [],
            3,
            "I do not know yet where Petra Solvaine studied law.",
            "search",
            "Which university did Petra Solvaine graduate from in law?",
        ),
        (
            q2,
            s1,
            2,
            "The office was a response to the Great Storm of 1893; its death toll is missing.",
            "search",
            "How many people did the Great Storm of 1893 kill?",
        ),
        (q2, s2, 1, "The Great Storm of 1893 passage says it killed 212 people.", "answer", "212"),
    ]
    return [
        dspy.Example(
            question=q,
            trajectory=render_trajectory(_trace(docs, s), PASSAGE_CHARS, None),
            searches_left=left,
            reasoning=why,
            action=action,
            text=text,
        ).with_inputs("question", "trajectory", "searches_left")
        for q, s, left, why, action, text in rows
    ]


def _notes(docs: dict[str, Any], ids: list[str], chars: int | None = NOTE_CHARS) -> str:
    notes = [
        {"ref": f"P{i}", "id": d, "title": docs[d]["title"], "text": docs[d]["text"]}
        for i, d in enumerate(ids, start=1)
    ]
    return render_notes(notes, chars, None)


def research_steps(docs: dict[str, Any]) -> list[dspy.Example]:
    """Three ResearchStep demos: search an entity named in the seed document (twice: one
    whose date the seed leaves to another passage), then write."""
    rows = [
        (
            "x001",
            "date",
            ["x001"],
            2,
            "P1 says the cooperative was founded in the year the Imbrey Dam was completed "
            "but gives no year: search the dam.",
            "search",
            "Imbrey Dam",
        ),
        (
            "w024",
            "entity",
            ["w024"],
            2,
            "The seed names the Tarvessan marl; its passage may describe the bank in another way.",
            "search",
            "Tarvessan marl",
        ),
        (
            "w070",
            "date",
            ["w070", "w037"],
            1,
            "P2 says Ysolde Karrin was born in Caddow, the "
            "village by the lighthouse: enough for two linked facts.",
            "write",
            "",
        ),
    ]
    return [
        dspy.Example(
            document=clip(docs[seed]["text"], DOC_CHARS),
            target_steps="2",
            answer_type=atype,
            feedback="none",
            notes=_notes(docs, ids),
            searches_left=left,
            reasoning=why,
            action=action,
            query=query,
        ).with_inputs(
            "document", "target_steps", "answer_type", "feedback", "notes", "searches_left"
        )
        for seed, atype, ids, left, why, action, query in rows
    ]


# (seed, answer type, notes, reasoning, question, answer, plan (sub-question, sub-answer,
# passage), answer source) of each WriteQA demo below.
WRITES = [
    (
        "w070",
        "date",
        ["w070", "w037"],
        "P2: Ysolde Karrin was born in Caddow; P1: Caddow Light, east of Caddow, was "
        "completed in 1857.",
        "In what year was the lighthouse beside the home village of the swimmer Ysolde "
        "Karrin completed?",
        "1857",
        [
            ("Where was Ysolde Karrin born?", "Caddow", "P2"),
            ("When was the lighthouse by Caddow completed?", "1857", "P1"),
        ],
        "seed",
    ),
    (
        "w024",
        "entity",
        ["w024", "w059"],
        "P2: the Tarvessan marl is issued by the Bank of Tarvessa; P1: its first governor "
        "was Alsen Whitlowe.",
        "Who was the first governor of the bank that issues the Tarvessan marl?",
        "Alsen Whitlowe",
        [
            ("Which bank issues the Tarvessan marl?", "Bank of Tarvessa", "P2"),
            ("Who was the first governor of the Bank of Tarvessa?", "Alsen Whitlowe", "P1"),
        ],
        "seed",
    ),
    (
        "x001",
        "date",
        ["x001", "w073"],
        "P1: the cooperative was founded in the year the Imbrey Dam was completed; P2: "
        "the dam was completed on 14 October 1952. A solver must find both.",
        "In what year was the Sull Valley Growers' Cooperative founded?",
        "1952",
        [
            (
                "When was the Sull Valley Growers' Cooperative founded?",
                "the year the Imbrey Dam was completed",
                "P1",
            ),
            ("When was the Imbrey Dam completed?", "1952", "P2"),
        ],
        "any",
    ),
]


def write_steps(docs: dict[str, Any]) -> list[dspy.Example]:
    """Three WriteQA demos, each needing one search for a linked fact and one for the
    answer: two with the seed's entity hidden behind a fact from another passage, and last
    (nearest the model's own input) the seed's subject asked about where the seed leaves
    its date to another passage, the answer from that note."""
    return [
        dspy.Example(
            document=clip(docs[seed]["text"], DOC_CHARS),
            target_steps="2",
            answer_type=atype,
            answer_from=ANSWER_SOURCES[source],
            feedback="none",
            notes=_notes(docs, ids),
            reasoning=why,
            question=q,
            answer=a,
            plan=[{"sub_question": sq, "sub_answer": sa, "passage": p} for sq, sa, p in plan],
        ).with_inputs("document", "target_steps", "answer_type", "answer_from", "feedback", "notes")
        for seed, atype, ids, why, q, a, plan, source in WRITES
    ]


# (seed, failure, notes, research query, current (question, answer, plan), the agent's
# searches, its answer, analysis, revised question, answer, plan, answer source): the
# first takes the agent's answer and swaps the seed's name for a fact only another note
# states, so a solver searches that fact first; the second turns a one-hop question about
# the entity that dates the seed's subject into the question about the subject (its answer
# from that entity's note). Two fit small's 8k reviser prompt at full budgets; a third (a
# too-easy rewrite of Caddow Light through Ysolde Karrin's village) did not.
REVISIONS = [
    (
        "w026",
        "incorrect",
        ["w026", "w042"],
        "Tarvessan Meteorological Office",
        ("When was the Tarvessan Meteorological Office established?", "1893"),
        [("When was the Tarvessan Meteorological Office established?", ["w026"])],
        "1902",
        "1893 is the storm's year; P1 gives 1902, as the agent found. Fix the answer and "
        "hide the office behind P2, not P1: the storm was Tarvessa's deadliest disaster.",
        "In what year was the weather service established that was a response to the "
        "deadliest natural disaster in the history of Tarvessa?",
        "1902",
        [
            ("What was the deadliest natural disaster in Tarvessa?", "Great Storm of 1893", "P2"),
            ("When was the weather service created after that storm established?", "1902", "P1"),
        ],
        "seed",
    ),
    (
        "x001",
        "too_easy",
        ["x001", "w073"],
        "Imbrey Dam",
        ("When was the Imbrey Dam completed?", "1952"),
        [("When was the Imbrey Dam completed?", ["w073"])],
        "1952",
        "One search found 1952: the question names the dam. P1 says the cooperative was "
        "founded in the year the dam was completed: ask about the cooperative instead.",
        "In what year was the Sull Valley Growers' Cooperative founded?",
        "1952",
        [
            ("When was the cooperative founded?", "the year the Imbrey Dam was completed", "P1"),
            ("When was the Imbrey Dam completed?", "1952", "P2"),
        ],
        "any",
    ),
]


def _plan(plan: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"sub_question": q, "sub_answer": a, "passage": p} for q, a, p in plan]


def revise_steps(docs: dict[str, Any]) -> list[dspy.Example]:
    """Two ReviseQA demos (``REVISIONS``), one per failure: an incorrect one-hop pair
    rewritten into a bridge through a fact of another note, taking the answer the agent
    found, and a too-easy pair about a linked entity turned to the seed's subject."""
    out = []
    for seed, failure, ids, query, (q0, a0), searches, found, why, q, a, plan, src in REVISIONS:
        notes = [{"ref": f"P{i}", "id": d, "title": docs[d]["title"]} for i, d in enumerate(ids, 1)]
        research = [{"type": "search", "query": query, "passages": notes}]
        attempt = {
            "trace": _trace(docs, searches),
            "answer": found,
            "correct": failure == "too_easy",
            "n_searches": len(searches),
        }
        out.append(
            dspy.Example(
                document=clip(docs[seed]["text"], REVISE_DOC_CHARS),
                target_steps="2",
                answer_type="date",
                answer_from=ANSWER_SOURCES[src],
                failure=failure,
                current=f"Question: {q0}\nAnswer: {a0}\nPlan: {q0} -> {a0}",
                notes=_notes(docs, ids, REVISE_NOTE_CHARS),
                generator_trace=render_research(research, notes, None),
                search_trace=render_attempt(attempt, TRACE_CHARS, None),
                previous_rounds="none",
                analysis=why,
                question=q,
                answer=a,
                plan=_plan(plan),
            ).with_inputs(*ReviseQA.input_fields)
        )
    return out


TRAIN_DOCS = (
    "x001",  # BRIDGE_SEED, written for the demos
    "w009",
    "w017",
    "w024",
    "w026",
    "w027",
    "w034",
    "w037",
    "w042",
    "w059",
    "w070",
    "w073",
    "w084",
)


def compile_demos(docs: dict[str, Any]) -> dict[str, dict[str, dspy.Predict]]:
    """Each predictor compiled with LabeledFewShot on its own trainset (all its demos)."""

    def labeled(sig: type[dspy.Signature], train: list[dspy.Example]) -> dspy.Predict:
        return LabeledFewShot(k=len(train)).compile(dspy.Predict(sig), trainset=train, sample=False)

    return {
        "agent": {"step": labeled(NextStep, agent_steps(docs))},
        "generator": {
            "research": labeled(ResearchStep, research_steps(docs)),
            "write": labeled(WriteQA, write_steps(docs)),
        },
        "reviser": {"revise": labeled(ReviseQA, revise_steps(docs))},
    }


def demo_chars(predictors: dict[str, dict[str, dspy.Predict]]) -> dict[str, int]:
    """Characters the demos add to each predictor's prompt (JSON adapter messages)."""
    out = {}
    for which, preds in predictors.items():
        for name, pred in preds.items():
            inputs = {k: "" for k in pred.signature.input_fields}
            with_demos = json_adapter().format(pred.signature, demos=pred.demos, inputs=inputs)
            bare = json_adapter().format(pred.signature, demos=[], inputs=inputs)
            size = sum(len(str(m["content"])) for m in with_demos)
            out[f"{which}.{name}"] = size - sum(len(str(m["content"])) for m in bare)
    return out


def build(path: Path = BUNDLED_PROGRAM, seeds: tuple[str, ...] = ()) -> dict[str, Any]:
    """Compile the trainset and write the demos file; refuses a trainset that uses a seed."""
    used = set(TRAIN_DOCS) & set(seeds)
    if used:
        raise ValueError(f"the trainset uses demo seed documents {sorted(used)}")
    predictors = compile_demos(corpus())
    sizes = demo_chars(predictors)
    meta = {
        "made_by": "python -m flows.data.build_demos (LabeledFewShot, hand-written trainset)",
        "corpus": "flows/data/demo/corpus.jsonl",
        "train_docs": list(TRAIN_DOCS),
        "demo_prompt_chars": sizes,
    }
    save_demos(predictors, path, meta)
    return meta


if __name__ == "__main__":
    from flows.demo import DEMO_SEEDS

    print(json.dumps(build(seeds=DEMO_SEEDS), indent=1))
