# Two entry points, each installing what it needs into .venv:
#   make demo   lwnas run (check, plan, search, random, 2-fold retrain, report, export) on the sample data
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): setup.cfg pyproject.toml constraints-test.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned, so pip never resolves a multi-GB CUDA build for it
	$(PY) -m pip install --quiet torch==2.13.0
	# test tools pinned by the constraints file; runtime dependencies stay ranges
	$(PY) -m pip install --quiet -c constraints-test.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the bundled sample data (DSB2018 format), small enough for 2 CPU cores, as one
# `lwnas run`: check the data, plan, search a genotype, draw a random genotype of the same cost,
# retrain the searched, the random and the U-Net baseline on the same 2 folds (every case outside
# the search's validation cases tested once), report the cross-validated comparison (mean +- sd
# over the folds, the paired signed-rank test per case) with its pictures, and export the searched
# network's fold ensemble to ONNX; then segment unseen images with the ensemble.
# The search runs on a 32x32 proxy of the images (a step costs a third of one at 64x64) for
# long enough that its decisions clear the noise margin: 10 weight-only epochs, then 30
# architecture epochs, without drop-path (on the sample's few training images its random masks
# only add noise to the weights the alphas are judged by; README, "Does the search beat random?").
# The networks are retrained at the sample images' own 64x64 for 40 epochs (the searched one takes
# off after about 28 of them on a fold's 5 training images: at the preset's 30 it had not).
# No loader workers: an epoch of the sample is 1-3 batches, and workers start anew each epoch,
# which cost more than they load (the search ran 2.3x faster without them).
# lwnas run again on the same --out skips every stage done; DEMO_FLAGS adds flags (lwnas run --help).
DEMO ?= runs/demo
FOLDS ?= 2
SEARCH_FLAGS ?= --search-epochs 40 --search-warmup-epochs 10 --search-image-size 32 --search-drop-path 0 \
	--search-channels 8
EPOCHS ?= 40
IMAGE_SIZE ?= 64
WORKERS ?= 0
DEMO_FLAGS ?=
demo: $(STAMP)
	rm -rf $(DEMO)
	$(VENV)/bin/lwnas run --dataset dsb2018 --out $(DEMO) --folds $(FOLDS) $(SEARCH_FLAGS) \
	    --retrain-epochs $(EPOCHS) --image-size $(IMAGE_SIZE) --workers $(WORKERS) $(DEMO_FLAGS)
	# unseen images in the DSB2018 layout (another seed), with masks, so predict scores them
	$(PY) -m data.sample --dataset dsb2018 --seed 7 --cases 4 --out $(DEMO)/unseen
	$(VENV)/bin/lwnas predict --checkpoint $(DEMO)/retrain/searched --input $(DEMO)/unseen \
	    --output $(DEMO)/predictions --no-progress
	@echo "demo done: the cross-validated comparison in $(DEMO)/report/report.md, the searched network's"
	@echo "fold ensemble in $(DEMO)/export, its segmentations of unseen images in $(DEMO)/predictions"

# Test processes (pytest-xdist): one per CPU core of the 2-core CI machine; each test runs torch
# on one thread (tests/conftest.py), so two processes use both cores.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) runs .pytest_cache
