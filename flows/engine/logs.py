"""Where a `sage` command's logs go: Prefect's and every library's log records (and Python
warnings) to ``<data_dir>/logs/sage.log``; the console keeps sage's own progress lines and,
on failure, one error line. ``--verbose`` also shows the log records on the console."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOG_FILE = "sage.log"
# loggers Prefect's logging.yml gives a console handler (the rest propagate to the root)
_CONSOLE_LOGGERS = ("", "uvicorn", "fastapi", "prefect._internal")
_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return not isinstance(handler, logging.FileHandler) and stream in (
        sys.stderr,
        sys.stdout,
        sys.__stderr__,
        sys.__stdout__,
    )


def route_logs(data_dir: Path, verbose: bool = False) -> Path:
    """Send log records to the log file (and keep them on the console only if ``verbose``);
    return the log file's path."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect configures logging once per process; do it now
    path = Path(data_dir) / "logs" / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    for name in _CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        if not verbose:
            for handler in [h for h in logger.handlers if _is_console(h)]:
                logger.removeHandler(handler)
        logger.addHandler(file_handler)
    logging.captureWarnings(True)  # library warnings go to the log, not the console
    return path
