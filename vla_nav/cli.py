"""`python -m vla_nav <verb> ...`: one entry point for every tool.

Each verb lives in its own module under vla_nav/tools/ exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their verb runs (the ONNX path stays torch-free).
"""
from __future__ import annotations

import argparse
import importlib
import sys

VERBS = {
    'demo': ('demo', 'run the built-in simulated robot with the real nodes and a goal sequence'),
    'bench': ('bench', 'measure inference speed and memory (steps/s, p50/p99, peak RSS)'),
    'export': ('export', 'export a checkpoint to ONNX (frame_encoder + policy_head, fp32/fp16)'),
    'record-sim': ('record_sim', 'record expert episodes from the simulator as rosbag2 files'),
    'train': ('train', 'train a policy on rosbag2 episodes'),
    'average': ('average', 'average the weights of fine-tunes of one init (a model soup)'),
    'eval': ('evaluate', 'offline action MAE of a checkpoint on rosbag2 episodes'),
    'eval-sim': ('eval_sim', 'closed-loop evaluation in the simulator on held-out scenes'),
    'publish': ('publish', 'evaluate a checkpoint (offline, closed loop, fixed block) and publish it'),
    'replay': ('replay', 'replay a rosbag through the policy + executor; regression check'),
    'soak': ('soak', 'run the full node suite for minutes and report rates, latency, memory'),
}


def add_model_arguments(parser: argparse.ArgumentParser, backends: tuple[str, ...] | None = None,
                        with_device: bool = True) -> None:
    """--model / --backend / --device, defaults from config/vla_nav.yaml (vla_node section), for
    every verb that loads a policy. backends: restrict --backend to these choices (None: any,
    'module:factory' included)."""
    from vla_nav.config import load_config
    node = load_config().vla_node
    parser.add_argument('--model', default=node.model,
                        help=f'checkpoint dir (default: {node.model or "models/default"})')
    parser.add_argument('--backend', default=node.backend, choices=backends,
                        help=f"{' | '.join(backends or ('onnx', 'torch', 'module:factory'))} "
                             f'(default {node.backend})')
    if with_device:
        parser.add_argument('--device', default=node.device,
                            help=f'cpu | cuda | tensorrt (ONNX providers, with fallback; default '
                                 f'{node.device})')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m vla_nav', description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    for verb, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        # Only the chosen verb's module is imported (see main), so its arguments are added lazily.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in VERBS:
        parser.parse_args(argv)  # prints usage / the unknown-verb error and exits
        return 2
    verb = argv[0]
    module = importlib.import_module(f'vla_nav.tools.{VERBS[verb][0]}')
    sub = argparse.ArgumentParser(prog=f'python -m vla_nav {verb}', description=VERBS[verb][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
