# Two commands for a fresh machine: `make demo` and `make test`. Both bootstrap .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# DDS stays on loopback for everything started from here (never multicast onto the network).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MUJOCO_GL ?= egl

.PHONY: setup test test-fast test-timing lint demo bench soak clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check vla_nav test launch scripts setup.py

test: lint
	$(PY) -m pytest -q -m "not timing" test

# the inner loop: no ROS processes, nothing slow (seconds, not minutes)
test-fast: setup
	$(PY) -m pytest -q -m "not ros and not slow and not timing" test

# wall-clock / memory bounds (a benchmark, not CI): run on a quiet machine
test-timing: setup
	$(PY) -m pytest -q -s -m timing test

demo: setup
	$(PY) -m vla_nav demo

bench: setup
	$(PY) -m vla_nav bench

soak: setup
	$(PY) -m vla_nav soak --minutes 10

clean:
	rm -rf $(VENV) build *.egg-info demo_out
