#!/usr/bin/env python3
"""The paper's backbone at full size on this CPU: Kosmos-2 (1.66 B parameters), RANDOM weights.

    .venv/bin/python scripts/kosmos2_fullsize.py [--kosmos2-path DIR] [--out report.json]

No weights can be downloaded here, so the full-size architecture (transformers' Kosmos2Config()
= microsoft/kosmos-2-patch14-224) is built with random weights once, in the same cache folder as
`python -m vla_nav bench --backbone kosmos2` (~/.cache/vla_nav, 6.7 GB + ~10 GB of ONNX), and the
same code paths as the tiny-config tests (test/test_model_kosmos2.py) run at full size:

  prepare    the random folder + a random-head checkpoint over it, parameters and GFLOPs
  train      one RoboVLMs training step (frozen VLM; trainable [ACT] token, projection, head):
             forward + backward + AdamW step on a window of 8 frames; only trainable tensors change
  reference  torch features of a few frames and the head's chunk over them (fp32)
  export     frame_encoder (the whole VLM) + policy_head to ONNX, weights in external data
             (> 2 GB, protobuf's limit), plus the fp16 graphs
  onnx-fp32  ONNX Runtime CPU vs the torch reference (tolerance ATOL_FP32), head over the ring
  onnx-fp16  the fp16 graph: ONNX checker, load, and agreement with fp32 torch (ATOL_FP16)

Each stage runs in its own subprocess (one model in memory at a time; its peak RSS is reported).
Heavy: check `free -g` first (peak RSS ~15 GB during the export, ~10 GB in training).
Figures: README "Kosmos-2 at full size".
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')

STAGES = ('prepare', 'train', 'reference', 'export', 'onnx-fp32', 'onnx-fp16')
# features are LayerNorm outputs (unit scale) after 48 transformer layers; chunks are in m/s, rad/s
ATOL_FP32 = 1e-4   # measured 5.1e-6 (features) with random full-size weights
ATOL_FP16 = 0.05   # fp16 graph vs fp32 torch; measured 2.9e-3 with random full-size weights
FRAMES = 3
INSTRUCTION = 'go to the red cone'


def peak_rss_mb() -> float:
    with open('/proc/self/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return float(line.split()[1]) / 1024.0
    return float('nan')


def frames(size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (FRAMES, size, size, 3), dtype=np.uint8)


def stage_prepare(args) -> dict:
    from vla_nav.tools.bench_kosmos2 import prepare
    return prepare(args.kosmos2_path)


def stage_train(args) -> dict:
    """One training step as vla_nav.training does it: frozen trunk per frame (no grad), then the
    [ACT] neck through the frozen language model and the head, with gradients."""
    import hashlib

    import torch

    from vla_nav.model.checkpoint import load_checkpoint
    policy = load_checkpoint(args.model).train()
    config = policy.config
    vlm = policy.backbone.vlm

    def vlm_digest() -> str:
        digest = hashlib.sha256()
        for name, tensor in vlm.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    before_vlm = vlm_digest()
    trainable = policy.trainable_parameters()
    names = {id(p): n for n, p in policy.named_parameters()}
    before = {names[id(p)]: p.detach().clone() for p in trainable}
    optimiser = torch.optim.AdamW(trainable, lr=1e-4)
    images = torch.from_numpy(np.random.default_rng(1).integers(
        0, 256, (1, config.window, config.image_size, config.image_size, 3), dtype=np.uint8))
    instruction = policy.embed_instructions([INSTRUCTION])
    targets = torch.tensor([0.3, 0.5]).view(1, 1, 1, 2).expand(1, config.window, config.chunk, 2)
    mask = torch.ones(1, config.window, config.chunk, dtype=torch.bool)
    started = time.perf_counter()
    trunk = policy.encode_trunk(images.flatten(0, 1)).unsqueeze(0)        # frozen, no graph kept
    trunk_s = time.perf_counter() - started
    features = policy.encode_window_from_trunk(trunk, instruction)
    loss, metrics = policy.compute_loss(features, instruction, None, targets, mask)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    step_s = time.perf_counter() - started
    vlm_grads = sum(p.grad is not None for p in vlm.parameters())
    changed = sorted(name for name, value in before.items()
                     if not torch.equal(value, dict(policy.named_parameters())[name].detach()))
    after_vlm = vlm_digest()
    result = {'loss': float(loss.detach()), 'trainable_tensors': len(before),
              'trainable_params_m': sum(v.numel() for v in before.values()) / 1e6,
              'trainable_tensors_changed': len(changed), 'vlm_tensors_with_grad': vlm_grads,
              'vlm_unchanged': before_vlm == after_vlm, 'act_token_changed': 'backbone.act_token' in changed,
              'frames': config.window, 'trunk_s': trunk_s, 'step_s': step_s, 'metrics': metrics}
    result['ok'] = (result['vlm_unchanged'] and vlm_grads == 0 and result['act_token_changed']
                    and len(changed) == len(before))
    return result


def stage_reference(args) -> dict:
    from vla_nav.runtime.torch_engine import TorchEngine
    engine = TorchEngine(args.model, threads=os.cpu_count())
    engine.set_instruction(INSTRUCTION)
    images = frames(engine.spec.image_height)
    started = time.perf_counter()
    features = np.stack([engine.encode_frame(frame) for frame in images])
    encode_s = (time.perf_counter() - started) / len(images)
    window = features[np.arange(engine.spec.window) % len(features)]  # a full ring of these frames
    chunk = engine.act(window)
    np.savez(Path(args.work) / 'reference.npz', features=features, chunk=chunk)
    return {'frames': len(images), 'encode_s_per_frame': encode_s, 'feature_std': float(features.std())}


def stage_export(args) -> dict:
    from vla_nav.model.export import default_onnx_dir, export_onnx
    out = export_onnx(args.model, default_onnx_dir(args.model), fp16=True)
    files = {path.name: path.stat().st_size / 1e9 for path in sorted(out.iterdir()) if path.is_file()}
    info = json.loads((out / 'export.json').read_text())
    return {'onnx_dir': str(out), 'files_gb': files, 'external_data': info.get('external_data')}


def _onnx_parity(args, precision: str, tolerance: float) -> dict:
    import onnx

    from vla_nav.model.export import find_fresh_export, graph_file
    from vla_nav.runtime.onnx_engine import OnnxEngine
    onnx_dir = find_fresh_export(args.model, precision)
    if onnx_dir is None:
        return {'ok': False, 'error': f'no fresh {precision} export (run the export stage)'}
    graph = onnx_dir / graph_file('frame_encoder', precision)
    onnx.checker.check_model(str(graph))  # by path: models over 2 GB
    result = {'graph': str(graph), 'checker': 'ok'}
    reference = np.load(Path(args.work) / 'reference.npz')
    try:
        started = time.perf_counter()
        engine = OnnxEngine(args.model, precision=precision, threads=os.cpu_count())
        result['load_s'] = time.perf_counter() - started
        engine.set_instruction(INSTRUCTION)
        images = frames(engine.spec.image_height)
        started = time.perf_counter()
        features = np.stack([engine.encode_frame(frame) for frame in images])
        result['encode_s_per_frame'] = (time.perf_counter() - started) / len(images)
    except Exception as error:  # e.g. ONNX Runtime CPU lacking an fp16 kernel
        result.update(runs_on_cpu=False, error=f'{type(error).__name__}: {str(error)[:400]}')
        if precision == 'fp32':
            result['ok'] = False  # fp16 on a CPU is optional; fp32 must run
        return result
    result['runs_on_cpu'] = True
    window = features[np.arange(engine.spec.window) % len(features)]
    chunk = engine.act(window)
    result['feature_max_abs_diff'] = float(np.abs(features - reference['features']).max())
    result['chunk_max_abs_diff'] = float(np.abs(chunk - reference['chunk']).max())
    result['tolerance'] = tolerance
    result['ok'] = result['feature_max_abs_diff'] <= tolerance and result['chunk_max_abs_diff'] <= tolerance
    return result


def run_stage(args) -> dict:
    started = time.perf_counter()
    if args.stage == 'prepare':
        result = stage_prepare(args)
    elif args.stage == 'train':
        result = stage_train(args)
    elif args.stage == 'reference':
        result = stage_reference(args)
    elif args.stage == 'export':
        result = stage_export(args)
    else:
        precision = args.stage.split('-')[1]
        result = _onnx_parity(args, precision, ATOL_FP32 if precision == 'fp32' else ATOL_FP16)
    result.update(stage=args.stage, wall_s=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--kosmos2-path', default='', help='your local Kosmos-2 folder (default: random)')
    parser.add_argument('--stages', default=','.join(STAGES), help=f'comma-separated subset of {STAGES}')
    parser.add_argument('--out', default='', help='write every stage\'s figures to this JSON file')
    parser.add_argument('--stage', choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument('--model', default='', help=argparse.SUPPRESS)
    parser.add_argument('--work', default='', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args)))
        return 0
    from vla_nav.tools.bench_kosmos2 import cache_dir
    work = cache_dir() / 'kosmos2-fullsize-check'
    work.mkdir(parents=True, exist_ok=True)
    report, model = {}, ''
    for stage in args.stages.split(','):
        if stage != 'prepare' and not model:
            model = json.loads((work / 'prepare.json').read_text())['model_dir']
        print(f'--- {stage}', file=sys.stderr, flush=True)
        command = [sys.executable, __file__, '--stage', stage, '--kosmos2-path', args.kosmos2_path,
                   '--model', model, '--work', str(work)]
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            print(f'stage {stage} failed (exit {result.returncode}); see above', file=sys.stderr)
            return 1
        report[stage] = json.loads(result.stdout.strip().splitlines()[-1])
        (work / f'{stage}.json').write_text(json.dumps(report[stage], indent=2) + '\n')
        if stage == 'prepare':
            model = report[stage]['model_dir']
        print(json.dumps(report[stage], indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + '\n')
    failed = [stage for stage, result in report.items() if result.get('ok') is False]
    print(f"stages: {', '.join(report)}; {'all ok' if not failed else 'NOT ok: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
