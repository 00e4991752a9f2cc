# Two commands matter: `make run` (serve the demo) and `make test` (what CI runs).
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test install services lint bench bench-core bench-core-instructions bench-http bench-batch bench-train demo clean

run: install ## install, build the demo bank (once), serve on http://127.0.0.1:8000
	$(BIN)/nbo demo
	$(BIN)/nbo serve

test: install services ## lint and the whole test suite against real Redis and PostgreSQL
	$(BIN)/ruff check .
	$(BIN)/pytest -q

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

services: ## start PostgreSQL and Redis on 127.0.0.1 when they are not running (fails if they cannot start)
	bash scripts/ensure-services.sh

demo: install
	$(BIN)/nbo demo --force

lint: install
	$(BIN)/ruff check .

bench-core: install ## decisions/s of the pure core: 100 offers, 200-tree LightGBM model, one core
	OMP_NUM_THREADS=1 taskset -c 0 $(BIN)/python -m loadtests.bench_core

bench-core-instructions: install ## the core's instructions per decision under valgrind's callgrind: the same count whatever the load
	$(BIN)/python -m loadtests.bench_core --instructions --decisions 300

bench-http: install ## p50/p99 of POST /v1/decisions at a fixed rate, embedded default
	$(BIN)/python -m loadtests.bench_http

bench-batch: install ## the overnight batch: 1M customers x 50 offers, in process and on a 2-worker Dask LocalCluster
	$(BIN)/python -m loadtests.bench_batch --customers $(or $(CUSTOMERS),1000000)

bench-train: install ## nbo train on 1M logged contacts from PostgreSQL (COPY-generated): rows/s, peak memory
	$(BIN)/python -m loadtests.bench_train

bench: install ## nbo (Redis + PostgreSQL stack, embedded) side by side with a scoring-only service: ~6 min; BENCH_ARGS=--quick
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
