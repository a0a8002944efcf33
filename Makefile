# Two entry points, each installing what it needs into .venv:
#   make demo   search -> derive -> retrain -> report on the bundled sample data
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

# The main job on the bundled sample data (DSB2018 format), small enough for 2 CPU cores:
# search a genotype, retrain it from scratch beside a cost-matched random genotype and the
# U-Net baseline (same splits, same settings), segment unseen images, export it, compare.
# The search runs on a 32x32 proxy of the images (a step costs a third of one at 64x64) for
# long enough that its decisions clear the noise margin: 10 weight-only epochs, then 90
# architecture steps, without drop-path (on 6 training images its random masks only add noise
# to the weights the alphas are judged by; README, "Does the search beat random?"). The
# networks are retrained at the sample images' own 64x64 (data.presets: sample_image_size).
# No loader workers: an epoch of the sample is 1-3 batches, and workers start anew each epoch,
# which cost more than they load (the search ran 2.3x faster without them).
DEMO ?= runs/demo
EPOCHS ?= 40
SEARCH_FLAGS ?= --epochs 40 --warmup-epochs 10 --image-size 32 --drop-path 0 --channels 8
IMAGE_SIZE ?= 64
WORKERS ?= 0
demo: $(STAMP)
	rm -rf $(DEMO)
	$(PY) search.py --dataset dsb2018 $(SEARCH_FLAGS) --workers $(WORKERS) --out $(DEMO)/search
	$(VENV)/bin/lwnas random-genotype --like $(DEMO)/search/genotype.json --seed 1 \
	    --out $(DEMO)/random/genotype.json
	$(PY) retrain.py --genotype $(DEMO)/search/genotype.json --epochs $(EPOCHS) \
	    --image-size $(IMAGE_SIZE) --workers $(WORKERS) --out $(DEMO)/retrain
	$(PY) retrain.py --genotype $(DEMO)/random/genotype.json --epochs $(EPOCHS) \
	    --image-size $(IMAGE_SIZE) --workers $(WORKERS) --out $(DEMO)/random/retrain
	$(PY) retrain.py --model unet2d --dataset dsb2018 --splits $(DEMO)/search/splits.json \
	    --epochs $(EPOCHS) --image-size $(IMAGE_SIZE) --workers $(WORKERS) --out $(DEMO)/unet2d
	# unseen images in the DSB2018 layout (another seed), with masks, so predict scores them
	$(PY) -m data.sample --dataset dsb2018 --seed 7 --cases 4 --out $(DEMO)/unseen
	$(VENV)/bin/lwnas predict --checkpoint $(DEMO)/retrain/best.pt --input $(DEMO)/unseen \
	    --output $(DEMO)/predictions --no-progress
	$(VENV)/bin/lwnas export --checkpoint $(DEMO)/retrain/best.pt --format onnx --output $(DEMO)/searched.onnx
	$(VENV)/bin/lwnas report $(DEMO)/retrain $(DEMO)/random/retrain $(DEMO)/unet2d --out $(DEMO)/report
	@echo "demo done: search pictures in $(DEMO)/search/figures, the comparison in $(DEMO)/report,"
	@echo "segmentations of unseen images in $(DEMO)/predictions, the exported network $(DEMO)/searched.onnx"

# Test processes (pytest-xdist): one per CPU core of the 2-core CI machine; each test runs torch
# on one thread (tests/conftest.py), so two processes use both cores.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) runs .pytest_cache
