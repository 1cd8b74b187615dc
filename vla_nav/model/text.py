"""Instruction tokenisation shared by training (torch) and the ONNX runtime (no torch).

Both paths use the `tokenizers` library on the same tokenizer.json, so the ids a policy was trained
on are exactly the ids the robot feeds it. Imports numpy + tokenizers only.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vla_nav.core.engine import ModelLoadError


class InstructionTokenizer:
    """tokenizer.json -> int64 (ids, attention mask), truncated to `max_tokens`, padded per batch."""

    def __init__(self, tokenizer_file: str | os.PathLike, max_tokens: int,
                 add_special_tokens: bool = True) -> None:
        from tokenizers import Tokenizer
        self.path = Path(tokenizer_file)
        try:
            self._tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as error:  # missing, truncated or not a tokenizer
            raise ModelLoadError(self.path, f'cannot read tokenizer: {error}') from error
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self.max_tokens = max_tokens
        self.add_special_tokens = add_special_tokens
        self.pad_id = self._tokenizer.token_to_id('[PAD]') or 0

    def __call__(self, texts: list[str] | str) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) int64 ids and (B, L) int64 mask; L = longest text in the batch (>= 1)."""
        if isinstance(texts, str):
            texts = [texts]
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=self.add_special_tokens)
        length = max([1] + [len(encoding.ids) for encoding in encodings])
        ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        return ids, mask

    def fixed(self, texts: list[str] | str, length: int, pad_value: int = -1) -> np.ndarray:
        """(B, length) int64 ids, right-padded with pad_value (kosmos2 instruction encoding)."""
        ids, mask = self(texts)
        out = np.full((ids.shape[0], length), pad_value, dtype=np.int64)
        for row in range(ids.shape[0]):
            kept = ids[row][mask[row] > 0][:length]
            out[row, :len(kept)] = kept
        return out
