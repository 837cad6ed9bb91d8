"""The run configuration of the SAGE loop: one frozen ``SageConfig`` per run (STORM's
runner arguments), resolved once from the settings and a flow's loop options, and the two
profiles it starts from.

``paper`` is the official code's setup, for served or API models with a 32k+ context:
whole passages and traces, generator / reviser / agent sampled at temperature 1.0, the
judge at 0 with 512 output tokens, exact match as the only model-free verdict, a failed
generation dropped. ``small`` is what the bundled 0.5B CPU model (an 8k context) needs:
short passages and notes, a trajectory that shrinks, temperature 0.7, and judge guards that
overrule a weak judge. Every knob can be set on its own (``Settings``); a ``None`` budget
under ``paper`` means "derived from the role's context window": nothing is cut while the
prompt fits, and when it would not fit the oldest passages shrink first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from typing import Any, Literal

from modules.errors import SageError

Profile = Literal["paper", "small"]
PROFILES: tuple[str, ...] = ("paper", "small")
ROLES: tuple[str, ...] = ("generator", "reviser", "agent", "judge")
LM_ROLES: tuple[str, ...] = ("generator", "agent", "judge")  # the reviser uses the generator's LM
SERVED_CONTEXT = 32_768  # a served model's context window unless a setting says otherwise
CHARS_PER_TOKEN = 3.0  # conservative for English text in a JSON-adapter prompt (~4 real)
DOC_SHARE = 0.25  # under a derived budget the seed document takes at most this share

# Per profile: each role's temperature and output tokens, the loop's text budgets (characters,
# None = derived from the context window) and the judge's guards.
PROFILE_TABLE: dict[str, dict[str, Any]] = {
    "paper": {
        "temperature": {"generator": 1.0, "reviser": 1.0, "agent": 1.0, "judge": 0.0},
        "max_tokens": {"generator": 4096, "reviser": 4096, "agent": 2048, "judge": 512},
        "passage_chars": None,
        "trajectory_chars": None,
        "generator_passage_chars": None,
        "notes_chars": None,
        "doc_chars": None,
        "attempt_chars": None,
        "research_chars": None,
        "history_chars": None,
        "reviser_note_chars": None,
        "reviser_notes_chars": None,
        "judge_min_gold_recall": 0.0,
        "judge_number_guard": False,
        "regenerate_failed": False,
        "reask_repeats": False,
        "generator_min_searches": 0,
        "bridge_rule": False,
        "local_models": {"generator": "llm", "agent": "llm", "judge": "llm"},
        "field_chars": None,
        "bundled_program": False,
    },
    "small": {
        "temperature": {"generator": 0.7, "reviser": 0.7, "agent": 0.7, "judge": 0.0},
        "max_tokens": {"generator": 768, "reviser": 768, "agent": 768, "judge": 768},
        "passage_chars": 450,
        "trajectory_chars": 9000,
        "generator_passage_chars": 350,
        "notes_chars": 5000,
        "doc_chars": 2400,
        "attempt_chars": 4000,
        "research_chars": 1200,
        "history_chars": 1500,
        "reviser_note_chars": 1200,
        "reviser_notes_chars": 5000,
        "judge_min_gold_recall": 0.5,
        "judge_number_guard": True,
        "regenerate_failed": True,
        "reask_repeats": True,
        # the generator searches (a name the seed links, else its title) before it may write
        "generator_min_searches": 1,
        # a question whose answer another note holds asks the seed's subject, not that note's
        "bridge_rule": True,
        # which pinned local model (modules/model_store.py key) each role loads
        "local_models": {"generator": "llm", "agent": "llm", "judge": "llm"},
        # maxLength of these JSON-schema fields when the local engine decodes them
        "field_chars": {
            "reasoning": 240,
            "analysis": 300,
            "text": 120,
            "query": 80,
            "question": 240,
            "answer": 60,
            "sub_question": 160,
            "sub_answer": 60,
            "passage": 3,
            "extracted_answer": 80,
        },
        # load flows/data/programs/small.json (few-shot demos) into the program
        "bundled_program": True,
    },
}

BUDGETS = (
    "passage_chars",
    "trajectory_chars",
    "generator_passage_chars",
    "notes_chars",
    "doc_chars",
    "attempt_chars",
    "research_chars",
    "history_chars",
    "reviser_note_chars",
    "reviser_notes_chars",
)
KNOBS = (
    "judge_min_gold_recall",
    "judge_number_guard",
    "regenerate_failed",
    "reask_repeats",
    "generator_min_searches",
    "bridge_rule",
    "local_models",
    "field_chars",
    "bundled_program",
)
EXECUTION_ONLY = frozenset({"attempt_workers"})  # knobs a resumed run may change


@dataclass(frozen=True)
class RoleConfig:
    """How one role's LM is called: sampling temperature, output tokens, context window."""

    temperature: float
    max_tokens: int
    context_window: int


@dataclass(frozen=True)
class SageConfig:
    """Every knob of the SAGE loop for one run, resolved (see the module docstring).

    Text budgets are characters: ``passage_chars`` per retrieved passage (agent, stored and
    shown; None = whole), ``trajectory_chars`` the agent's searches and passages in all,
    ``generator_passage_chars`` per note shown to the generator (None = whole),
    ``notes_chars`` the generator's notes in all, ``doc_chars`` the seed document, and the
    reviser's ``attempt_chars`` (its search trace), ``research_chars``, ``history_chars``,
    ``reviser_note_chars`` (per note) and ``reviser_notes_chars`` (in all).
    """

    profile: str = "paper"
    attempts: int = 4
    rounds: int = 2
    strategy: str = "feedback"
    max_searches: int = 10
    generator_searches: int = 20
    roles: dict[str, RoleConfig] = field(default_factory=dict)
    passage_chars: int | None = None
    trajectory_chars: int = 60_000
    generator_passage_chars: int | None = None
    notes_chars: int = 60_000
    doc_chars: int = 20_000
    attempt_chars: int = 30_000
    research_chars: int = 10_000
    history_chars: int = 10_000
    reviser_note_chars: int | None = None
    reviser_notes_chars: int = 30_000
    judge_min_gold_recall: float = 0.0
    judge_number_guard: bool = False
    regenerate_failed: bool = False
    reask_repeats: bool = False
    generator_min_searches: int = 0
    bridge_rule: bool = False
    local_models: dict[str, str] = field(default_factory=dict)
    field_chars: dict[str, int] | None = None
    bundled_program: bool = False
    answer_source: str = "seed"
    attempt_workers: int = 1
    keep_unverified: bool = False
    revise_with_search: bool = False

    def role(self, name: str) -> RoleConfig:
        """A role's LM settings (the profile's when the config was built without them)."""
        if name in self.roles:
            return self.roles[name]
        table = PROFILE_TABLE[self.profile]
        return RoleConfig(table["temperature"][name], table["max_tokens"][name], SERVED_CONTEXT)

    def with_loop(self, **loop: Any) -> SageConfig:
        """A copy with some loop knobs changed (``None`` values ignored)."""
        return replace(self, **{k: v for k, v in loop.items() if v is not None})

    def record(self) -> dict[str, Any]:
        """The resolved configuration as the manifest keeps it."""
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> SageConfig:
        """A config back from ``record()`` (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["roles"] = {r: RoleConfig(**c) for r, c in (values.get("roles") or {}).items()}
        return cls(**values)

    def resume_conflict(self, old: dict[str, Any]) -> str | None:
        """The first knob a resumed run changed (as 'name: old -> new'), or None. A knob
        the old record lacks (added since) counts as its default, the behaviour before it."""
        new, before = self.record(), SageConfig().record()
        for key in ["profile", *sorted((set(old) | set(new)) - {"profile"})]:
            was = old.get(key, before.get(key))
            if key in EXECUTION_ONLY or was == new.get(key):
                continue
            return f"{key}: {was!r} -> {new.get(key)!r}"
        return None


def default_profile(models: list[str], local: str) -> str:
    """``small`` when any role runs the bundled local model, else ``paper``."""
    return "small" if local in models else "paper"


def resolve_role(settings: Any, role: str, profile: str, local_ctx: int | None) -> RoleConfig:
    """A role's temperature, output tokens and context window: its own setting, else the
    shared one (``temperature`` for the sampling roles, ``max_tokens``), else the profile."""
    table = PROFILE_TABLE[profile]
    own_t = getattr(settings, f"{role}_temperature", None)
    shared_t = settings.temperature if role != "judge" else None
    temp = next(v for v in (own_t, shared_t, table["temperature"][role]) if v is not None)
    own_m = getattr(settings, f"{role}_max_tokens", None)
    max_tokens = next(v for v in (own_m, settings.max_tokens, table["max_tokens"][role]) if v)
    lm_role = "generator" if role == "reviser" else role
    ctx = getattr(settings, f"{lm_role}_context_window", None) or settings.context_window
    return RoleConfig(float(temp), int(max_tokens), int(ctx or local_ctx or SERVED_CONTEXT))


# Which signature each role's budget is for, and its variable inputs (shown as placeholders
# when the fixed part of the prompt is measured).
_ROLE_SIGNATURES = {
    "agent": "NextStep",
    "generator": "WriteQA",
    "reviser": "ReviseQA",
    "judge": "JudgeAnswer",
}


@cache
def fixed_prompt_chars(signature_name: str) -> int:
    """Characters of a signature's prompt with every input empty (instructions, field
    descriptions and the output format the JSON adapter adds)."""
    from modules.programs import signatures
    from modules.programs.adapter import json_adapter

    sig = getattr(signatures, signature_name)
    inputs = {name: "" for name in sig.input_fields}
    messages = json_adapter().format(sig, demos=[], inputs=inputs)
    return sum(len(str(m.get("content") or "")) for m in messages)


def prompt_budget(role: str, rc: RoleConfig) -> int:
    """Characters of variable input a role's prompt may hold: its context window minus its
    output tokens and its fixed prompt, in characters (``CHARS_PER_TOKEN``). Raises a
    SageError naming the setting when the window cannot hold the fixed prompt."""
    fixed = fixed_prompt_chars(_ROLE_SIGNATURES[role])
    fixed_tokens = int(fixed / CHARS_PER_TOKEN) + 1
    free = rc.context_window - rc.max_tokens - fixed_tokens
    if free < 256:
        lm_role = "generator" if role == "reviser" else role
        raise SageError(
            f"{lm_role}_context_window: {rc.context_window} tokens cannot hold the {role}'s "
            f"fixed prompt (~{fixed_tokens} tokens) plus its {rc.max_tokens} output tokens "
            "and room for its inputs; raise the context window or lower max_tokens"
        )
    return int(free * CHARS_PER_TOKEN)


def _derived_budgets(roles: dict[str, RoleConfig]) -> dict[str, int]:
    """The ``paper`` budgets from the context windows (see ``prompt_budget``)."""
    agent = prompt_budget("agent", roles["agent"])
    gen = prompt_budget("generator", roles["generator"])
    rev = prompt_budget("reviser", roles["reviser"])
    prompt_budget("judge", roles["judge"])  # only checked: the judge's inputs are short
    doc = int(min(gen, rev) * DOC_SHARE)
    rest = rev - doc
    return {
        "trajectory_chars": agent - 2_000,  # the question and step counter
        "doc_chars": doc,
        "notes_chars": gen - doc - 2_000,  # feedback and rule hints
        "attempt_chars": int(rest * 0.35),
        "research_chars": int(rest * 0.1),
        "history_chars": int(rest * 0.15),
        "reviser_notes_chars": int(rest * 0.4),
    }


def run_profile(settings: Any, local: str = "local") -> str:
    """The profile a run uses: the ``profile`` setting, else by its models."""
    models = [settings.lm, settings.agent_lm_name, settings.judge_lm_name]
    return settings.profile or default_profile(models, local)


def role_config(settings: Any, role: str, local: str = "local") -> RoleConfig:
    """One role's resolved LM settings (``resolve_role`` under the run's profile)."""
    lm_role = "generator" if role == "reviser" else role
    local_ctx = settings.n_ctx if settings.model_of(lm_role) == local else None
    return resolve_role(settings, role, run_profile(settings, local), local_ctx)


def profile_config(
    profile: str = "paper", context_window: int | None = None, **loop: Any
) -> SageConfig:
    """A profile's SageConfig without settings (a notebook, a test): the table's values,
    budgets derived from ``context_window`` (default 32,768; 8,192 under ``small``)."""
    table = PROFILE_TABLE[profile]
    ctx = context_window or (8192 if profile == "small" else SERVED_CONTEXT)
    roles = {r: RoleConfig(table["temperature"][r], table["max_tokens"][r], ctx) for r in ROLES}
    derived = _derived_budgets(roles)
    budgets = {n: table[n] if table[n] is not None else derived.get(n) for n in BUDGETS}
    knobs = {n: table[n] for n in KNOBS}
    return SageConfig(profile=profile, roles=roles, **budgets, **knobs).with_loop(**loop)


def local_setup(settings: Any, role: str) -> tuple[str, dict[str, int] | None]:
    """The pinned local model (a ``model_store`` key) a role loads under the run's profile,
    and the JSON-schema field caps its engine enforces (None: only the engine's own cap)."""
    from modules.model_store import MODELS

    table = PROFILE_TABLE[run_profile(settings)]
    lm_role = "generator" if role == "reviser" else role
    own = getattr(settings, "local_models", None) or {}
    for key, name in own.items():
        if key not in LM_ROLES or name not in MODELS or name == "embedder":
            raise SageError(
                f"local_models: {key!r}: {name!r} (roles {', '.join(LM_ROLES)}; models llm, llm15)"
            )
    caps = getattr(settings, "field_chars", None)
    return own.get(lm_role) or table["local_models"][lm_role], caps or table["field_chars"]


def build_config(settings: Any, local: str = "local", **loop: Any) -> SageConfig:
    """The run's SageConfig from the settings (profile, per-role knobs, budgets, guards)
    and the flow's loop options (attempts, rounds, strategy, max_searches, ...)."""
    profile = run_profile(settings, local)
    table = PROFILE_TABLE[profile]
    roles = {r: role_config(settings, r, local) for r in ROLES}
    derived = _derived_budgets(roles)
    budgets = {}
    for name in BUDGETS:
        own = getattr(settings, name, None)
        value = own if own is not None else table[name]
        budgets[name] = value if value is not None else derived.get(name)
    knobs = {}
    for name in KNOBS:
        own = getattr(settings, name, None)
        knobs[name] = own if own is not None else table[name]
    return SageConfig(profile=profile, roles=roles, **budgets, **knobs).with_loop(**loop)
