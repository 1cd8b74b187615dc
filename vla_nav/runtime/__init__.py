"""Inference engines behind one interface (see base.py). `load_engine` picks the backend.

The ONNX path must import no torch (memory on the robot): keep torch imports inside the torch
backend module.
"""
from vla_nav.runtime.base import EngineSpec, ModelLoadError, PolicyEngine  # noqa: F401
