# The two commands of the README: `make demo` and `make test`. Both set up .venv first when needed
# (scripts/setup.sh is idempotent and returns at once when nothing changed). The demo build resumes, so a
# second `make demo` (or one after an interruption) finishes the same dataset instead of refusing the folder.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
# One thread per process: the suite runs in two xdist workers on a 2-core machine.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/hsfpn-data build-dotamini10 --out $(DEMO_OUT)/DOTAmini10 --resume
	$(VENV)/bin/hsfpn-data stats $(DEMO_OUT)/DOTAmini10 --out $(DEMO_OUT)/DOTAmini10/stats

test: setup
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/bench_neck.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_assign.py
	$(PY) benchmarks/bench_train_iter.py

clean:
	rm -rf $(VENV) runs .pytest_cache
