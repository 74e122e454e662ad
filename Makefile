# Every target works on a fresh clone with only Python 3.11 and make; `conformance` and the
# Inspector test also need Node >= 20 and npm (pinned tools go to ~/.cache/wandb-lens-npm, see scripts/npm_tools.py).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := demo-data

.PHONY: install demo test bench bench-scale clean conformance npm-tools snapshot load fuzz mcpb

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/wandb-lens demo --out $(DEMO_DIR)
	$(PY) -m wandb_lens.tour $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

# issue 18's scaling table alone, on a chosen grid: make bench-scale GRID=10k:5,100k:50,1m:50
bench-scale: $(STAMP)
	$(PY) benchmarks/bench_scale.py --grid $(or $(GRID),10k:5,10k:50,100k:5,100k:50)

# the long load test (tests/test_load.py as a script): 20 SDK clients, 2,000 tool calls over streamable HTTP
# on loopback; prints calls, errors, p50/p95 latency and the server's peak memory; then 5,000 half-open
# connections from one client address while another one is answered (tests/test_http_exhaustion.py)
load: $(STAMP)
	$(PY) tests/test_load.py --clients 20 --calls 2000
	WANDB_LENS_HALF_OPEN=5000 $(PY) -m pytest tests/test_http_exhaustion.py -k half_open -s

# the official MCP conformance scenarios against `wandb-lens serve --transport http` on loopback
conformance: $(STAMP)
	$(PY) scripts/conformance.py

# install the pinned conformance suite, Inspector CLI and MCPB CLI now (tests, `conformance` and `mcpb` do it on demand)
npm-tools: $(STAMP)
	$(PY) scripts/npm_tools.py

# rewrite tests/snapshots/tools_list.json from the server's tools/list answer (review the diff), and the
# tools and prompts listed in the MCP Bundle's mcpb/manifest.json
snapshot: $(STAMP)
	$(PY) scripts/snapshot_tools_list.py
	$(PY) scripts/build_mcpb.py --sync

# the MCP Bundle for one-click install (dist/wandb-lens-<version>.mcpb): syncs mcpb/manifest.json with the
# server's tools and prompts, then validates and packs it with the pinned MCPB CLI (needs Node >= 20)
mcpb: $(STAMP)
	$(PY) scripts/build_mcpb.py

# the long fuzz run: hypothesis examples per property raised from 25-30 to 1,000 (bad-input schema
# fuzzing of every tool, .wandb and trace-store mutations); about 10 minutes
fuzz: $(STAMP)
	WANDB_LENS_FUZZ_EXAMPLES=1000 $(PY) -m pytest tests/test_bad_input.py tests/test_fuzz_readers.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache dist
