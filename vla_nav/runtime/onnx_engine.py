"""OnnxEngine: the policy on ONNX Runtime (CPU, CUDA or TensorRT), never importing torch.

Per step the caller encodes only the newest frame (`frame_encoder` graph) and runs the head over
the 8 cached features (`policy_head` graph); the instruction is embedded once per goal
(`text_encoder` graph, tokenised with the `tokenizers` library; a kosmos2 policy takes the token
ids themselves and has no text graph).

Graphs are a cache next to the checkpoint (see vla_nav/model/export.py); models/default ships
its fp32 graphs in git. Before use, every graph file is checked against the sha256 in export.json,
and the text graph's external weights (the MiniLM package's model.safetensors) against theirs;
the text graph then runs from a cache folder beside a hard link to those weights (`linked_graph`).
When graphs are missing or stale (their checksum no longer matches config.json) the engine runs
`python -m vla_nav export --model DIR --out DIR [--fp16]` in a SUBPROCESS, so this process never
imports torch, and logs one line saying so. On a torch-free install (the robot) that is a clear
ModelLoadError naming the command to run on a desktop instead.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vla_nav.core.engine import ModelLoadError, PolicyEngine
from vla_nav.model.config import read_checkpoint_config
from vla_nav.model.export import (
    TEXT_GRAPH,
    default_onnx_dir,
    export_checksum,
    export_command,
    find_fresh_export,
    graph_file,
    linked_graph,
    read_export_info,
    verify_export_files,
    verify_weights_file,
)
from vla_nav.model.text import InstructionTokenizer
from vla_nav.runtime.inputs import check_frames, check_window
from vla_nav.runtime.providers import TENSORRT, available_chain, create_session

LOG = logging.getLogger('vla_nav.runtime')
PRECISIONS = ('fp32', 'fp16')
EXPORT_TIMEOUT_S = 900


def ensure_exported(model_dir: Path, precision: str = 'fp32', onnx_dir: Path | None = None) -> Path:
    """A folder with fresh graphs for the checkpoint, exporting in a subprocess if needed."""
    verify_weights_file(model_dir)
    fresh = find_fresh_export(model_dir, precision, onnx_dir)
    if fresh is not None:
        return fresh
    target = Path(onnx_dir) if onnx_dir else default_onnx_dir(model_dir, export_checksum(model_dir))
    # the CPU graphs are what TensorRT gets too; fp16 graphs only when asked for
    command = [sys.executable, '-m', 'vla_nav', 'export', '--model', str(model_dir), '--out', str(target)]
    info = read_export_info(target)
    if precision == 'fp16' or (info and 'fp16' in info.get('precisions', [])):
        command.append('--fp16')
    if importlib.util.find_spec('torch') is None:
        # the robot install: graphs come from a desktop (models/default ships them in git)
        flag = ' --fp16' if '--fp16' in command else ''
        raise ModelLoadError(target, f'no fresh {precision} ONNX graphs for {model_dir} (missing, or '
                             'exported from another config.json/exporter version) and torch is not '
                             'installed to export them: on a machine with the dev install run '
                             f'`{export_command(model_dir, target)}{flag}` and copy {target} here')
    LOG.warning('ONNX graphs for %s are missing or stale: exporting to %s in a subprocess '
                '(torch stays out of this process; takes ~10-60 s once)', model_dir, target)
    started = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                                env=dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1'))
    except subprocess.TimeoutExpired as error:
        raise ModelLoadError(model_dir, f'ONNX export timed out after {EXPORT_TIMEOUT_S} s') from error
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['(no output)']
        raise ModelLoadError(model_dir, f'ONNX export failed (exit {result.returncode}): {tail[0]}')
    fresh = find_fresh_export(model_dir, precision, target)
    if fresh is None:
        raise ModelLoadError(target, 'ONNX export finished but left no fresh graphs')
    LOG.info('ONNX export done in %.1f s', time.monotonic() - started)
    return fresh


class OnnxEngine(PolicyEngine):
    """PolicyEngine on ONNX Runtime. device: 'cpu' | 'cuda' | 'tensorrt' (falls back, logged)."""

    backend = 'onnx'

    def __init__(self, model_dir: str | os.PathLike, device: str = 'cpu',
                 engine_cache_dir: str | os.PathLike | None = None, precision: str = 'fp32',
                 onnx_dir: str | os.PathLike | None = None, threads: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision {precision!r} not in {PRECISIONS}')
        self.model_dir = Path(model_dir)
        self.config, _ = read_checkpoint_config(self.model_dir)
        # TensorRT builds its own fp16 engine from the fp32 graph (better than pre-cast fp16 ops)
        graph_precision = 'fp32' if device == 'tensorrt' else precision
        self.onnx_dir = ensure_exported(self.model_dir, graph_precision,
                                        Path(onnx_dir) if onnx_dir else None)
        self.precision = precision
        info = read_export_info(self.onnx_dir) or {}
        verify_export_files(self.model_dir, self.onnx_dir, info, graph_precision)
        text_info = info.get('text', {})
        chain = available_chain(device, engine_cache_dir, precision)
        sessions = {TEXT_GRAPH: None}
        # the text encoder runs once per goal with a different token count each time: TensorRT
        # would rebuild its engine for every new length, so it gets CUDA (or CPU) only
        text_chain = [(name, options) for name, options in chain if name != TENSORRT] or chain
        for name in info.get('graphs', ['frame_encoder', 'policy_head', TEXT_GRAPH]):
            path = self.onnx_dir / graph_file(name, graph_precision)
            if name == TEXT_GRAPH and text_info.get('external_weights'):
                # weights read from the installed MiniLM package (checked by sha256), not from git
                path = linked_graph(path, text_info)
            try:
                sessions[name] = create_session(path, text_chain if name == TEXT_GRAPH else chain, threads)
            except Exception as error:
                raise ModelLoadError(path, f'ONNX Runtime cannot load the graph: {error}') from error
        self._frame, self._head, self._text = (sessions['frame_encoder'], sessions['policy_head'],
                                               sessions[TEXT_GRAPH])
        self.provider = self._frame.get_providers()[0]
        self.cost = info.get('cost') or {}  # params_m, gflops_per_step (computed at export)
        self._text_kind = text_info.get('kind', 'minilm')
        self._text_length = int(text_info.get('max_tokens', self.config.text_max_tokens))
        self._tokenizer = InstructionTokenizer(
            self.onnx_dir / text_info.get('tokenizer', 'tokenizer.json'), self._text_length,
            add_special_tokens=bool(text_info.get('add_special_tokens', True)))
        self.spec = self.config.engine_spec()
        self._instruction: np.ndarray | None = None
        # the exporter drops inputs a graph ignores (e.g. a kosmos2 head has no instruction input)
        self._head_inputs = {node.name for node in self._head.get_inputs()}

    # --- PolicyEngine ------------------------------------------------------------------------
    def set_instruction(self, text: str) -> None:
        self._instruction = self.embed_instruction(text)

    def embed_instruction(self, text: str) -> np.ndarray:
        """(1, text_dim) float32: MiniLM embedding, or token ids for a kosmos2 policy."""
        if self._text_kind == 'token_ids':
            return self._tokenizer.fixed([text], self._text_length).astype(np.float32)
        ids, mask = self._tokenizer([text])
        return self._text.run(None, {'input_ids': ids, 'attention_mask': mask})[0].astype(np.float32)

    def encode_frame(self, rgb: np.ndarray) -> np.ndarray:
        return self.encode_frames(rgb[None] if rgb.ndim == 3 else rgb)[0]

    def encode_frames(self, rgb: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, F) float32 (the naive loop and batch tools)."""
        return self._frame.run(None, {'image': check_frames(rgb, self.spec),
                                      'instruction': self._require_instruction()})[0]

    def act(self, features: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        batch_features, batch_states = check_window(features, states, self.spec)
        feeds = {'features': batch_features, 'instruction': self._require_instruction()}
        if batch_states is not None:
            feeds['states'] = batch_states
        feeds = {name: value for name, value in feeds.items() if name in self._head_inputs}
        return self._head.run(None, feeds)[0][0]

    def _require_instruction(self) -> np.ndarray:
        if self._instruction is None:
            raise RuntimeError('set_instruction(text) must be called before encode_frame/act')
        return self._instruction
