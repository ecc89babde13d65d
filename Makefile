# tfdgm: `make train` and `make test` set up a local virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/quickstart.yaml
ARGS ?=
RUN ?= runs/quickstart
N ?= 64
PYTEST_ARGS ?=

.PHONY: install train evaluate sample export tensorboard test bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m tfdgm train --config $(CONFIG) $(ARGS)

evaluate: install
	$(PY) -m tfdgm evaluate --run $(RUN) $(ARGS)

sample: install
	$(PY) -m tfdgm sample --run $(RUN) -n $(N) $(ARGS)

export: install
	$(PY) -m tfdgm export --run $(RUN) $(ARGS)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir runs $(ARGS)

test: install
	$(PY) -m pytest tests -n 2 $(PYTEST_ARGS)

bench: install
	$(PY) bench/bench_vae.py $(ARGS)

clean:
	rm -rf build *.egg-info .pytest_cache
