"""`python -m vla_nav bench --backbone kosmos2`: the paper's Kosmos-2 backbone at full size.

Without --kosmos2-path the figures come from RANDOM weights of the full-size architecture
(transformers' Kosmos2Config() = microsoft/kosmos-2-patch14-224: ViT-L/14 at 224 px, 64 latent
tokens, a 24-layer 2048-wide language model; 1.66 B parameters), written once to
~/.cache/vla_nav/kosmos2-fullsize-random (6.7 GB). Speed and memory do not depend on the weights'
values, so the figures hold for the real model; the output says RANDOM wherever they are random.
With --kosmos2-path DIR the user's own local folder is used (never downloaded).

One step is the same as in bench: encode the newest frame (the whole VLM: vision tower, then
<s><image> 64 latent tokens </image> instruction [ACT] through the 24 layers), push the feature
into the 8-frame ring, run the head over the ring. A step takes seconds on a CPU, so few steps
(default 10, 1 warm-up); the naive loop (re-encode 8 frames per step) is 8 x encode and not run.
Preparation (random folder, random head checkpoint, parameter and FLOP count) runs in a
subprocess, the export in `python -m vla_nav export`, each backend in a fresh worker subprocess:
this parent never imports torch and peak RSS is the inference process's own.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vla_nav.tools.bench import print_report, time_cached_loop

DEFAULT_STEPS = 10
WARMUP_STEPS = 1
FRAME_POOL = 4
RANDOM_FOLDER = 'kosmos2-fullsize-random'
INSTRUCTIONS = ('go to the red cone', 'turn left', 'drive to the blue ball')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Only what bench lacks; bench's --backend/--provider/--precision/--steps/--threads/--json apply."""
    parser.add_argument('--kosmos2-path', default='', help='with --backbone kosmos2: your local Kosmos-2 '
                        'folder (default: random full-size weights, written once to the cache)')


def cache_dir() -> Path:
    from vla_nav.model.export import cache_root
    return cache_root().parent


# --- preparation (subprocess: torch) -------------------------------------------------------------
def prepare(kosmos2_path: str) -> dict:
    """The Kosmos-2 folder (random full-size unless given), a random-head checkpoint over it (cached),
    parameters and GFLOPs per step. Returns a JSON-able dict."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint
    from vla_nav.model.config import CONFIG_FILE, PolicyConfig, read_checkpoint_config
    from vla_nav.model.kosmos2 import (
        check_kosmos2_folder,
        is_random_kosmos2,
        kosmos2_checksum,
        write_random_kosmos2,
    )
    from vla_nav.model.policy import VLAPolicy
    if kosmos2_path:
        folder = Path(kosmos2_path).expanduser().resolve()
    else:
        folder = cache_dir() / RANDOM_FOLDER
        if not is_random_kosmos2(folder):
            print(f'writing RANDOM full-size Kosmos-2 weights to {folder} (6.7 GB, once)', file=sys.stderr)
            staging = folder.with_name(folder.name + '.partial')
            write_random_kosmos2(staging)
            os.replace(staging, folder)
    vision = check_kosmos2_folder(folder).get('vision_config') or {}
    config = PolicyConfig(backbone='kosmos2', kosmos2_path=str(folder),
                          image_size=int(vision.get('image_size', 224)))
    key = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    model_dir = cache_dir() / 'bench' / f'kosmos2-{key}'
    checksum = kosmos2_checksum(folder)
    fresh = (model_dir / CONFIG_FILE).is_file() and (
        read_checkpoint_config(model_dir)[1].get('frozen', {}).get('kosmos2', {}).get('sha256') == checksum)
    started = time.perf_counter()
    if fresh:
        policy = load_checkpoint(model_dir)
    else:
        print(f'loading {folder} and saving a random-head checkpoint to {model_dir}', file=sys.stderr)
        torch.manual_seed(0)
        policy = VLAPolicy(config).eval()
        save_checkpoint(policy, model_dir, extra_metadata={'random_weights': True, 'seed': 0})
    load_s = time.perf_counter() - started
    instruction = policy.embed_instructions([INSTRUCTIONS[0]])
    size = config.image_size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        feature = policy.encode_frame(torch.zeros(1, size, size, 3, dtype=torch.uint8), instruction)
        policy.predict_chunk(feature.unsqueeze(1).expand(-1, config.window, -1), instruction)
    # the LSTM head is a few MFLOPs (torch's counter does not see inside aten::lstm): negligible here
    return {'model_dir': str(model_dir), 'folder': str(folder), 'random_vlm': is_random_kosmos2(folder),
            'params_m': sum(p.numel() for p in policy.parameters()) / 1e6,
            'vlm_params_m': sum(p.numel() for p in policy.backbone.vlm.parameters()) / 1e6,
            'gflops_per_step': counter.get_total_flops() / 1e9, 'image_size': size,
            'prepare_load_s': load_s}


# --- worker (subprocess): time one backend ---------------------------------------------------------
def measure(model_dir: str, backend: str, provider: str, precision: str, steps: int, threads: int) -> dict:
    from vla_nav.tools.bench import _percentiles, peak_rss_mb
    started = time.perf_counter()
    if backend == 'onnx':
        if threads:
            os.environ['VLA_NAV_ORT_THREADS'] = str(threads)
        from vla_nav.runtime.onnx_engine import OnnxEngine
        engine = OnnxEngine(model_dir, device=provider, precision=precision)
    else:
        from vla_nav.runtime.torch_engine import TorchEngine
        engine = TorchEngine(model_dir, device=provider, threads=threads or None)
    load_s = time.perf_counter() - started
    spec = engine.spec
    frames = np.random.default_rng(0).integers(0, 256, (FRAME_POOL, spec.image_height, spec.image_width, 3),
                                                 dtype=np.uint8)
    states = np.zeros((spec.window, spec.state_dim), dtype=np.float32) if spec.state_dim else None
    instruction_times = []
    for text in INSTRUCTIONS:
        tick = time.perf_counter()
        engine.set_instruction(text)
        instruction_times.append(time.perf_counter() - tick)
    encode_times, head_times, step_times = time_cached_loop(engine, frames, states, steps, WARMUP_STEPS)
    p50, p99, mean = _percentiles(step_times)
    return {'backend': engine.backend, 'provider': engine.provider, 'precision': precision, 'steps': steps,
            'steps_per_s': 1e3 / mean, 'p50_ms': p50, 'p99_ms': p99, 'mean_ms': mean,
            'encode_p50_ms': _percentiles(encode_times)[0], 'head_p50_ms': _percentiles(head_times)[0],
            'instruction_ms': _percentiles(instruction_times)[0], 'load_s': load_s,
            'peak_rss_mb': peak_rss_mb(), 'torch_imported': 'torch' in sys.modules,
            'threads': threads or int(os.environ.get('VLA_NAV_ORT_THREADS', '0') or 0) or 'default'}


# --- parent ---------------------------------------------------------------------------------------
def _child(arguments: list[str]) -> dict:
    command = [sys.executable, '-m', 'vla_nav.tools.bench_kosmos2', *arguments]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr: progress, live
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(arguments[:1])} failed (exit {result.returncode}); see above')
    return json.loads(result.stdout.strip().splitlines()[-1])


def _export(model_dir: Path, precision: str) -> None:
    """Export once (long for 1.6 B parameters: no timeout, progress on stderr)."""
    from vla_nav.model.export import default_onnx_dir, find_fresh_export
    if find_fresh_export(model_dir, precision) is not None:
        return
    out = default_onnx_dir(model_dir)
    print(f'exporting the full-size frame encoder to {out} (minutes; weights in external data)',
          file=sys.stderr)
    command = [sys.executable, '-m', 'vla_nav', 'export', '--model', str(model_dir), '--out', str(out)]
    if precision == 'fp16':
        command.append('--fp16')
    if subprocess.run(command).returncode != 0:
        raise RuntimeError('ONNX export failed; see above')


def run(args: argparse.Namespace) -> int:
    """bench --backbone kosmos2 (called by vla_nav.tools.bench)."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    steps = args.steps or DEFAULT_STEPS
    args.threads = args.threads or os.cpu_count() or 1  # a 1.6 B model wants every core
    try:
        info = _child(['prepare', '--kosmos2-path', args.kosmos2_path])
        model_dir = Path(info['model_dir'])
        if args.backend == 'onnx':
            _export(model_dir, 'fp32' if args.provider == 'tensorrt' else args.precision)
        common = ['--provider', args.provider, '--precision', args.precision, '--threads', str(args.threads)]
        main = _child(['measure', '--model', str(model_dir), '--backend', args.backend, '--steps', str(steps),
                       *common])
        report = dict(main, **info)
        if args.backend == 'onnx':
            torch_run = _child(['measure', '--model', str(model_dir), '--backend', 'torch',
                                '--steps', str(max(steps // 2, 3)), *common])
            report.update(torch_steps_per_s=torch_run['steps_per_s'], torch_p50_ms=torch_run['p50_ms'],
                          torch_peak_rss_mb=torch_run['peak_rss_mb'])
    except RuntimeError as error:
        print(f'bench --backbone kosmos2 failed: {error}', file=sys.stderr)
        return 1
    report['weights'] = ('RANDOM Kosmos-2 weights (speed and memory only, not a trained model)'
                         if info['random_vlm'] else f"Kosmos-2 from {info['folder']}")
    report['naive_steps_per_s_estimate'] = 1e3 / (8 * main['encode_p50_ms'] + main['head_p50_ms'])
    report['cpu_count'] = os.cpu_count()
    report['load_average_1min'] = os.getloadavg()[0]  # other jobs on the machine slow every figure
    print_report(report, table_rows, args.json)
    return 0


def table_rows(report: dict) -> list[tuple[str, str]]:
    return [
        ('backbone', f"kosmos2 ({report['vlm_params_m']:.0f} M VLM parameters, {report['image_size']} px)"),
        ('weights', report['weights']),
        ('checkpoint', f"{report['model_dir']} [random head]"),
        ('backend / provider', f"{report['backend']} / {report['provider']} ({report['precision']}, "
                               f"threads {report['threads']})"),
        ('steps/s (cached history)', f"{report['steps_per_s']:.3f} over {report['steps']} steps"),
        ('latency p50 / p99', f"{report['p50_ms']:.0f} / {report['p99_ms']:.0f} ms"),
        ('  encode / head p50', f"{report['encode_p50_ms']:.0f} / {report['head_p50_ms']:.2f} ms"),
        ('naive steps/s (re-encode 8)', f"{report['naive_steps_per_s_estimate']:.4f} (estimate: 8 x encode)"),
        ('torch eager steps/s', f"{report['torch_steps_per_s']:.3f} (p50 {report['torch_p50_ms']:.0f} ms, "
         f"peak RSS {report['torch_peak_rss_mb']:.0f} MB)" if 'torch_steps_per_s' in report else 'this run'),
        ('instruction', f"{report['instruction_ms']:.2f} ms (tokenising only: the VLM reads the ids)"),
        ('load', f"{report['load_s']:.0f} s"),
        ('peak RSS (inference process)', f"{report['peak_rss_mb']:.0f} MB"),
        ('params / GFLOPs per step', f"{report['params_m']:.0f} M / {report['gflops_per_step']:.0f}"),
        ('machine', f"{report['cpu_count']} CPUs, load average {report['load_average_1min']:.1f} at the end"),
        ('targets (edge: 750 steps/s, 400 MB)', 'NOT met, by design: see README "Kosmos-2 at full size"'),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m vla_nav.tools.bench_kosmos2')
    parser.add_argument('stage', choices=('prepare', 'measure'))
    parser.add_argument('--kosmos2-path', default='')
    parser.add_argument('--model', default='')
    parser.add_argument('--backend', default='onnx')
    parser.add_argument('--provider', default='cpu')
    parser.add_argument('--precision', default='fp32')
    parser.add_argument('--steps', type=int, default=DEFAULT_STEPS)
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args(argv)
    from vla_nav.runtime.base import ModelLoadError
    try:
        if args.stage == 'prepare':
            result = prepare(args.kosmos2_path)
        else:
            result = measure(args.model, args.backend, args.provider, args.precision, args.steps,
                             args.threads)
    except ModelLoadError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    sys.exit(main())
