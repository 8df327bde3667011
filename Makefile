# Two entry points: `make demo` and `make test`. Both build .venv from scratch if needed.
# `make test` is the default pytest run (everything but the `slow` tests) and then `make lint`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PEERS ?= 3
ROUNDS ?= 12
OUT ?= demo-out

.PHONY: demo test test-unit test-integration test-slow test-faults lint bench-efficiency bench-data clean

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
	$(MAKE) --no-print-directory lint

# No processes, no network: about 25 s.
test-unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

# DHTs, p2pd, subprocesses, the e2e swarm, the kill -9 fault scenario (not the `slow` ones): about 9.5 min on 2 cores.
test-integration: $(VENV)/.installed
	$(PY) -m pytest -q tests/integration

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

# Every fault scenario of devnet/faults/ on a real swarm in network namespaces (root, /dev/net/tun; nftables
# for the NAT host, libfaketime for the clocks), on two seeds: about 90 min on 2 cores. Records
# benchmarks/results/faults.json and prints the README's table; exits non-zero if a scenario failed.
FAULT_SEEDS ?= 1 2
test-faults: $(VENV)/.installed
	command -v nft >/dev/null && test -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 || apt-get install -y -q nftables faketime
	$(PY) -m devnet.faults --all --seeds $(FAULT_SEEDS) --work faults-out

# The swarm against centralized AdamW and dense DiLoCo at equal tokens, and two demos with and without
# overlap: about 30 min on 2 cores. Writes benchmarks/results/efficiency.{json,png}.
bench-efficiency: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) benchmarks/efficiency.py

# A 250M-token corpus from the installed packages' source: build rates, and a node's peak RSS on it against
# the stdlib corpus: about 15 min on 2 cores. Writes benchmarks/results/data_scale.{json,png}.
bench-data: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) benchmarks/data_scale.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(OUT)
