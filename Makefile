# Quick start: `make demo` and `make test` work on a fresh machine (they create .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA ?= data/synthetic-demo
DEMO_RUN ?= runs/demo

.PHONY: demo test lint bench clean-venv

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

$(VENV)/.installed-dev: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV) dev
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) launch/synthesize.py --out $(DEMO_DATA) --subjects 8 --trials 40 --seed 0 --overwrite
	$(PY) launch/train.py --config configs/demo.yaml data.root=$(DEMO_DATA) output_dir=$(DEMO_RUN)
	$(PY) launch/evaluate.py $(DEMO_RUN) --split test

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -rs -n 2 --dist loadfile --no-loadscope-reorder --durations=25

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PY) bench/data_pipeline.py

clean-venv:
	rm -rf $(VENV)
