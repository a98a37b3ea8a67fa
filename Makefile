# edgekit — `make run` runs the main job end to end, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?= gem-tiny-suite
OUT ?= artifacts

.PHONY: setup setup-minilm setup-executorch evaldata run test test-slow test-emulate emulate-setup lint clean

setup: $(STAMP) evaldata

# Debian packages whose text the evaluation suite is built from (docs/evalsuite.md). Installed when root with apt;
# otherwise the command is printed. Never fails the build.
EVAL_APT := wordnet-base dict-gcide fortunes fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-br tfortunes
evaldata:
	@if dpkg -s $(EVAL_APT) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(EVAL_APT) >/dev/null || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $(EVAL_APT) >/dev/null)) || echo "warning: apt-get could not install $(EVAL_APT)"; \
	else echo "evaldata: for \`edgekit eval\` run: sudo apt-get install -y $(EVAL_APT)"; fi

# Optional: the pretrained all-MiniLM-L6-v2 (models minilm-l6, gem-minilm; docs/zoo.md). The constraints keep
# torch and numpy<2.4 (coremltools) where `make setup` put them.
setup-minilm: $(STAMP)
	printf 'torch==2.13.0\nnumpy<2.4\n' > $(VENV)/minilm-constraints.txt
	$(BIN)/pip install -q -c $(VENV)/minilm-constraints.txt -e '.[minilm]'

# Optional: ExecuTorch (.pte; docs/export.md). executorch 1.5.x declares no torch requirement and its runtime
# links the installed libtorch, so the constraints keep torch==2.13.0 (and numpy<2.4 for coremltools).
setup-executorch: $(STAMP)
	printf 'torch==2.13.0\nnumpy<2.4\n' > $(VENV)/executorch-constraints.txt
	$(BIN)/pip install -q -c $(VENV)/executorch-constraints.txt -e '.[executorch]'

# torch is installed first and pinned, so no dependency can pull a CUDA build. `all` = the tflite, coreml and eval
# extras (pyproject.toml): a checkout has every converter; `pip install edgekit` alone gives ONNX export and bench.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

# The main job: train GEM-tiny briefly on the 8-domain suite (gem-tiny-suite: the suite's 101-way joint head; one
# PyTorch thread, which is faster than two on a shared 2-core machine, docs/study.md), export the trained weights to
# every format (with parity), score each ONNX/TFLite artifact on the suite's test split, benchmark every executable
# artifact on this host, run the quick fragility study (train, specialise, compress, evaluate, DSI/GG/CDTR), then
# write the report of exactly these runs under reports/ (macro-F1 per artifact and its change vs fp32 beside latency
# and size) and print its path. Results go to the store ($$EDGEKIT_DB or the default). A failed parity check is
# recorded and shown in the report; it does not stop the run.
run: setup
	@set -e; start=$$(date -u +%Y-%m-%dT%H:%M:%S); \
	OMP_NUM_THREADS=1 $(BIN)/edgekit eval $(MODEL) --train-epochs 3 --max-train 500 \
	  --save-checkpoint $(OUT)/$(MODEL).pt; \
	$(BIN)/edgekit export $(MODEL) --checkpoint $(OUT)/$(MODEL).pt --format onnx,tflite,coreml \
	  --precision fp16,int8 --out $(OUT)/$(MODEL) || echo "warning: an artifact failed a check (above); continuing"; \
	for f in $(OUT)/$(MODEL)/$(MODEL).*.onnx $(OUT)/$(MODEL)/$(MODEL).*.tflite; do \
	  $(BIN)/edgekit eval $$f --threads 1 --json > /dev/null && echo "evaluated $$f"; done; \
	$(BIN)/edgekit bench $(OUT)/$(MODEL) --target local --runs 30 --min-time 1; \
	$(BIN)/edgekit study fragility --quick; \
	$(BIN)/edgekit report --since $$start --out reports/latest

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# Arm emulation for `edgekit bench MODEL --target rpi4 --emulate` (docs/targets.md): qemu-user-static, an arm64
# sysroot from Debian packages and aarch64 onnxruntime 1.24 wheels, cached under ~/.cache/edgekit/emulate. Needs root.
emulate-setup: setup
	@command -v qemu-aarch64-static >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static
	$(BIN)/python -m edgekit.targets.emulate setup

test-emulate: setup
	$(BIN)/python -m pytest -q -m emulate

lint: setup
	$(BIN)/ruff check edgekit tests benchmarks

clean:
	rm -rf $(OUT) reports/*.md reports/*.html .pytest_cache
