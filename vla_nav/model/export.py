"""ONNX export: the graphs the ONNX Runtime engine runs, as a cache beside a checkpoint.

Graphs (fp32 always; `<name>.fp16.onnx` too with fp16=True; inputs/outputs keep their dtypes):
  frame_encoder  image uint8 (B,H,W,3) RGB + instruction float32 (1,text_dim) -> feature (B,F)
  policy_head    features (1,W,F) + instruction (1,text_dim) [+ states (1,W,S)]
                 -> chunk (1,C,D) in PHYSICAL units (tanh/bins + denormalisation inside)
  text_encoder   input_ids, attention_mask int64 (1,L) -> instruction (1,384)   (edge backbone;
                 a kosmos2 policy's instruction input is its token ids, made by the runtime,
                 so it has no text graph; its frame_encoder holds the whole Kosmos-2: a real
                 1.6B model exports with external data files beside the .onnx)
plus tokenizer.json and export.json ({"checksum", "precisions", "spec", "text", ...}). The
checksum covers the checkpoint's config.json (which holds the weights' sha256) and
EXPORT_VERSION, so the engine can tell a stale cache from a fresh one without torch.

Where: `<model_dir>/onnx/` when writable, else `~/.cache/vla_nav/onnx/<checksum>/`
(`default_onnx_dir`). Run as `python -m vla_nav export --model DIR [--out DIR] [--fp16]`; the
ONNX engine runs that command in a subprocess when graphs are missing or stale.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from vla_nav.core.engine import ModelLoadError

EXPORT_VERSION = 1
EXPORT_INFO_FILE = 'export.json'
ONNX_SUBDIR = 'onnx'
OPSET = 17
LOG = logging.getLogger('vla_nav.model.export')


# --- torch-free helpers (the ONNX engine imports these) ------------------------------------------
def export_checksum(model_dir: str | os.PathLike) -> str:
    """sha256 of config.json + EXPORT_VERSION: changes whenever the checkpoint or exporter does."""
    from vla_nav.model.config import CONFIG_FILE
    digest = hashlib.sha256(Path(model_dir, CONFIG_FILE).read_bytes())
    digest.update(f'export-version={EXPORT_VERSION}'.encode())
    return digest.hexdigest()


def verify_weights_file(model_dir: str | os.PathLike) -> None:
    """The checkpoint's weights must match the sha256 in config.json even when cached graphs exist:
    a truncated or replaced model.safetensors must stop start-up, not run on stale graphs."""
    from vla_nav.model.config import CONFIG_FILE, WEIGHTS_FILE
    config_path, weights_path = Path(model_dir, CONFIG_FILE), Path(model_dir, WEIGHTS_FILE)
    try:
        expected = (json.loads(config_path.read_text(encoding='utf-8')).get('weights') or {}).get('sha256')
    except (OSError, ValueError, AttributeError) as error:
        raise ModelLoadError(config_path, f'cannot read the checkpoint config: {error}') from error
    if not weights_path.is_file():
        raise ModelLoadError(weights_path, 'missing (the checkpoint needs its trained weights)')
    if expected and hashlib.sha256(weights_path.read_bytes()).hexdigest() != expected:
        raise ModelLoadError(weights_path, f'sha256 differs from the one in {CONFIG_FILE}: the file was '
                                           'truncated, corrupted or replaced')


def graph_file(name: str, precision: str) -> str:
    return f'{name}.onnx' if precision == 'fp32' else f'{name}.{precision}.onnx'


def cache_root() -> Path:
    return Path(os.environ.get('VLA_NAV_CACHE', '~/.cache/vla_nav')).expanduser() / 'onnx'


def default_onnx_dir(model_dir: str | os.PathLike, checksum: str | None = None) -> Path:
    """<model_dir>/onnx if we may write there, else the per-user cache keyed by checksum."""
    model_dir = Path(model_dir)
    target = model_dir / ONNX_SUBDIR
    if (target.is_dir() and os.access(target, os.W_OK)) or (not target.exists()
                                                              and os.access(model_dir, os.W_OK)):
        return target
    return cache_root() / (checksum or export_checksum(model_dir))[:16]


def read_export_info(onnx_dir: Path) -> dict | None:
    try:
        return json.loads((onnx_dir / EXPORT_INFO_FILE).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def find_fresh_export(model_dir: str | os.PathLike, precision: str = 'fp32',
                      onnx_dir: str | os.PathLike | None = None) -> Path | None:
    """An onnx folder whose graphs match the checkpoint and include `precision`, or None."""
    checksum = export_checksum(model_dir)
    candidates = [Path(onnx_dir)] if onnx_dir else [Path(model_dir) / ONNX_SUBDIR,
                                                     cache_root() / checksum[:16]]
    for candidate in candidates:
        info = read_export_info(candidate)
        if not info or info.get('checksum') != checksum or precision not in info.get('precisions', []):
            continue
        needed = [graph_file(name, precision) for name in info.get('graphs', [])]
        if all((candidate / name).is_file() for name in needed):
            return candidate
    return None


# --- the export itself (torch) -----------------------------------------------------------------
def _graph_modules(policy):
    import torch
    from torch import nn

    class FrameEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, image: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
            trunk = self.policy.backbone.encode_trunk(image)
            return self.policy.encode_frame_from_trunk(trunk, instruction.expand(image.shape[0], -1))

    class PolicyHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, features: torch.Tensor, instruction: torch.Tensor,
                    states: torch.Tensor | None = None) -> torch.Tensor:
            return self.policy.predict_chunk(features, instruction, states)

    return FrameEncoder().eval(), PolicyHead().eval()


def _export(module, args: tuple, path: Path, input_names, output_names, dynamic_axes) -> None:
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)


def _to_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = onnx.load(str(source))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # keep_io_types: callers always feed uint8/float32 and read float32
        converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target))


def export_onnx(model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                fp16: bool = False) -> Path:
    """Export the checkpoint's graphs to out_dir (default: default_onnx_dir) and return it."""
    import torch

    from vla_nav.model.checkpoint import load_checkpoint
    model_dir = Path(model_dir)
    checksum = export_checksum(model_dir)
    out_dir = Path(out_dir) if out_dir else default_onnx_dir(model_dir, checksum)
    policy = load_checkpoint(model_dir).eval()
    config = policy.config
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix='.export-'))
    try:
        frame_encoder, head = _graph_modules(policy)
        size, window = config.image_size, config.window
        image = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
        instruction = policy.embed_instructions(['go to the red cone'])
        features = torch.randn(1, window, config.feature_dim)
        _export(frame_encoder, (image, instruction), staging / graph_file('frame_encoder', 'fp32'),
                ['image', 'instruction'], ['feature'], {'image': {0: 'batch'}, 'feature': {0: 'batch'}})
        head_args, head_inputs = (features, instruction), ['features', 'instruction']
        if config.state_dim:
            head_args += (torch.zeros(1, window, config.state_dim),)
            head_inputs.append('states')
        _export(head, head_args, staging / graph_file('policy_head', 'fp32'), head_inputs, ['chunk'], None)
        graphs = ['frame_encoder', 'policy_head']
        if config.backbone == 'edge':
            tokenizer, text_encoder = policy.backbone.text_encoder()
            ids, mask = tokenizer(['go to the red cone'])
            _export(text_encoder, (torch.from_numpy(ids), torch.from_numpy(mask)),
                    staging / graph_file('text_encoder', 'fp32'), ['input_ids', 'attention_mask'],
                    ['instruction'], {'input_ids': {1: 'tokens'}, 'attention_mask': {1: 'tokens'}})
            graphs.append('text_encoder')
            text = {'kind': 'minilm', 'tokenizer': 'tokenizer.json', 'max_tokens': config.text_max_tokens,
                    'dim': config.text_dim}
        else:  # kosmos2 reads token ids: the runtime tokenises, no text graph
            tokenizer = policy.backbone.tokenizer()
            text = {'kind': 'token_ids', 'tokenizer': 'tokenizer.json',
                    'max_tokens': config.kosmos2_max_text_tokens, 'dim': config.text_dim,
                    'pad_value': -1, 'add_special_tokens': False}
        shutil.copyfile(tokenizer.path, staging / 'tokenizer.json')
        precisions = ['fp32']
        if fp16:
            for name in graphs:
                _to_fp16(staging / graph_file(name, 'fp32'), staging / graph_file(name, 'fp16'))
            precisions.append('fp16')
        info = {
            'checksum': checksum, 'export_version': EXPORT_VERSION, 'opset': OPSET,
            'precisions': precisions, 'graphs': graphs, 'backbone': config.backbone,
            'spec': {'image_height': size, 'image_width': size, 'feature_dim': config.feature_dim,
                     'window': window, 'chunk': config.chunk, 'action_dim': config.action_dim,
                     'dt': config.dt, 'state_dim': config.state_dim},
            'text': text,
            'torch_version': torch.__version__,
        }
        (out_dir / EXPORT_INFO_FILE).unlink(missing_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out_dir / item.name)
        # written last: a reader sees either the old complete export or the new one
        (out_dir / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + '\n', encoding='utf-8')
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    LOG.info('exported %s to %s (%s)', model_dir, out_dir, ', '.join(precisions))
    return out_dir
