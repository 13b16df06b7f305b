# SafeChat: `make run` starts the product, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PORT ?= 8000
PYTEST_ARGS ?=
# CLAMD=1: `make run` also runs clamd (signatures from SAFECHAT_CLAMD_DATABASE_DIR,
# default /var/lib/clamav, kept by freshclam); see docs/files.md.
CLAMD ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint lock migrate clean system-packages

# Debian packages the suite uses: SoftHSM2 (the PKCS#11 provider's tests), Chromium (the
# portal in a real browser), redis-server (a Redis of a test's own, to stop in outage
# tests), clamav-daemon (clamd, the file vault's malware scanner, run by the tests with
# their own signatures; probed by its clamconf, as clamd lives in sbin, often off PATH),
# xmlsec1 (SAML sign-in checks XML signatures with it; `make run` needs it too where a
# SAML identity provider is configured). Installed by `make test` when run as root and
# missing; otherwise named.
SYSTEM_COMMANDS := softhsm2-util:softhsm2 chromium:chromium redis-server:redis-server \
	clamconf:clamav-daemon xmlsec1:xmlsec1

help:
	@echo "make run   - install, migrate and start web, worker and beat (PORT=$(PORT); CLAMD=1: and clamd)"
	@echo "make test  - install and run the whole test suite"
	@echo "make lint  - ruff, mypy --strict, import layers, migrations in step, OpenAPI schema valid"
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
	PORT=$(PORT) SAFECHAT_RUN_CLAMD=$(CLAMD) exec $(PY) -m safechat.supervise

system-packages:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "the tests need these Debian packages (run as root to install):$$missing"; exit 1; fi; \
	fi

test: system-packages $(VENV)/.dev-installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -o requirements/base.txt
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements/dev.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache staticfiles
