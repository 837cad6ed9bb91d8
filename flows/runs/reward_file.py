"""Writing ``reward.py``: a self-contained verl ``custom_reward_function`` for an export.

The file is ``reward_template.py`` with its sage imports replaced by the source of the
functions they name (the normaliser in ``modules/textnorm.py``, ``number_guard`` from the
judge, ``modules/programs/screening.py``, ``served_name``) and its config block by the run's values:
one copy of each rule, so the reward scores answers as the data was judged. The trainer's
machine needs only the Python standard library.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, Literal

from modules import textnorm
from modules.errors import SageError
from modules.programs import screening

Reward = Literal["rule", "llm"]
TEMPLATE = Path(__file__).with_name("reward_template.py")
BEGIN, END = "# sage:config-begin\n", "# sage:config-end\n"
_INTERNAL = ("modules", "flows")

HEADER = '''"""verl custom reward function for sage run {run_id} (written by `sage export`).

compute_score(data_source, solution_str, ground_truth, extra_info) -> 1.0 or 0.0: the last
<answer> span against reward_model.ground_truth.target (the gold answer and its aliases),
normalised as sage's judge normalises (lower case, accents, punctuation, articles and
thousands separators dropped). reward = "{reward}": "rule" scores exact matches only; "llm"
asks the judge model (env SAGE_JUDGE_API_BASE, SAGE_JUDGE_API_KEY, SAGE_JUDGE_LM) about
the rest, after refusing answers aimed at the grader, lists of candidates and answers far
longer than the gold. Standard library only.

verl: custom_reward_function.path=reward.py custom_reward_function.name=compute_score
"""
'''


def module_body(source: str) -> str:
    """A module's source without its docstring, ``__future__`` import and sage imports."""
    tree = ast.parse(source)
    dropped: set[int] = set()
    for i, node in enumerate(tree.body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        module = (node.module or "") if isinstance(node, ast.ImportFrom) else None
        internal = module is not None and (
            module == "__future__" or module.split(".")[0] in _INTERNAL
        )
        if docstring or internal:
            dropped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = source.splitlines()
    return "\n".join(t for n, t in enumerate(lines, start=1) if n not in dropped).strip() + "\n"


def _function_sources() -> list[str]:
    from modules.llm.lm import served_name
    from modules.programs.judge import number_guard

    return [inspect.getsource(number_guard), inspect.getsource(served_name)]


def _with_config(template: str, config: dict[str, Any]) -> str:
    if BEGIN not in template or END not in template:
        raise SageError(f"{TEMPLATE}: the sage:config markers are missing")
    head, rest = template.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    baked = "".join(f"{name} = {value!r}\n" for name, value in config.items())
    return head + baked + tail


def reward_source(
    reward: Reward,
    run_id: str,
    prompt_example: str,
    judge_model: str = "",
    min_gold_recall: float = 0.5,
    number_guard: bool = True,
) -> str:
    """The text of ``reward.py`` for one export, with the run's judge model and guards
    (compiled here, so a broken file is never written)."""
    from modules.programs.signatures import JudgeAnswer

    if reward not in ("rule", "llm"):
        raise SageError(f"--reward {reward!r}: use rule or llm")
    config = {
        "REWARD": reward,
        "JUDGE_MODEL": judge_model,
        "MIN_GOLD_RECALL": float(min_gold_recall),
        "NUMBER_GUARD": bool(number_guard),
        "PROMPT_EXAMPLE": prompt_example,
        "JUDGE_INSTRUCTIONS": " ".join(str(JudgeAnswer.__doc__ or "").split()),
    }
    parts = [
        HEADER.format(run_id=run_id, reward=reward),
        "from __future__ import annotations\n",
        f"# --- sage modules/textnorm.py ---\n{module_body(inspect.getsource(textnorm))}",
        "# --- sage modules/programs/judge.py, modules/llm/lm.py ---\n",
        *_function_sources(),
        "# --- sage modules/programs/screening.py ---\n"
        f"{module_body(inspect.getsource(screening))}",
        "# --- the reward ---\n",
        module_body(_with_config(TEMPLATE.read_text(), config)),
    ]
    text = "\n\n".join(p.strip("\n") + "\n" for p in parts)
    compile(text, "reward.py", "exec")
    return text
