"""The DSPy adapter every sage module uses: DSPy's JSONAdapter, with what depends only on
the signature (its structured-output format, its system message) built once instead of on
every call."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import dspy

# per-call LM options that cannot change which backend (and so which capabilities) a call
# gets: with only these, an LM's capabilities are looked up once, not on every call
SAMPLING_OPTIONS = frozenset(
    {"temperature", "rollout_id", "max_tokens", "top_p", "n", "seed", "stop", "response_format"}
)


class SageJSONAdapter(dspy.JSONAdapter):
    """``dspy.JSONAdapter`` that remembers, per signature (and LM capabilities), the
    ``response_format`` it chose and the system message it wrote: building them means a
    pydantic model, its JSON schema and the fields' descriptions, ~2 ms of CPU per call
    (bench/served_bench.py). Both caches are bounded: optimizers make new signatures."""

    _formats: dict[tuple[Any, ...], Any] = {}
    _systems: dict[Any, str] = {}
    _capabilities: weakref.WeakKeyDictionary[Any, tuple[Any, ...]] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def format_system_message(self, signature: Any) -> str:
        with self._lock:
            text = self._systems.get(signature)
        if text is None:
            text = super().format_system_message(signature)
            with self._lock:
                if len(self._systems) > 1024:
                    self._systems.clear()
                self._systems[signature] = text
        return text

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
        if "response_format" in lm_kwargs:
            return  # the caller's own (a constrained retry: generator.named_question)
        key = (signature, self.use_native_function_calling, *self._lm_capabilities(lm, lm_kwargs))
        with self._lock:
            cached = self._formats.get(key)
        if cached is None:
            chosen: dict[str, Any] = {}
            super()._prepare_response_format(lm, chosen, signature)
            cached = chosen.get("response_format", False)
            with self._lock:
                if len(self._formats) > 1024:  # optimizers make new signatures: stay bounded
                    self._formats.clear()
                self._formats[key] = cached
        if cached is not False:
            lm_kwargs["response_format"] = cached

    def _lm_capabilities(self, lm: Any, lm_kwargs: dict[str, Any]) -> tuple[bool, bool]:
        """(the LM honours a JSON schema, it takes ``response_format``): DSPy resolves the
        LM's route and model metadata for each (~1 ms of CPU a call), so they are kept per
        LM (and its model and engine) while a call's options are only sampling ones."""
        state = (lm.model, id(getattr(lm, "engine", None)), str(getattr(lm, "kwargs", "")))
        fixed = SAMPLING_OPTIONS.issuperset(lm_kwargs)
        try:
            with self._lock:
                known = self._capabilities.get(lm) if fixed else None
        except TypeError:  # an LM that cannot be weakly referenced or hashed
            fixed, known = False, None
        if known is not None and known[0] == state:
            return known[1]
        caps = (bool(lm.supports_response_schema), "response_format" in lm.supported_params)
        if fixed:
            with self._lock:
                self._capabilities[lm] = (state, caps)
        return caps


def json_adapter() -> SageJSONAdapter:
    """The adapter a sage module uses when it is given none."""
    return SageJSONAdapter()
