"""Compatibility: PolicyLoop lives in vla_nav.core.loop (numpy only)."""
from vla_nav.core.loop import Chunk, PolicyLoop

__all__ = ['Chunk', 'PolicyLoop']
