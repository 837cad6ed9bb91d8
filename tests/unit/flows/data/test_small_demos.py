"""What the small profile gives the local model and a served model never gets: JSON-schema
field caps the local engine enforces, the bundled few-shot demos (compiled from the
trainset on the demo corpus, loaded by default, still fitting an 8k context), and the
pinned local model per role."""

from __future__ import annotations

import json
from itertools import pairwise
from types import SimpleNamespace

import dspy
import pytest

from flows.data import build_demos
from flows.demo import DEMO_MODELS, DEMO_SEEDS
from modules.config import CHARS_PER_TOKEN, build_config, profile_config
from modules.errors import SageError
from modules.llm.chat_body import cap_fields, chat_body
from modules.llm.lm import lm_config
from modules.programs.adapter import json_adapter
from modules.programs.agent import SearchAgent, render_trajectory
from modules.programs.generator import Generator
from modules.programs.program_file import load_program
from modules.programs.reviser import Reviser
from modules.programs.signatures import NextStep, ReviseQA, WriteQA
from modules.settings import load_settings

SERVED = {"lm": "openai/stub", "api_base": "http://127.0.0.1:9/v1"}
SMALL_CAPS = profile_config("small").field_chars


@pytest.fixture(autouse=True)
def _no_sage_env(monkeypatch, tmp_path):
    for key in [k for k in __import__("os").environ if k.startswith("SAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SAGE_CONFIG", str(tmp_path / "absent.toml"))


def _schema(sig: type[dspy.Signature]) -> dict:
    """The response_format schema DSPy's JSON adapter sends for a signature."""
    from dspy.adapters.json_adapter import _get_structured_outputs_response_format

    fmt = _get_structured_outputs_response_format(sig)
    return fmt.model_json_schema() if hasattr(fmt, "model_json_schema") else fmt


def test_field_caps_reach_nested_plan_steps_and_spare_enums():
    capped = cap_fields(_schema(WriteQA), SMALL_CAPS)
    props = capped["properties"]
    assert props["question"]["maxLength"] == 240 and props["answer"]["maxLength"] == 60
    step = next(iter(capped["$defs"].values()))["properties"]
    assert step["sub_answer"]["maxLength"] == 60 and step["passage"]["maxLength"] == 3
    action = cap_fields(_schema(NextStep), SMALL_CAPS)["properties"]["action"]
    assert "maxLength" not in action and action["enum"] == ["search", "answer"]
    assert cap_fields({"properties": {"text": {"type": "string", "maxLength": 50}}},
                      {"text": 120})["properties"]["text"]["maxLength"] == 50  # fmt: skip


def test_chat_body_sends_the_caps_only_when_given():
    sig_format = {"type": "json_schema", "json_schema": {"schema": _schema(NextStep)}}
    cfg = SimpleNamespace(max_tokens=64, temperature=0.0, stop=None, seed=None,
                          response_format=sig_format)  # fmt: skip
    request = SimpleNamespace(config=cfg, system=None, messages=[])
    props = chat_body(request, 400, SMALL_CAPS)["response_format"]["json_schema"]["schema"]
    assert props["properties"]["text"]["maxLength"] == 120
    assert props["properties"]["reasoning"]["maxLength"] == 240
    plain = chat_body(request, 400)["response_format"]["json_schema"]["schema"]
    assert plain["properties"]["text"]["maxLength"] == 400


def test_small_gets_caps_demos_and_a_served_model_none():
    small = lm_config(load_settings(), "agent")
    assert small.field_chars == SMALL_CAPS and small.local_model == "llm"
    assert build_config(load_settings()).bundled_program
    paper = build_config(load_settings(**SERVED))
    assert not paper.bundled_program and paper.field_chars is None
    assert lm_config(load_settings(**SERVED), "agent").field_chars is None


def test_local_model_per_role_and_a_bad_name_is_one_line():
    settings = load_settings(local_models={"generator": "llm15"})
    assert lm_config(settings, "generator").local_model == "llm15"
    assert lm_config(settings, "agent").local_model == "llm"
    with pytest.raises(SageError, match="local_models: 'agent': 'gpt'"):
        lm_config(load_settings(local_models={"agent": "gpt"}), "agent")
    assert set(DEMO_MODELS.values()) == {"llm15"}


def test_the_bundled_file_is_what_the_build_script_writes(tmp_path):
    out = tmp_path / "small.json"
    build_demos.build(out, seeds=DEMO_SEEDS)
    assert json.loads(out.read_text()) == json.loads(build_demos.BUNDLED_PROGRAM.read_text())


def test_the_trainset_leaves_out_the_demo_seeds(tmp_path):
    assert not set(build_demos.TRAIN_DOCS) & set(DEMO_SEEDS)
    with pytest.raises(ValueError, match="w024"):
        build_demos.build(tmp_path / "x.json", seeds=("w024",))
    docs = build_demos.corpus()
    texts = json.dumps([e.toDict() for e in build_demos.agent_steps(docs)])
    assert all(docs[s]["title"] not in texts for s in DEMO_SEEDS)


def _program() -> SimpleNamespace:
    generator = Generator(None)
    return SimpleNamespace(agent=SearchAgent(None), generator=generator, reviser=Reviser(generator))


def test_loading_the_bundle_sets_demos_and_keeps_the_instructions():
    program = _program()
    before = program.agent.step.signature.instructions
    assert load_program(program, build_demos.BUNDLED_PROGRAM) == "demos:agent,generator,reviser"
    assert [d["action"] for d in program.agent.step.demos] == ["search", "search", "answer"]
    assert len(program.generator.write.demos) == 3 and len(program.generator.research.demos) == 3
    failures = [d["failure"] for d in program.reviser.revise.demos]
    assert failures == ["incorrect", "too_easy"]
    assert program.agent.step.signature.instructions == before
    assert program.agent.final.demos == []


def test_a_demos_file_naming_an_unknown_predictor_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sage_demos": {"agent": {"think": {"demos": []}}}}))
    program = SimpleNamespace(agent=SearchAgent(None), generator=Generator(None))
    with pytest.raises(SageError, match="no demos for agent.think"):
        load_program(program, bad)


def test_an_agent_prompt_with_the_demos_and_a_full_trajectory_fits_8k():
    """The longest agent prompt small allows (every passage at its cap, the trajectory at
    its budget) plus the demos and the output tokens stays within n_ctx 8192."""
    cfg = profile_config("small")
    program = _program()
    load_program(program, build_demos.BUNDLED_PROGRAM)
    passage = {"id": "x", "title": "T" * 30, "text": "w " * 400, "chars": 800}
    trace = [{"type": "search", "query": "q" * 120,
              "passages": [{**passage, "id": f"{i}-{j}"} for j in range(3)]}
             for i in range(10)]  # fmt: skip
    traj = render_trajectory(trace, cfg.passage_chars, cfg.trajectory_chars)
    inputs = {"question": "q" * 400, "trajectory": traj, "searches_left": 0}
    msgs = json_adapter().format(NextStep, demos=program.agent.step.demos, inputs=inputs)
    tokens = sum(len(str(m["content"])) for m in msgs) / CHARS_PER_TOKEN
    assert tokens + cfg.role("agent").max_tokens <= 8192


def _bigrams(text: str) -> set[tuple[str, str]]:
    words = [w.strip(".,;:?()").lower() for w in text.split()]
    return {pair for pair in pairwise(words) if all(len(w) > 3 for w in pair)}


def test_each_reviser_demo_is_a_bridge_through_a_fact_only_another_note_shows():
    """The revised question drops the seed's name for a fact that the shown note P2 states
    and the seed does not; the answer stays the seed's."""
    docs = build_demos.corpus()
    demos = build_demos.revise_steps(docs)[:1]
    for (seed, *_), demo in zip(build_demos.REVISIONS[:1], demos, strict=True):
        title, seed_text = docs[seed]["title"], docs[seed]["text"]
        assert title in demo.current and title not in demo.question
        assert demo.answer in seed_text and demo.answer not in demo.question
        shown_p2 = demo.notes.split("P2 ", 1)[1]
        bridge = _bigrams(demo.question) & _bigrams(shown_p2)
        assert bridge and not bridge & _bigrams(seed_text), bridge
        assert [p["passage"] for p in demo.plan] == ["P2", "P1"]
    assert [d.failure for d in demos] == ["incorrect"]


def test_research_write_and_revise_demos_take_the_date_the_seed_leaves_to_another_note():
    """The written seed (not in the corpus: no run retrieves it) dates its subject by another
    entity's year: research searches that entity; the written pair, and the revision of a
    one-hop question about that entity, ask about the seed's subject with the other note's
    year as the answer (answer_from "any"), two hops P1 -> P2."""
    docs = build_demos.corpus()
    seed = build_demos.BRIDGE_SEED
    assert seed["id"] not in build_demos.CORPUS.read_text()
    research = build_demos.research_steps(docs)[0]
    assert research.action == "search" and research.query in seed["text"]
    write = build_demos.write_steps(docs)[-1]
    revise = build_demos.revise_steps(docs)[-1]
    assert revise.failure == "too_easy" and seed["title"] not in revise.current
    for demo in (write, revise):
        assert seed["title"] in demo.question and demo.answer not in seed["text"]
        assert demo.answer in docs["w073"]["text"] and "w073" in build_demos.TRAIN_DOCS
        assert demo.answer_from == build_demos.ANSWER_SOURCES["any"]
        assert [p["passage"] for p in demo.plan] == ["P1", "P2"]


def test_a_reviser_prompt_with_the_demos_and_every_part_at_its_budget_fits_8k():
    """ReviseQA at small's budgets (document, notes, research, attempt, history all full)
    plus the demos and the output tokens stays within n_ctx 8192."""
    cfg = profile_config("small")
    program = _program()
    load_program(program, build_demos.BUNDLED_PROGRAM)
    full = {
        "document": cfg.doc_chars,
        "notes": cfg.reviser_notes_chars,
        "generator_trace": cfg.research_chars,
        "search_trace": cfg.attempt_chars,
        "previous_rounds": cfg.history_chars,
        "current": 240 + 60 + 2 * (160 + 60) + 100,
    }  # 2 capped hops, a rule hint
    inputs = {k: "w " * (n // 2) for k, n in full.items()}
    inputs |= {
        "target_steps": "2",
        "answer_type": "date",
        "failure": "too_easy",
        "answer_from": "a fact stated in the seed document (P1)",
    }
    msgs = json_adapter().format(ReviseQA, demos=program.reviser.revise.demos, inputs=inputs)
    tokens = sum(len(str(m["content"])) for m in msgs) / CHARS_PER_TOKEN
    assert tokens + cfg.role("reviser").max_tokens <= 8192
