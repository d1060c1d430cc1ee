# Two commands matter: `make serve` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install serve test lint typecheck unit bench bench-load check-binaries clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "flagd needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/flagd serve --demo

check-binaries:
	@sh .ci/check-binaries

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The whole suite: lint, strict typing, unit, property, integration (real PostgreSQL + Redis
# started by fixtures) and end-to-end (real Granian server, real SDK clients).
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: install check-binaries
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing"; exit 1; fi; exit $$rc

unit: install
	$(BIN)/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

bench: install
	$(BIN)/pytest bench --benchmark-enable --benchmark-only -p no:randomly $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
