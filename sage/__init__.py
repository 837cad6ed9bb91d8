"""sage's Python API: ``import sage``, then ``sage.index(docs, collection=...)``,
``sage.generate(collection=..., n=...)`` (a ``Run``), ``sage.validate(run)`` and
``sage.export(run, format=...)``. The functions live in ``flows/api.py``."""

from flows.api import Run, corpus_file, export, generate, index, session, validate

__all__ = ["Run", "corpus_file", "export", "generate", "index", "session", "validate"]
