# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results/demo
SCALESIM := .scalesim-venv/bin/python

.PHONY: demo test test-all bench experiments experiments-quick scalesim-golden lint clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip -c constraints.txt
	# torch first, pinned: an unpinned resolve would fetch a multi-GB CUDA build
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test,snnlibs]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spikepipe compare --network vgg11 --processors 2,4,8,16 --out $(OUT)

# one pytest worker per core, at most 4 (each imports torch: about 0.5 GiB); TEST_JOBS=0 runs in one process.
# The suite's timings are work-bound (deterministic solver budgets), so two workers on two cores halve its wall time
# without changing any result. pytest's exit 5 (nothing collected) must fail, not pass silently
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST    := $(PY) -m pytest -n $(TEST_JOBS) --dist worksteal

test: $(STAMP)
	@$(PYTEST); rc=$$?; if [ $$rc -eq 5 ]; then echo "error: no tests collected" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	@$(PYTEST) -m ""; rc=$$?; if [ $$rc -eq 5 ]; then echo "error: no tests collected" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m pytest -m benchmark -s

experiments: $(STAMP) $(SCALESIM)
	$(PY) experiments/run_all.py

experiments-quick: $(STAMP) $(SCALESIM)
	$(PY) experiments/run_all.py --quick

# SCALE-Sim lives in its own venv, never in the product's; this re-records tests/golden/scalesim_cycles.json
$(SCALESIM):
	$(PYTHON) -m venv .scalesim-venv && .scalesim-venv/bin/pip install -q scalesim==3.0.0 'numpy<2.4'

scalesim-golden: $(STAMP) $(SCALESIM)
	$(PY) experiments/scalesim_validation/run_scalesim.py --write-golden

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache
