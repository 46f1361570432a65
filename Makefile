# Stock Mind. `make demo` and `make test` are the two entry points (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := .data
TEST_DATA := .data/test
PORT ?= 8000

.PHONY: install services stop demo serve test lint clean

install: $(STAMP)

# Re-installs whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

services: install
	$(PY) -m config.embedded_services start --data-dir $(DATA)

stop: install
	$(PY) -m config.embedded_services stop --data-dir $(DATA)

demo: services
	$(PY) manage.py migrate --no-input
	DJANGO_DEBUG=1 $(PY) manage.py load_demo --port $(PORT)
	@echo "Serving on http://127.0.0.1:$(PORT) (Ctrl-C to stop; \`make stop\` stops PostgreSQL and Redis)."
	DJANGO_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$(PORT)

# The suite gets its own PostgreSQL and Redis under .data/test, on their own
# ports: it never touches the demo's data. pytest's exit code 5 (no tests
# collected) fails the run.
test: install
	$(PY) -m config.embedded_services start --data-dir $(TEST_DATA)
	@STOCKMIND_SERVICES_ENV=$(TEST_DATA)/services.env MEDIA_ROOT=$(TEST_DATA)/media \
		$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	$(PY) -m config.embedded_services stop --data-dir $(TEST_DATA); \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing the run."; exit 1; fi; \
	exit $$status

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean: stop
	rm -rf $(DATA)
