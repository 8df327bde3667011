# Two entry points: `make demo` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PEERS ?= 3
ROUNDS ?= 12
OUT ?= demo-out

.PHONY: demo test test-slow clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# Exact torch pin first: any looser spec pulls several GB of CUDA wheels.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/gradswarm demo --peers $(PEERS) --rounds $(ROUNDS) --out $(OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(OUT)
