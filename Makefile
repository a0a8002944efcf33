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
DEMO ?= runs/demo
EPOCHS ?= 40
demo: $(STAMP)
	rm -rf $(DEMO)
	$(PY) search.py --dataset dsb2018 --epochs 6 --channels 8 --out $(DEMO)/search
	$(VENV)/bin/lwnas random-genotype --like $(DEMO)/search/genotype.json --seed 1 \
	    --out $(DEMO)/random/genotype.json
	$(PY) retrain.py --genotype $(DEMO)/search/genotype.json --epochs $(EPOCHS) --out $(DEMO)/retrain
	$(PY) retrain.py --genotype $(DEMO)/random/genotype.json --epochs $(EPOCHS) --out $(DEMO)/random/retrain
	$(PY) retrain.py --model unet2d --dataset dsb2018 --splits $(DEMO)/search/splits.json \
	    --epochs $(EPOCHS) --out $(DEMO)/unet2d
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
