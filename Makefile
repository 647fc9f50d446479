# The two commands of the README: `make demo` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CONFIG ?= configs/fashion_mnist/default.py
DEMO_WORKDIR ?= runs/demo
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The package alone (demo), and with the test tools and torch/torchvision for parity tests (test).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,torch]'
	touch $@ $(VENV)/.installed

# Real Fashion-MNIST from Debian's dataset-fashion-mnist (needs root; otherwise says what to run).
data:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; \
	  fi; \
	fi

demo: $(VENV)/.installed data
	$(BIN)/python train.py --config $(DEMO_CONFIG) --workdir $(DEMO_WORKDIR)
	$(BIN)/python eval.py --workdir $(DEMO_WORKDIR) --split test --out $(DEMO_WORKDIR)/test.json

# The huge-page malloc train.py sets for itself (cnnjax/cpu_runtime.py), for the test process too.
test: $(VENV)/.installed-test data
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $(BIN)/python -m pytest -q --durations=15

clean:
	rm -rf $(VENV) runs
