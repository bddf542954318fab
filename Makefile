# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CIFAR := $(VENV)/bin/cifar
DEMO_DIR ?= demo-results
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# The stamp is rebuilt when the dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m jobs.demo --out $(DEMO_DIR)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check cifar_core jobs tests bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info

# Kubernetes targets (kind, images, helm) live beside the manifests.
-include k8s/k8s.mk
