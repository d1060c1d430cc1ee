# Two commands matter: `make serve` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Exact versions of every runtime and test dependency (Python 3.11, Linux), used as constraints: installs are
# reproducible, and a dependency added to pyproject.toml but not locked yet still installs (`make lock` pins it).
LOCK   := requirements.lock

.PHONY: install compile serve test lint typecheck unit bench bench-load check-binaries clean lock mutation

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "flagd needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test]'
	@touch $(STAMP)

# Re-resolve every dependency to its newest release allowed by pyproject.toml (from PyPI only, ignoring local
# pip configuration) and rewrite requirements.lock. Deliberate: run it, run `make test`, commit the diff.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --extra test --upgrade --no-config --quiet \
	  --index-url https://pypi.org/simple --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --custom-compile-command 'make lock' -o $(LOCK)

install: $(STAMP)

# The editable install is pure Python; this compiles evaluator/ with mypyc into the tree (gitignored *.so),
# only when a source changed since the last build (evaluator/.compiled-sources holds their hashes). Without
# a C compiler it says so in one line and the pure evaluator runs. Which one runs: evaluator.COMPILED.
compile: install
	@$(BIN)/python -c 'import pathlib, runpy, sys; sys.exit(not runpy.run_path("evaluator/_loading.py")["current"](pathlib.Path("evaluator")))' \
	  || $(BIN)/python setup.py --quiet build_ext --inplace

serve: compile
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
# The evaluator's tests run twice: on the compiled build, then on the pure sources (FLAGD_PURE_EVALUATOR=1).
test: compile check-binaries
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing"; exit 1; fi; exit $$rc
	FLAGD_PURE_EVALUATOR=1 $(BIN)/pytest tests/evaluator -q $(PYTEST_ARGS)

unit: compile
	$(BIN)/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

bench: compile
	$(BIN)/pytest bench --benchmark-enable --benchmark-only -p no:randomly $(PYTEST_ARGS)

# Mutation testing of evaluator/ against tests/evaluator (CPU-heavy, minutes to an hour; not part of `make test`).
# MUTATION_ARGS="--sample 200" runs a sample; results in .mutation/, kill rate in bench/RESULTS.md.
mutation: install
	nice -n 10 $(BIN)/python -m tools.mutation $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks build evaluator/.compiled-sources
	rm -f evaluator/*.so
