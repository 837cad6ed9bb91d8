"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class SageError(Exception):
    """An expected failure with a message fit for the user (names file/line/field where known)."""
