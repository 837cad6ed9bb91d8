# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install browser demo test lint clean

$(BIN)/sage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(BIN)/sage

install: $(BIN)/sage

demo: install
	$(BIN)/sage models pull
	$(BIN)/sage demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian chromium renders report.html in a test (headless). Needs apt (root or sudo).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { SUDO=$$(command -v sudo || true); $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(BIN)/sage models pull
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -ra --durations=30 -n 2 --dist worksteal

clean:
	rm -rf $(VENV) .sage runs .pytest_cache .ruff_cache
