# edgekit — `make run` runs the main job end to end, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?= gem-tiny
OUT ?= artifacts

.PHONY: setup run test test-slow lint clean

setup: $(STAMP)

# torch is installed first and pinned, so no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/edgekit export $(MODEL) --formats onnx,tflite,coreml --quantize fp16,int8 --out $(OUT)

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check edgekit tests benchmarks

clean:
	rm -rf $(OUT) reports/*.md reports/*.html .pytest_cache
