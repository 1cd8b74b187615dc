"""TorchEngine: the same PolicyEngine on torch eager (training checks, kosmos2, GPU without ORT).

Imports torch (the ONNX path never imports this module). device: 'cpu' | 'cuda' ('tensorrt'
means cuda here); an unavailable CUDA falls back to CPU with one warning. `threads` sets torch's
process-wide intra-op thread count (None: torch's default).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from vla_nav.core.engine import PolicyEngine
from vla_nav.model.checkpoint import load_checkpoint
from vla_nav.runtime.inputs import check_frames, check_window

LOG = logging.getLogger('vla_nav.runtime')


class TorchEngine(PolicyEngine):
    backend = 'torch'

    def __init__(self, model_dir: str | os.PathLike, device: str = 'cpu', threads: int | None = None,
                 **_ignored) -> None:
        if threads:
            torch.set_num_threads(threads)  # process-wide: torch has no per-module setting
        wanted = 'cuda' if device in ('cuda', 'tensorrt') else 'cpu'
        if wanted == 'cuda' and not torch.cuda.is_available():
            LOG.warning('device %r: torch %s has no CUDA; falling back to CPU', device, torch.__version__)
            wanted = 'cpu'
        self.device = torch.device(wanted)
        self.model_dir = Path(model_dir)
        self.policy = load_checkpoint(self.model_dir, map_location=self.device).eval()
        self.provider = f'torch-{wanted}'
        cfg = self.config = self.policy.config
        self.spec = cfg.engine_spec()
        self._instruction: torch.Tensor | None = None

    def set_instruction(self, text: str) -> None:
        self._instruction = self.policy.embed_instructions([text])

    def embed_instruction(self, text: str) -> np.ndarray:
        return self.policy.embed_instructions([text]).float().cpu().numpy()

    def encode_frame(self, rgb: np.ndarray) -> np.ndarray:
        return self.encode_frames(rgb[None] if rgb.ndim == 3 else rgb)[0]

    def encode_frames(self, rgb: np.ndarray) -> np.ndarray:
        frames = check_frames(rgb, self.spec)
        with torch.inference_mode():
            images = torch.from_numpy(frames).to(self.device)
            return self.policy.encode_frame(images, self._require_instruction()).float().cpu().numpy()

    def act(self, features: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        batch_features, batch_states = check_window(features, states, self.spec)
        with torch.inference_mode():
            feats = torch.from_numpy(batch_features).to(self.device)
            state_tensor = None if batch_states is None else torch.from_numpy(batch_states).to(self.device)
            chunk = self.policy.predict_chunk(feats, self._require_instruction(), state_tensor)
        return chunk[0].float().cpu().numpy()

    def _require_instruction(self) -> torch.Tensor:
        if self._instruction is None:
            raise RuntimeError('set_instruction(text) must be called before encode_frame/act')
        return self._instruction
