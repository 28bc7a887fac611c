# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv if it is missing and installs the package with the pinned
# constraints before running.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.installed-bench
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test lint format fuzz install clean bench bench-quick docs

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@echo "compiling the fused CPU kernels (once, ~20 s; numba caches them)"
	$(PY) -c "from torchlogit import _kernels; _kernels.warm_up()"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/torchlogit demo --out out

test: $(STAMP) lint
	$(PY) -m pytest

# Style is checked by `make test`; `make format` applies it (ruff, configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples docs/conf.py
	$(VENV)/bin/ruff format --check src tests bench examples docs/conf.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests bench examples docs/conf.py
	$(VENV)/bin/ruff format src tests bench examples docs/conf.py

# Property-based fuzzing of the readers and the CLI (tests/test_fuzz.py) with FUZZ_SCALE (default 40)
# times the examples `make test` runs, drawn afresh each time; about 12 minutes on 2 cores at the default.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics

# Benchmarks against scikit-learn, glum, statsmodels and the lecture's loop (not part of `make test`).
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py

bench-quick: $(BENCH_STAMP)
	$(PY) bench/run.py --quick

# The documentation site (Sphinx, docs/conf.py) into docs/_build/html; every example under examples/
# is executed. Warnings are errors: a broken docstring, a dead cross-reference or an example that
# raises fails the build (--keep-going lists them all first).
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build dist src/*.egg-info docs/_build docs/api/generated docs/auto_examples
