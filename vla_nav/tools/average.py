"""`python -m vla_nav average --models A B [C ...] --out DIR [--weights ...]`: a weight average.

The mean of fine-tunes that share one init ("model soup"), or of a model and its own fine-tune
(WiSE-FT); see vla_nav.training.average. The result keeps the first model's config and is a normal
checkpoint: eval-sim, publish and export take it like any other.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--models', nargs='+', required=True,
                        help='checkpoint dirs of one architecture: fine-tunes of one init, or a model and '
                             'its fine-tune (the result keeps the FIRST one\'s config)')
    parser.add_argument('--weights', nargs='+', type=float, default=None,
                        help='one weight per model, normalised to sum 1 (default: equal)')
    parser.add_argument('--out', required=True, help='output checkpoint dir')


def run(args: argparse.Namespace) -> int:
    from vla_nav.core.engine import ModelLoadError
    from vla_nav.training.average import average_checkpoints
    try:
        out = average_checkpoints(args.models, args.out, args.weights)
    except (ValueError, ModelLoadError) as error:
        print(f'average failed: {error}')
        return 1
    print(out)
    return 0
