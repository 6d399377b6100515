# Every target creates .venv itself when it is missing, so a fresh clone needs no other step.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tagf-installed
DEMO   := data/demo

.PHONY: setup demo test lint format typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the main job on the embedded defaults (synthetic data, local MLflow)
demo: $(STAMP)
	$(BIN)/tagf synth $(DEMO)/raw --trials 8 --seconds 12 --seed 0
	$(BIN)/tagf preprocess --data-root $(DEMO)/raw --out $(DEMO)/processed
	@echo "demo: raw synthetic Aff-Wild2 release in $(DEMO)/raw, training arrays in $(DEMO)/processed (see manifest.json)"

## test: install what the tests need and run them
test: $(STAMP)
	@$(BIN)/python -m pytest -n auto -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache .ruff_cache
