# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv if it is missing and installs the package with the pinned
# constraints before running.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint format fuzz install clean bench bench-quick

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
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

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

clean:
	rm -rf $(VENV) build dist src/*.egg-info
