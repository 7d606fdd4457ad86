# visionbench: `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv and install visionbench into it (editable, with the dev extras: the test tools and
# oracles, and [all], every optional feature: video, tensorboard, coco).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/visionbench train

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/train_digits.py
	$(BIN)/python benchmarks/classification_metrics.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/coco_eval.py
	$(BIN)/python benchmarks/segmentation_metrics.py
	$(BIN)/python benchmarks/train_tasks.py

lint: $(STAMP)
	$(BIN)/ruff check visionbench tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
