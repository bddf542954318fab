# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# CI (.ci/run) runs `make test-all` (every test, the slow tier included), then `make image-test`
# (as root, 5-15 min: builds images/Dockerfile with buildah and runs the CLI in it; images/image.mk).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CIFAR := $(VENV)/bin/cifar
DEMO_DIR ?= demo-results
STAMP := $(VENV)/.installed

.PHONY: setup checkov browser demo test test-all lint clean

setup: $(STAMP)

# The stamp is rebuilt when the dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

# checkov (tests/test_checkov.py) pins packaging<24 and Ray needs >=24.2, so it gets its own virtual
# environment under build/, at the version that test pins (read from it: one place). Built by
# `make test`, not on the test's first use, so pytest's time is the tests' (~2.5 minutes in a fresh
# clone); `make demo` does not need it.
CHECKOV_VERSION := $(shell sed -n 's/^CHECKOV_VERSION = "\(.*\)"$$/\1/p' tests/test_checkov.py)
CHECKOV_VENV := build/checkov-$(CHECKOV_VERSION)

checkov: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv --clear $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	echo $(CHECKOV_VERSION) > $@

# Headless Chromium for the report's browser test (Debian's package; the test skips without it).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will skip"; \
	  else echo "note: chromium is not installed; the browser test will skip"; fi; }

# The smoke pipeline end to end: data (real CIFAR-100 if it is in $(DEMO_DIR)/data, otherwise a
# synthetic stand-in, said plainly), Ray Tune + ASHA, retraining, DCGAN, FID (when the Inception
# weights are reachable), and the HTML report, whose path it prints last.
demo: setup
	$(CIFAR) pipeline --profile smoke --data-dir $(DEMO_DIR)/data --results-dir $(DEMO_DIR)/results

# Two pytest workers (both cores of the CI machine); a test module stays on one worker, so its
# module-wide fixtures (a Ray cluster, a killed search) are made once.
TEST_WORKERS ?= 2

# `make test` is every test but the slow tier (pytest -m slow: real multi-node Ray clusters, killed
# searches and drivers, a kill at every write boundary), which `make test-all` adds.
test: setup checkov browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

test-all: setup checkov browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(VENV)/bin/ruff check cifar_core jobs tests bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache build *.egg-info

# Image targets (image, image-cpu, image-constraints, image-test) live beside the Dockerfile,
# Kubernetes targets (kind, helm) beside the manifests.
-include images/image.mk
-include k8s/k8s.mk
