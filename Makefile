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
# search a genotype, retrain it from scratch, report its complexity beside a U-Net.
DEMO ?= runs/demo
demo: $(STAMP)
	rm -rf $(DEMO)
	$(PY) search.py --dataset dsb2018 --epochs 6 --channels 8 --out $(DEMO)/search
	$(PY) retrain.py --genotype $(DEMO)/search/genotype.json --epochs 40 --out $(DEMO)/retrain
	$(VENV)/bin/lwnas report $(DEMO)/retrain --out $(DEMO)/report
	$(VENV)/bin/lwnas complexity ops --size 32 --channels 32
	@echo "demo done: pictures in $(DEMO)/search/figures, metrics in $(DEMO)/retrain/metrics.json"

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
