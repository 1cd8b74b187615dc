"""`python -m vla_nav bench`: inference speed and memory of the policy, as vla_node runs it.

One step = one new frame -> one chunk at batch 1, sequentially, with a warm 8-frame history:
encode the newest frame, push its feature into the ring, run the head over the 8 cached
features. The naive loop re-encodes all 8 frames every step (an uncached RoboVLMs loop).

Each backend is measured in a FRESH worker subprocess (`--worker`) so `peak_rss_mb` is that
inference process's peak RSS (VmHWM) after loading, embedding the instruction and running the
cached loop (what vla_node holds); the ONNX worker never imports torch. The parent prepares the
model (random weights when there is no trained one: it says so), exports the graphs if needed,
reads parameters and FLOPs from export.json (counted with torch at export time), and, when torch
is installed, runs a shorter torch-eager worker for `torch_steps_per_s`. On a torch-free install
(the robot) the ONNX bench of a model with shipped graphs (models/default) imports no torch at
all; `torch_steps_per_s` is then null.

`--backbone kosmos2` measures the paper's full-size Kosmos-2 instead (vla_nav/tools/bench_kosmos2.py:
random weights unless --kosmos2-path, few steps, torch imported only in its subprocesses).

Targets on the 2-core dev CPU with ONNX Runtime: >= 750 steps/s (aim 1000), peak RSS <= 400 MB,
>= 6x the naive loop. Figures are printed, never asserted (timing belongs here, not in tests).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_STEPS = 2000
TARGET_STEPS_PER_S = 750.0
TARGET_RSS_MB = 400.0
TARGET_NAIVE_SPEEDUP = 6.0
FRAME_POOL = 16
WARMUP_STEPS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='', help='checkpoint dir (default: models/default if it '
                        'exists, else the default architecture with random weights)')
    parser.add_argument('--backend', choices=('onnx', 'torch'), default='onnx')
    parser.add_argument('--provider', choices=('cpu', 'cuda', 'tensorrt'), default='cpu',
                        help='ONNX Runtime providers (falls back to CPU when unavailable)')
    parser.add_argument('--resolution', type=int, default=0,
                        help='input size; differs from the model -> same architecture, random weights')
    parser.add_argument('--precision', choices=('fp32', 'fp16'), default='fp32')
    parser.add_argument('--steps', type=int, default=None,
                        help=f'timed steps (default {DEFAULT_STEPS}; kosmos2: 10, each takes seconds)')
    parser.add_argument('--threads', type=int, default=0,
                        help='intra-op threads of ONNX Runtime / torch (0: VLA_NAV_ORT_THREADS or 1)')
    parser.add_argument('--engine-cache-dir', default='', help='TensorRT engine cache')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--backbone', choices=('default', 'kosmos2'), default='default',
                        help="kosmos2: the paper's full-size Kosmos-2 (vla_nav/tools/bench_kosmos2.py)")
    from vla_nav.tools import bench_kosmos2
    bench_kosmos2.add_arguments(parser)


# --- worker: runs in its own process ------------------------------------------------------------
def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    values = np.asarray(samples) * 1e3
    return float(np.median(values)), float(np.percentile(values, 99)), float(values.mean())


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    /proc/self/status VmHWM is per address space; ru_maxrss is not a fresh figure in a child
    started by fork/vfork + exec (Linux carries the parent's high-water mark over exec), which
    would report the torch-laden parent's memory instead of the worker's.
    """
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(args: argparse.Namespace) -> dict:
    """Load the engine in this process and time it. Imports torch only for backend torch."""
    if args.threads:
        os.environ['VLA_NAV_ORT_THREADS'] = str(args.threads)
    started = time.perf_counter()
    if args.backend == 'onnx':
        from vla_nav.runtime.onnx_engine import OnnxEngine
        engine = OnnxEngine(args.model, device=args.provider, precision=args.precision,
                            engine_cache_dir=args.engine_cache_dir or None)
    else:
        from vla_nav.runtime.torch_engine import TorchEngine
        # batch-1 latency: one thread unless asked (torch's default spins on every core)
        engine = TorchEngine(args.model, device=args.provider, threads=args.threads or 1)
    load_s = time.perf_counter() - started
    spec = engine.spec
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (FRAME_POOL, spec.image_height, spec.image_width, 3), dtype=np.uint8)
    states = np.zeros((spec.window, spec.state_dim), dtype=np.float32) if spec.state_dim else None

    instruction_times = []
    for text in ('go to the red cone', 'turn left', 'drive to the blue ball', 'go forward 2 meters') * 3:
        tick = time.perf_counter()
        engine.set_instruction(text)
        instruction_times.append(time.perf_counter() - tick)

    encode_times, head_times, step_times = time_cached_loop(engine, frames, states, args.steps, WARMUP_STEPS)
    # what vla_node's process holds: load + instruction + the cached loop (the naive loop's
    # batch-8 buffers below are not part of the product path)
    product_peak_rss_mb = peak_rss_mb()

    naive_steps = max(args.steps // 8, 20)
    naive_times = []
    for step in range(10 + naive_steps):
        tick = time.perf_counter()
        features = engine.encode_frames(frames[(np.arange(spec.window) + step) % FRAME_POOL])
        engine.act(features, states)
        if step >= 10:
            naive_times.append(time.perf_counter() - tick)

    p50, p99, mean = _percentiles(step_times)
    return {
        'backend': engine.backend, 'provider': engine.provider, 'precision': args.precision,
        'resolution': spec.image_width, 'fovea_rows': spec.fovea.rows, 'steps': args.steps,
        'steps_per_s': 1e3 / mean, 'p50_ms': p50, 'p99_ms': p99, 'mean_ms': mean,
        'steps_per_s_at_p50': 1e3 / p50,  # robust to other processes preempting the CPU
        'encode_p50_ms': _percentiles(encode_times)[0], 'head_p50_ms': _percentiles(head_times)[0],
        'naive_steps_per_s': 1e3 / _percentiles(naive_times)[2],
        'instruction_ms': _percentiles(instruction_times[1:])[0],
        'load_s': load_s,
        'peak_rss_mb': product_peak_rss_mb,
        'peak_rss_with_naive_mb': peak_rss_mb(),
        'torch_imported': 'torch' in sys.modules,
        'threads': args.threads or int(os.environ.get('VLA_NAV_ORT_THREADS', '0') or 0) or 1,
    }


# --- parent: prepare the model, run workers, report ---------------------------------------------
def torch_installed() -> bool:
    return importlib.util.find_spec('torch') is not None


def _random_checkpoint(config) -> Path:
    """A cached checkpoint with random trainable weights for `config` (exported once, reused)."""
    if not torch_installed():
        raise SystemExit('bench: a random-weights model (no models/default, or --resolution) needs torch '
                         'to build and export; on a torch-free install bench a model with ONNX graphs')
    from vla_nav.model.checkpoint import save_random_checkpoint
    from vla_nav.model.config import CONFIG_FILE
    from vla_nav.model.export import cache_root
    key = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    directory = cache_root().parent / 'bench' / f'random-{key}'
    if not (directory / CONFIG_FILE).is_file():
        save_random_checkpoint(config, directory, seed=0)
    return directory


def prepare_model(args: argparse.Namespace) -> tuple[Path, str]:
    """(checkpoint dir, description of the weights)."""
    from vla_nav.config import default_model_dir
    from vla_nav.model.config import CONFIG_FILE, PolicyConfig, read_checkpoint_config
    if args.model:
        model_dir, weights = Path(args.model).expanduser(), 'trained'
    elif (default_model_dir() / CONFIG_FILE).is_file():
        model_dir, weights = default_model_dir(), 'trained (models/default)'
    else:
        model_dir, weights = None, 'random (no models/default: default architecture, random weights)'
    config = read_checkpoint_config(model_dir)[0] if model_dir else PolicyConfig()
    if model_dir is not None:
        document = read_checkpoint_config(model_dir)[1]
        if (document.get('metadata') or {}).get('random_weights'):
            weights = 'random'
    if args.resolution and args.resolution != config.image_size:
        config = config.replace(image_size=args.resolution)
        model_dir = None
        weights = f'random (architecture of the model at {args.resolution} px)'
    if model_dir is None:
        model_dir = _random_checkpoint(config)
    return model_dir, weights


def count_cost(model_dir: Path, onnx_dir: Path | None) -> tuple[float, float]:
    """(parameters in millions, GFLOPs per step) of the per-step graphs (see model/cost.py).

    From export.json when the graphs carry it (computed with torch at export time), else with torch.
    """
    from vla_nav.model.export import read_export_info
    cost = (read_export_info(onnx_dir) or {}).get('cost') if onnx_dir else None
    if not cost:
        from vla_nav.model.checkpoint import load_checkpoint
        from vla_nav.model.cost import policy_cost
        cost = policy_cost(load_checkpoint(model_dir).eval())
    return float(cost['params_m']), float(cost['gflops_per_step'])


def run_worker(args: argparse.Namespace, model_dir: Path, backend: str, steps: int) -> dict:
    command = [sys.executable, '-m', 'vla_nav', 'bench', '--worker', '--model', str(model_dir),
               '--backend', backend, '--provider', args.provider, '--precision', args.precision,
               '--steps', str(steps), '--threads', str(args.threads)]
    if args.engine_cache_dir:
        command += ['--engine-cache-dir', args.engine_cache_dir]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f'bench worker ({backend}) failed:\n{result.stderr.strip()[-2000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> int:
    if args.backbone == 'kosmos2' and not args.worker:
        from vla_nav.tools import bench_kosmos2
        return bench_kosmos2.run(args)
    args.steps = args.steps or DEFAULT_STEPS
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
    model_dir, weights = prepare_model(args)
    onnx_dir = None
    if args.backend == 'onnx':
        from vla_nav.runtime.base import ModelLoadError
        from vla_nav.runtime.onnx_engine import ensure_exported
        try:
            onnx_dir = ensure_exported(model_dir, 'fp32' if args.provider == 'tensorrt' else args.precision)
        except ModelLoadError as error:
            raise SystemExit(f'bench: {error}') from error
    params_m, gflops = count_cost(model_dir, onnx_dir)
    main = run_worker(args, model_dir, args.backend, args.steps)
    if args.backend == 'torch':
        torch_run = main
    elif torch_installed():
        torch_run = run_worker(args, model_dir, 'torch', max(args.steps // 4, 50))
    else:
        torch_run = {'steps_per_s': None}  # the robot install has no torch: nothing to compare
    report = dict(main)
    report.update({
        'model': str(model_dir), 'weights': weights, 'requested_provider': args.provider,
        'params_m': params_m, 'gflops_per_step': gflops,
        'torch_steps_per_s': torch_run['steps_per_s'],
        'speedup_vs_naive': main['steps_per_s'] / main['naive_steps_per_s'],
        'cpu_count': os.cpu_count(),
    })
    if report['backend'] == 'onnx':
        report['targets_met'] = {
            'steps_per_s>=750': report['steps_per_s'] >= TARGET_STEPS_PER_S,
            'peak_rss_mb<=400': report['peak_rss_mb'] <= TARGET_RSS_MB,
            'speedup_vs_naive>=6': report['speedup_vs_naive'] >= TARGET_NAIVE_SPEEDUP,
        }
    print_report(report, table_rows, args.json)
    return 0


def time_cached_loop(engine, frames: np.ndarray, states: np.ndarray | None, steps: int, warmup: int
                     ) -> tuple[list[float], list[float], list[float]]:
    """The product loop, timed: encode only the newest frame into the 8-frame ring, then the
    head over the window. Returns (encode, head, whole step) seconds of the steps after `warmup`."""
    spec = engine.spec
    ring = spec.ring(spec.feature_dim)
    window = np.empty((spec.window, spec.feature_dim), dtype=np.float32)
    encode_times, head_times, step_times = [], [], []
    for step in range(warmup + steps):
        tick = time.perf_counter()
        ring.push(engine.encode_frame(frames[step % len(frames)]))
        mid = time.perf_counter()
        chunk = engine.act(ring.window(window), states)
        done = time.perf_counter()
        if step >= warmup:
            encode_times.append(mid - tick)
            head_times.append(done - mid)
            step_times.append(done - tick)
    assert chunk.shape == (spec.chunk, spec.action_dim) and np.isfinite(chunk).all()
    return encode_times, head_times, step_times


def print_report(report: dict, rows: Callable[[dict], list[tuple[str, str]]], as_json: bool) -> None:
    """A bench's output (bench and bench --backbone kosmos2): one JSON object with `as_json`, else
    rows(report) as an aligned two-column table followed by report['targets_met'], if any."""
    if as_json:
        print(json.dumps(report))
        return
    table = rows(report)
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f'{name:<{width}}  {value}')
    for target, met in report.get('targets_met', {}).items():
        print(f"{'target ' + target:<{width}}  {'met' if met else 'NOT met'}")


def table_rows(report: dict) -> list[tuple[str, str]]:
    return [
        ('model', f"{report['model']} [{report['weights']}]"),
        ('backend / provider', f"{report['backend']} / {report['provider']} "
                               f"(asked: {report['requested_provider']}, {report['precision']})"),
        ('resolution', f"{report['resolution']} px" + (f" + a {report['fovea_rows']}-row fovea strip"
                                                         if report.get('fovea_rows') else '')),
        ('steps/s (cached history)', f"{report['steps_per_s']:.0f}"),
        ('latency p50 / p99', f"{report['p50_ms']:.3f} / {report['p99_ms']:.3f} ms"),
        ('  encode / head p50', f"{report['encode_p50_ms']:.3f} / {report['head_p50_ms']:.3f} ms"),
        ('naive steps/s (re-encode 8)', f"{report['naive_steps_per_s']:.0f} "
                                        f"(cached is {report['speedup_vs_naive']:.1f}x)"),
        ('torch eager steps/s', 'n/a (torch not installed)' if report['torch_steps_per_s'] is None
         else f"{report['torch_steps_per_s']:.0f}"),
        ('instruction embedding', f"{report['instruction_ms']:.2f} ms (once per goal)"),
        ('peak RSS (inference process)', f"{report['peak_rss_mb']:.0f} MB"),
        ('params / GFLOPs per step', f"{report['params_m']:.2f} M / {report['gflops_per_step']:.4f}"),
    ]
