"""The DSPy adapter every sage module uses: DSPy's JSONAdapter, with what depends only on
the signature (its structured-output format, its system message) built once instead of on
every call."""

from __future__ import annotations

import threading
from typing import Any

import dspy


class SageJSONAdapter(dspy.JSONAdapter):
    """``dspy.JSONAdapter`` that remembers, per signature (and LM capabilities), the
    ``response_format`` it chose and the system message it wrote: building them means a
    pydantic model, its JSON schema and the fields' descriptions, ~2 ms of CPU per call
    (bench/served_bench.py). Both caches are bounded: optimizers make new signatures."""

    _formats: dict[tuple[Any, ...], Any] = {}
    _systems: dict[Any, str] = {}
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
        key = (
            signature,
            self.use_native_function_calling,
            bool(lm.supports_response_schema),
            "response_format" in lm.supported_params,
        )
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


def json_adapter() -> SageJSONAdapter:
    """The adapter a sage module uses when it is given none."""
    return SageJSONAdapter()
