# Two commands do everything:  `make quickstart`  and  `make test`  (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Real data beside the checkout when it is there; otherwise cnnlab's own search order applies.
export CNNLAB_DATA ?= $(if $(wildcard ../shared/data/fashion-mnist),$(abspath ../shared/data),)

.PHONY: setup quickstart test lint clean

# --system-site-packages: a torch already installed (a CUDA build, say) is seen and kept.
# Otherwise the CPU build torch==2.13.0 that lies on this disk is installed, never a CUDA download.
$(VENV)/.setup-done: pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.setup-done

quickstart: setup
	$(VENV)/bin/cnnlab train lenet

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check cnnlab tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
