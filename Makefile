# Run `make help` for the list. The README shows the same commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SHARED_DATA ?= ../shared/data
STAMP := .make

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP)/system $(STAMP)/python $(STAMP)/node ## install Candor and its test tools (idempotent)

$(STAMP)/system: scripts/system-deps.sh
	scripts/system-deps.sh
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/python: pyproject.toml setup.py proxy/detect/_sums.c
	$(PIP) install -q -e '.[test]'
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/node: tests/e2e/node/package.json tests/e2e/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm missing: apt-get install -y nodejs npm"; exit 1; }
	cd tests/e2e/node && npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMP) && touch $@

test: install ## run the whole test suite (unit + end-to-end on loopback)
	$(PYTHON) -m pytest -q

screenshots: install ## refresh docs/status-page.png from the headless-Chromium test
	CANDOR_UPDATE_SCREENSHOTS=1 $(PYTHON) -m pytest -q tests/e2e/test_ui.py

lint: install ## ruff lint + format check, mypy --strict on proxy/
	ruff check proxy tests
	ruff format --check proxy tests
	mypy proxy

demo: $(STAMP)/python ## run Candor with its built-in demo models (no outside model needed)
	candor demo

probe: $(STAMP)/python ## measure a model's censorship: BASE_URL=... MODEL=... [PROBE_ARGS=--api-key-env VAR]
	candor probe --base-url $(BASE_URL) --model $(MODEL) $(PROBE_ARGS)

serve: $(STAMP)/python ## run Candor with CONFIG=path/to/candor.yaml
	@test -n "$(CONFIG)" || { echo "make serve CONFIG=path/to/candor.yaml"; exit 2; }
	candor serve --config $(CONFIG)

bench: install ## measure Candor vs a direct call, LiteLLM and a bare pass-through (BENCH_ARGS=--quick)
	@command -v wrk >/dev/null || apt-get install -y -q wrk || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
	$(PIP) install -q -e '.[bench]'
	$(PYTHON) -m bench.run --data $(SHARED_DATA)/speechmap_dev.jsonl $(BENCH_ARGS)

.PHONY: help install test screenshots lint demo probe serve bench
