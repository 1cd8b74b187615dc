"""`python -m vla_nav export --model DIR [--out DIR] [--fp16]`: checkpoint -> ONNX graphs.

Writes frame_encoder/policy_head/text_encoder (.onnx, + .fp16.onnx with --fp16), tokenizer.json
and export.json to --out (default: <model>/onnx if writable, else ~/.cache/vla_nav/onnx/<sum>).
The ONNX engine runs this in a subprocess when its graphs are missing or stale.
"""
from __future__ import annotations

import argparse
import logging
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='', help='checkpoint directory (default: models/default)')
    parser.add_argument('--out', default='', help='output folder (default: <model>/onnx or the cache)')
    parser.add_argument('--fp16', action='store_true', help='also write fp16 graphs (*.fp16.onnx)')


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    from vla_nav.config import resolve_model_dir
    from vla_nav.core.engine import ModelLoadError
    from vla_nav.model.export import export_onnx
    try:
        out = export_onnx(resolve_model_dir(args.model), args.out or None, fp16=args.fp16)
    except ModelLoadError as error:
        print(f'export failed: {error}')
        return 1
    print(out)
    return 0
