"""Prefect flows and the `sage` CLI. The offline environment (``modules.OFFLINE_ENV``) is set
by importing ``modules`` here, before Prefect loads."""

import modules  # noqa: F401
