# SafeChat: `make run` starts the product, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint lock migrate clean

help:
	@echo "make run   - install, migrate and start web, worker and beat (PORT=$(PORT))"
	@echo "make test  - install and run the whole test suite"
	@echo "make lint  - ruff, mypy --strict, migrations in step, OpenAPI schema valid"
	@echo "make lock  - re-pin requirements/*.txt from pyproject.toml (needs uv)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: requirements/base.txt | $(PY)
	$(BIN)/pip install --disable-pip-version-check --require-hashes --no-deps -q -r requirements/base.txt
	@touch $@

$(VENV)/.dev-installed: requirements/dev.txt | $(PY)
	$(BIN)/pip install --disable-pip-version-check --require-hashes --no-deps -q -r requirements/dev.txt
	@touch $@ $(VENV)/.base-installed

migrate: $(VENV)/.base-installed
	$(PY) manage.py migrate --noinput

run: migrate
	PORT=$(PORT) $(PY) manage.py bootstrap_admin --if-no-users
	PORT=$(PORT) exec $(PY) -m safechat.supervise

test: $(VENV)/.dev-installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -o requirements/base.txt
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements/dev.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache staticfiles
