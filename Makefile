# The two commands of the README: `make demo` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CONFIG ?= configs/fashion_mnist/default.py
DEMO_WORKDIR ?= runs/demo
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test setup data clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,torch]'
	touch $@

# Real Fashion-MNIST from Debian's dataset-fashion-mnist (needs root; otherwise says what to run).
data:
	@if [ ! -f $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; \
	  fi; \
	fi

demo: setup data
	$(BIN)/python train.py --config $(DEMO_CONFIG) --workdir $(DEMO_WORKDIR)
	$(BIN)/python eval.py --workdir $(DEMO_WORKDIR) --split test --out $(DEMO_WORKDIR)/test.json

test: setup data
	$(BIN)/python -m pytest -q --durations=15

clean:
	rm -rf $(VENV) runs
