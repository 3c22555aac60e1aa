# cifake-lightning developer commands. Everything installs into ./.venv with the pinned
# constraints (constraints.txt), so `make demo` and `make test` work on a fresh clone.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
DEMO    ?= data/demo

.PHONY: install test test-slow test-all lint format demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## the default test suite (no GPU, no network, a few minutes on 2 cores)
test: install
	$(BIN)/python -m pytest

## tests marked slow (longer end-to-end runs)
test-slow: install
	$(BIN)/python -m pytest -m slow

## everything, GPU tests included where CUDA is available
test-all: install
	$(BIN)/python -m pytest -m ''

lint: install
	$(BIN)/ruff check cifake_lightning tests benchmarks
	$(BIN)/ruff format --check cifake_lightning tests benchmarks

format: install
	$(BIN)/ruff format cifake_lightning tests benchmarks
	$(BIN)/ruff check --fix cifake_lightning tests benchmarks

## the README's first run: synthetic data -> fit -> test -> explain (a few minutes on a laptop CPU)
demo: install
	$(BIN)/cifake data synth --root $(DEMO) --overwrite
	$(BIN)/cifake fit --config configs/demo.yaml --data.root $(DEMO) --name demo
	ckpt="$$(ls -t runs/demo/version_*/checkpoints/last.ckpt | head -n 1)" && \
	$(BIN)/cifake test --config configs/demo.yaml --data.root $(DEMO) --name demo --ckpt_path "$$ckpt" && \
	$(BIN)/cifake explain --ckpt "$$ckpt" --out results/demo/explain

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf runs results data/demo data/demo-cache .pytest_cache
