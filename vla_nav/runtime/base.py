"""Compatibility: the engine interface lives in vla_nav.core.engine (below model/ and runtime/)."""
from vla_nav.core.engine import EngineSpec, ModelLoadError, PolicyEngine

__all__ = ['EngineSpec', 'ModelLoadError', 'PolicyEngine']
