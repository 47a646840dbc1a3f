# Set-up and checks. `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck unit bench clean browser docs-picture prometheus

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "reportctl needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's dependencies change. pip compiles the bytecode of what it installs, but not of an
# editable install's source: compile it here, or every command compiles ~70 modules again (0.1-0.2 s) wherever
# PYTHONDONTWRITEBYTECODE is set. Python recompiles a module whose source changed, so this never goes stale.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q src
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q src
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# Charts are drawn by a headless Chromium. As root with apt, install Debian's when none is found; elsewhere try
# kaleido's own Chrome download, and say what the choices are when that fails too.
browser: $(VENV)/.installed
	@if [ -n "$$REPORTCTL_BROWSER" ] || command -v chromium-headless-shell >/dev/null 2>&1 \
		|| command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium-headless-shell for charts"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; \
	elif ! $(BIN)/python -c "import kaleido; kaleido.get_chrome_sync()" >/dev/null 2>&1; then \
		echo "charts need Chromium: install chromium-headless-shell (or chromium) with your package manager," \
			"or set REPORTCTL_BROWSER to a Chrome or Chromium binary; reports without charts work meanwhile"; \
	fi

demo: $(VENV)/.installed browser
	$(BIN)/reportctl validate specs
	$(BIN)/reportctl render --deliver --jobs 2 specs
	@echo "demo reports are in out/, and what was delivered is in outbox/"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev browser prometheus
	$(BIN)/pytest -q

# The prometheus source's tests start a real Prometheus, and the alert receiver's a real Alertmanager (Debian's
# packages; REPORTCTL_PROMETHEUS and REPORTCTL_ALERTMANAGER name other binaries). As root with apt, install them
# when missing; elsewhere say so: those tests skip without them.
prometheus:
	@if [ -x "$${REPORTCTL_PROMETHEUS:-/usr/bin/prometheus}" ] \
		&& [ -x "$${REPORTCTL_ALERTMANAGER:-/usr/bin/prometheus-alertmanager}" ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing prometheus and prometheus-alertmanager for the tests that talk to them"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			prometheus prometheus-alertmanager >/dev/null; \
	else \
		echo "some tests need Prometheus and Alertmanager: install Debian's prometheus and prometheus-alertmanager" \
			"packages (they skip meanwhile)"; \
	fi

test: lint typecheck unit

bench: $(VENV)/.installed-bench browser
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

# The README's picture: the first page of the demo's server-health PDF (needs pdftoppm, from poppler-utils).
docs-picture: $(VENV)/.installed browser
	@command -v pdftoppm >/dev/null || { echo "docs-picture needs pdftoppm: install poppler-utils"; exit 1; }
	rm -rf .docs-picture && $(BIN)/reportctl render specs/server-health.yaml -f pdf -o .docs-picture --no-state
	pdftoppm -r 80 -f 1 -l 1 -png -singlefile .docs-picture/*/*/*.pdf docs/report
	rm -rf .docs-picture
