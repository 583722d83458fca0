# Quick start: `make demo` and `make test` work on a fresh machine (they create .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCHEEG_VENV ?= .venv-torcheeg
# Taken when make reads this file, before any prerequisite is built: `make test` reports its
# whole wall time, install included.
STARTED := $(shell date +%s)
# pytest-xdist workers. Two on the 2-core machine: the suite keeps both cores busy throughout
# (a third worker measured no faster, 2026-12-07), and more contention only slows the
# multi-process tests' launches.
TEST_WORKERS ?= 2
DEMO_DATA ?= data/synthetic-demo
DEMO_RUN ?= runs/demo

# Python writes each module's bytecode when a process first imports it, even where the
# environment turns that off: otherwise every process of the tests compiles torch, transformers
# and this project from source (scripts/installer.sh).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-ready lint bench gpu-wheels clean-venv

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

$(VENV)/.installed-dev: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) dev
	touch $@ $(VENV)/.installed

# The embedded model converted from its GGUF once (about half a minute) for every test worker
# and every later `make test`, instead of once per worker.
$(VENV)/test-home/.ready: $(VENV)/.installed-dev
	EEG_EMOTION_HOME=$(VENV)/test-home $(PY) -c "from eeg_emotion.model import backbone, embedded; backbone.embedded_dir(); embedded.tokenizer_dir()"
	touch $@

# DeepSpeed's CPU communication kernel, compiled once (about a minute) for the DeepSpeed tests
# rather than by the first of them (tests/conftest.py points TORCH_EXTENSIONS_DIR here).
$(VENV)/test-home/torch-extensions/.ready: $(VENV)/.installed-dev
	TORCH_EXTENSIONS_DIR=$(VENV)/test-home/torch-extensions $(PY) -c "from deepspeed.accelerator import get_accelerator; get_accelerator().create_op_builder('ShareMemCommBuilder').load()"
	touch $@

# TorchEEG, for the check that its readers accept our files (it pins its own scipy).
$(TORCHEEG_VENV)/.installed: bench/setup_torcheeg.sh
	bash bench/setup_torcheeg.sh $(TORCHEEG_VENV)
	touch $@

demo: $(VENV)/.installed
	$(PY) launch/synthesize.py --out $(DEMO_DATA) --subjects 8 --trials 40 --seed 0 --overwrite
	$(PY) launch/train.py --config configs/demo.yaml data.root=$(DEMO_DATA) output_dir=$(DEMO_RUN)
	$(PY) launch/evaluate.py $(DEMO_RUN) --split test

# What the tests need, side by side (-j3): the TorchEEG environment builds while the project's
# installs, then the lint runs while the model converts.
test:
	@$(MAKE) --no-print-directory -j3 --output-sync=target test-ready
	EEG_EMOTION_TEST_HOME=$(abspath $(VENV))/test-home $(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25
	@echo "make test: $$(( $$(date +%s) - $(STARTED) )) s wall time, install included"

test-ready: lint $(VENV)/test-home/.ready $(VENV)/test-home/torch-extensions/.ready $(TORCHEEG_VENV)/.installed

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PY) bench/data_pipeline.py

# What bench/gpu_all.sh needs on a GPU machine that holds only torch, transformers, peft and
# accelerate (and the usual scientific stack): manylinux wheels for CPython 3.12, at the versions
# this .venv runs, into $(GPU_WHEELS) (git ignores .whl/; 47 MB with bitsandbytes 0.50.2).
# DeepSpeed publishes no wheel: it is built here (pure Python, its kernels compile where they run).
GPU_WHEELS ?= .whl
GPU_PACKAGES := pydantic pydantic_core annotated-types typing-inspection bitsandbytes hjson
# The gpu extra; not installed here (it needs CUDA's Triton).
LIGER_VERSION ?= 0.8.5
gpu-wheels: $(VENV)/.installed-dev
	mkdir -p $(GPU_WHEELS)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
	  -d $(GPU_WHEELS) $$($(PY) -c "import importlib.metadata as m, sys; print(' '.join(f'{n}=={m.version(n)}' for n in sys.argv[1:]))" $(GPU_PACKAGES)) \
	  liger-kernel==$(LIGER_VERSION)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(GPU_WHEELS) deepspeed==$$($(PY) -c "import importlib.metadata as m; print(m.version('deepspeed'))")
	du -sh $(GPU_WHEELS)

clean-venv:
	rm -rf $(VENV)
