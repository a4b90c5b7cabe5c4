# Every target sets itself up: a fresh machine needs only Python 3.11, pip and gcc.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-packages test lint typecheck pytest matrix emulator demo bench clean

install: $(STAMP)

# constraints-dev.txt pins the versions the tests ran with (as Airflow's own constraint files do):
# installs are reproducible, and pip does not spend minutes backtracking through boto3 releases.
$(STAMP): pyproject.toml constraints-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints-dev.txt -e ".[dev]"
	touch $(STAMP)

# The end-to-end tests need Debian packages: Chromium for the browser test (browsers cannot be
# downloaded here), PostgreSQL and Redis for the distributed deployment (CeleryExecutor). Each is
# installed only when missing, so this is quick once they are there.
system-packages:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/redis-server || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "tests/e2e needs these Debian packages: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install system-packages
	$(BIN)/pytest -q

# The compatibility matrix (noxfile.py): the oldest Airflow, and the newest beside the Google provider
# (google-genai 2.x, this package from its wheel). uv makes the environments; it uses this Python.
matrix: install
	UV_PYTHON_DOWNLOADS=never $(BIN)/nox --no-color

test: lint typecheck pytest matrix

emulator: install
	$(BIN)/gemini-batch-emulator --host 127.0.0.1 --port $${PORT:-8765}

demo: install
	$(BIN)/python demo/run_demo.py

bench: install
	$(BIN)/python benchmarks/stream_results.py
	$(BIN)/python benchmarks/results_transfer.py
	$(BIN)/python benchmarks/prepare_input.py

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache
