# make dev   - .venv/ with the core, every first-party plugin, the example third-party plugin
#              (plugins/redis) and the test tools, editable
# make demo  - the main job: build a small LightRAG JSON database, show its status, migrate it
# make test  - the whole test suite (starts the PostgreSQL sandbox it needs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev demo test clean

dev: $(STAMP)

$(STAMP): pyproject.toml plugins/json/pyproject.toml plugins/postgres/pyproject.toml plugins/mongodb/pyproject.toml \
		plugins/redis/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e plugins/json -e plugins/postgres -e plugins/mongodb \
		-e plugins/redis
	touch $(STAMP)

demo: dev
	$(BIN)/python -m hybridrag_backends.demo

test: dev
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
