# The two commands of the README: `make demo` and `make test`. Both set up .venv first when needed
# (scripts/setup.sh is idempotent and returns at once when nothing changed). The demo build resumes, so a
# second `make demo` (or one after an interruption) finishes the same dataset instead of refusing the folder.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
# The demo's HS-FPN job folder (hsfpn-repro table4 --preset demo) and the full synthetic scenes it detects on.
DEMO_JOB := $(DEMO_OUT)/demo/dotamini10/faster_rcnn__hsfpn
DEMO_SCENES := $(DEMO_OUT)/synthetic_dota
DEMO_DETECT := $(DEMO_OUT)/detect
# One thread per process: the suite runs in two xdist workers on a 2-core machine.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

# The whole chain on the embedded synthetic sample: build, statistics, a short CPU training of a compact FPN and
# HS-FPN detector (smoke figures, but ones that show learning), their evaluation, then detect on a full synthetic
# scene with its preview (TP / FP / FN against the ground truth), and the full-image evaluation under both
# protocols. Every step resumes or skips finished work, so a second run is quick.
demo: setup
	$(VENV)/bin/hsfpn-data build-dotamini10 --out $(DEMO_OUT)/DOTAmini10 --resume
	$(VENV)/bin/hsfpn-data stats $(DEMO_OUT)/DOTAmini10 --out $(DEMO_OUT)/DOTAmini10/stats
	$(VENV)/bin/hsfpn-repro table4 --preset demo --data-root $(DEMO_OUT)/DOTAmini10 --work-dir $(DEMO_OUT) \
		--rows faster_rcnn --report-every 60
	$(VENV)/bin/hsfpn-data synthetic-dota --out $(DEMO_SCENES)
	$(VENV)/bin/hsfpn-data coco-gt --dota-root $(DEMO_SCENES) --split val --out $(DEMO_DETECT)/val_full.json
	$(VENV)/bin/hsfpn-repro detect --config $(DEMO_JOB)/job_config.py --checkpoint $(DEMO_JOB)/model.pth \
		--images $(DEMO_SCENES)/val/images --out $(DEMO_DETECT) --gt $(DEMO_DETECT)/val_full.json --resume
	$(VENV)/bin/hsfpn-repro eval --ann $(DEMO_DETECT)/val_full.json --dets $(DEMO_DETECT)/results.bbox.json \
		--out $(DEMO_DETECT)/aitod_report.json
	$(VENV)/bin/hsfpn-repro eval --protocol dota --dets $(DEMO_DETECT) --ann $(DEMO_SCENES)/val/labelTxt \
		--out $(DEMO_DETECT)/dota_report.json
	@echo "demo: SMOKE figures (minutes of CPU training of a compact detector on synthetic scenes): table in" \
		"$(DEMO_OUT)/demo/table4.md, preview in $(DEMO_DETECT)/previews/, curves: tensorboard --logdir $(DEMO_OUT)/demo"

test: setup
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# gpu_suite.py: the full GPU suite where torch sees a GPU, its CPU smoke run (--quick) elsewhere.
bench: setup
	$(PY) benchmarks/bench_neck.py
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_assign.py
	$(PY) benchmarks/bench_train_iter.py
	$(PY) benchmarks/bench_train_iter.py --processes 2 --row faster_rcnn --size 256 --iters 5 --warmup 2 --boxes 50
	$(PY) benchmarks/bench_detect.py
	$(PY) benchmarks/bench_aitod.py
	$(PY) benchmarks/bench_slice.py
	$(PY) benchmarks/bench_dataset_check.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/gpu_suite.py $$($(PY) -c "import torch; print('' if torch.cuda.is_available() else '--quick')")

clean:
	rm -rf $(VENV) runs .pytest_cache
