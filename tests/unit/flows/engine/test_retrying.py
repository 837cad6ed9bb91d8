"""The task retry policy classifies errors by name: qdrant-client's transient error (and
its subclasses) is retried, nothing else is; and a `sage` start-up loads neither
qdrant-client nor matplotlib for it (they cost ~1.8 s of every command)."""

from __future__ import annotations

import subprocess
import sys

from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from flows.engine.retrying import transient_error
from modules.errors import SageError
from tests.helpers import REPO


class _Sub(ResponseHandlingException):
    pass


def test_qdrants_transient_error_and_its_subclasses_are_transient():
    assert transient_error(ResponseHandlingException(OSError("refused")))
    assert transient_error(_Sub(OSError("reset")))


def test_other_errors_are_not_transient():
    assert not transient_error(SageError("bad input"))
    assert not transient_error(ValueError("x"))
    assert not transient_error(UnexpectedResponse(400, "Bad Request", b"", None))


def test_the_cli_loads_neither_qdrant_client_nor_matplotlib():
    code = (
        "import sys, flows.cli.main; flows.cli.main.make_app(); "
        "print(sorted(m for m in ('qdrant_client', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
