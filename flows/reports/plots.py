"""Matplotlib's pyplot on the Agg backend, imported when a plot is drawn (not when a
command starts: it costs ~0.35 s of every `sage` start-up otherwise)."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
