# Two commands for a fresh machine: `make demo` and `make test`; `make docs`
# builds the documentation site.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
APT_GET ?= apt-get
PYTEST_ARGS ?=
DEMO_ARGS ?=
DEMO_WORKDIR ?= runs/lenet300_fashion_mnist
BAZEL_ARGS ?=
# PyTorch for the torch test process (not in the [test] extra: an unpinned
# torch is the CUDA build, gigabytes). Pinned to the release whose CPU wheel
# (2.13.0+cpu) CI's machines hold; elsewhere pip takes the one it finds.
TORCH ?= torch==2.13.0
# Test files run in this many pytest-xdist processes (a test class stays in
# one process); 1 runs them one by one in a single process.
TEST_JOBS ?= 2
XDIST = $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadscope)

.PHONY: setup data demo test test-all docs bazel-test bazel-ci dist clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,train,bench,test]'
	$(PY) -m pip install --quiet '$(TORCH)'
	touch $(STAMP)

setup: $(STAMP)

# Fashion-MNIST, offline, from Debian's dataset-fashion-mnist package.
data:
	@if [ -e $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FASHION_MNIST)"; \
	elif ! command -v $(APT_GET) >/dev/null 2>&1; then \
	  echo "error: Fashion-MNIST is missing from $(FASHION_MNIST) and apt-get is not available." >&2; \
	  echo "Install Debian's dataset-fashion-mnist package, or point the demo at a" >&2; \
	  echo "directory of MNIST-format IDX files: make demo FASHION_MNIST=DIR" >&2; \
	  exit 2; \
	else \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -n"; \
	  echo "Installing dataset-fashion-mnist with apt-get..."; \
	  ( $$SUDO $(APT_GET) update -qq && $$SUDO $(APT_GET) install -y -qq dataset-fashion-mnist >/dev/null ) || { \
	    echo "error: could not install dataset-fashion-mnist (needs root or passwordless sudo)." >&2; exit 2; }; \
	  [ -e $(FASHION_MNIST)/train-images-idx3-ubyte.gz ] || { \
	    echo "error: dataset-fashion-mnist is installed but $(FASHION_MNIST) has no train-images-idx3-ubyte.gz." >&2; exit 2; }; \
	fi

demo: setup data
	$(PY) -m trainers.train --config=configs/lenet300_fashion_mnist.py \
	  --config.data_dir=$(FASHION_MNIST) --workdir=$(DEMO_WORKDIR) $(DEMO_ARGS)

# The test files that run again on each other Keras backend keras_switch
# supports, one pytest process per backend (KERAS_BACKEND selects it).
BACKEND_TESTS = tests/backend_test.py tests/budget_test.py tests/convert_test.py \
  tests/layers_test.py tests/layout_test.py tests/model_test.py tests/schedule_test.py \
  tests/sparsity_test.py tests/switched_layers_test.py tests/switcher_test.py
OTHER_BACKENDS ?= jax torch

test: setup
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)
	for backend in $(OTHER_BACKENDS); do \
	  KERAS_BACKEND=$$backend $(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS) $(BACKEND_TESTS) || exit 1; \
	done

test-all: setup
	$(PY) -m pytest -q -m "" $(XDIST) $(PYTEST_ARGS)
	for backend in $(OTHER_BACKENDS); do \
	  KERAS_BACKEND=$$backend $(PY) -m pytest -q -m "" $(XDIST) $(PYTEST_ARGS) $(BACKEND_TESTS) || exit 1; \
	done

# The documentation site (mkdocs.yml) into site/, strict: a broken link or API
# reference fails it, and so do a public name with no docstring or no
# reference entry (tools/check_docs.py) and a failing example (every docs/
# page's python blocks, tests/docs_test.py's slow tier, one page at a time:
# two TensorFlow processes on 2 cores were slower). The doc tools are the
# [docs] extra.
$(DOCS_STAMP): setup.py $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) tools/check_docs.py
	$(PY) -m mkdocs build --strict --quiet
	$(PY) -m pytest -q -m slow -p no:xdist tests/docs_test.py

# The same tests as Bazel targets (docs/testing.md, "Bazel"), with .venv's python;
# installs Bazel with apt-get if it is missing.
bazel-test: setup
	VENV=$(VENV) tools/bazel_test.sh $(BAZEL_ARGS)

# What CI runs of Bazel: every target built, the representative tests (tagged
# "ci" in BUILD) run, cached results not reused.
bazel-ci: setup
	VENV=$(VENV) tools/bazel_test.sh --nocache_test_results --test_tag_filters=ci $(BAZEL_ARGS)

# The sdist and the wheel in dist/, built as pip would (isolated, the newest
# setuptools) and checked with twine (metadata, README rendering).
dist: setup
	$(PY) -m pip install --quiet build twine
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) *.egg-info build dist site
