"""How flows run: the services a run opens, task runners, signal-aware waits, retries, logs."""
