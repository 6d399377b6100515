# Every target creates .venv itself when it is missing, so a fresh clone needs no other step.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tagf-installed
DEMO   := data/demo

.PHONY: setup demo test bench lint format typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

## demo: the main job on the embedded defaults (synthetic data, local MLflow store, short schedule)
demo: $(STAMP)
	$(BIN)/tagf synth $(DEMO)/raw --trials 8 --seconds 12 --seed 0
	$(BIN)/tagf preprocess --data-root $(DEMO)/raw --out $(DEMO)/processed
	$(BIN)/tagf train --data $(DEMO)/processed --fold 0 --emotion both --stamp demo --config configs/demo.toml --overwrite \
		--model all
	$(BIN)/tagf predict --stamp demo --fold 0 --emotion valence --partition extra
	$(BIN)/tagf predict --stamp demo --fold 0 --emotion arousal --partition extra
	$(BIN)/tagf collect --stamp demo --sample-file $(DEMO)/raw/ICCV_9th_ABAW_VA_test_set_sample.txt
	@echo "demo: synthetic release in $(DEMO)/raw, arrays in $(DEMO)/processed, runs in outputs/demo/"
	@echo "      MLflow store mlflow.db (artifacts in mlruns/): open it with"
	@echo "      $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db   (then http://127.0.0.1:5000)"

## test: install what the tests need and run them
test: $(STAMP)
	@$(BIN)/python -m pytest -n auto -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

## bench: side-by-side benchmarks on synthetic data they make themselves; prints a table, writes
## benchmarks/results.json (quick: about 13 min on 2 cores; `make bench ARGS=--full` for the long run)
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint docker/Dockerfile

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(DEMO) outputs/demo .pytest_cache .mypy_cache .ruff_cache
