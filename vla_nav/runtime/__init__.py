"""Inference engines behind one interface (see base.py). `load_engine` picks the backend.

The ONNX path must import no torch (memory on the robot): torch is imported only inside the
torch backend module, and ONNX graphs missing from a checkpoint are exported in a subprocess.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from vla_nav.core.engine import EngineSpec, ModelLoadError, PolicyEngine

__all__ = ['EngineSpec', 'ModelLoadError', 'PolicyEngine', 'load_engine', 'load_engine_or_explain']


def load_engine(model_dir: str | os.PathLike, backend: str = 'onnx', device: str = 'cpu',
                engine_cache_dir: str | os.PathLike | None = None) -> PolicyEngine:
    """Build the engine for a checkpoint directory.

    backend: 'onnx' (ONNX Runtime; device cpu|cuda|tensorrt picks providers with fallback),
    'torch', or 'package.module:factory' for a custom engine (called as
    factory(model_dir=..., device=..., engine_cache_dir=...) and returning a PolicyEngine).
    Raises ModelLoadError naming the file when the checkpoint is missing, corrupt or mismatched.
    """
    model_dir = Path(model_dir)
    if backend == 'onnx':
        from vla_nav.runtime.onnx_engine import OnnxEngine
        return OnnxEngine(model_dir, device=device, engine_cache_dir=engine_cache_dir)
    if backend == 'torch':
        from vla_nav.runtime.torch_engine import TorchEngine
        return TorchEngine(model_dir, device=device)
    if ':' in backend:
        module_name, _, factory_name = backend.partition(':')
        try:
            factory = getattr(importlib.import_module(module_name), factory_name)
        except (ImportError, AttributeError) as error:
            raise ModelLoadError(backend, f'cannot import engine factory: {error}') from error
        return factory(model_dir=model_dir, device=device, engine_cache_dir=engine_cache_dir)
    raise ValueError(f"unknown backend {backend!r}: use 'onnx', 'torch' or 'module:factory'")


def load_engine_or_explain(model_dir: str | os.PathLike, backend: str = 'onnx', device: str = 'cpu',
                           engine_cache_dir: str | os.PathLike | None = None) -> PolicyEngine:
    """load_engine for a process that must say in one line why it cannot start: any failure is
    raised as a ModelLoadError. A ModelLoadError already names the file; any other error is
    described as '<model_dir> (backend <backend>): <ErrorType>: <message>'."""
    try:
        return load_engine(model_dir, backend, device, engine_cache_dir)
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f'{model_dir} (backend {backend!r})',
                             f'{type(error).__name__}: {error}') from error
