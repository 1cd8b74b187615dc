"""Compatibility: the instruction tokenizer lives in vla_nav.model.text (torch-free)."""
from vla_nav.model.text import InstructionTokenizer

__all__ = ['InstructionTokenizer']
