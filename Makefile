# Two commands for a fresh machine: `make demo` and `make test`. Both bootstrap .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The robot's install (Python 3.10, numpy 1.x, no torch; requirements-robot*.txt), checked by `make test`
VENV310 := .venv310
PY310 := $(VENV310)/bin/python
STAMP310 := $(VENV310)/.installed
# the first Python 3.10 that runs (a pyenv shim on PATH may not: it only works where 3.10 is selected)
PYTHON310 ?= $(shell for candidate in $$(command -v python3.10) $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3; do \
	"$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$candidate"; break; }; done)

# DDS stays on loopback for everything started from here (never multicast onto the network).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MUJOCO_GL ?= egl

.PHONY: setup setup-py310 test test-fast test-timing test-py310 lint demo bench soak clean

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
	@$(MAKE) --no-print-directory test-py310

# the inner loop: no ROS processes, nothing slow (seconds, not minutes)
test-fast: setup
	$(PY) -m pytest -q -m "not ros and not slow and not timing" test

# wall-clock / memory bounds (a benchmark, not CI): run on a quiet machine
test-timing: setup
	$(PY) -m pytest -q -s -m timing test

# Every test that needs neither rclpy nor torch, on the robot's dependency set: those that do skip
# with the reason; test_robot_install.py checks the ONNX path imports no torch.
ifeq ($(PYTHON310),)
setup-py310 test-py310:
	@echo "$@: SKIPPED - no Python 3.10 here (python3.10 on PATH or a pyenv 3.10.x): the torch-free robot install is not tested"
else
setup-py310: $(STAMP310)

$(STAMP310): requirements-robot.txt requirements-robot-nodeps.txt requirements.txt
	@test -x $(PY310) || $(PYTHON310) -m venv $(VENV310)
	$(PY310) -m pip install -q --upgrade pip
	$(PY310) -m pip install -q -r requirements-robot.txt $$(grep -E '^pytest(-timeout)?==' requirements.txt)
	$(PY310) -m pip install -q --no-deps -r requirements-robot-nodeps.txt
	@if $(PY310) -c 'import torch' 2>/dev/null; then echo "$(VENV310) must not contain torch"; exit 1; fi
	@touch $(STAMP310)

test-py310: setup-py310
	$(PY310) -m pytest -q -p no:cacheprovider -m "not timing" test
endif

demo: setup
	$(PY) -m vla_nav demo

bench: setup
	$(PY) -m vla_nav bench

soak: setup
	$(PY) -m vla_nav soak --minutes 10

clean:
	rm -rf $(VENV) $(VENV310) build *.egg-info demo_out
