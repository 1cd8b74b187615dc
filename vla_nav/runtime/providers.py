"""ONNX Runtime execution providers and session options, picked by one `device` parameter.

  device='tensorrt' -> TensorrtExecutionProvider (fp16 kernels allowed, engine + timing cache in
                       engine_cache_dir, builder workspace <= TRT_WORKSPACE_BYTES),
                       CUDAExecutionProvider, CPUExecutionProvider
  device='cuda'     -> CUDAExecutionProvider, CPUExecutionProvider
  device='cpu'      -> CPUExecutionProvider
Providers this onnxruntime build lacks are dropped with ONE warning on the 'vla_nav.runtime'
logger (e.g. the CPU wheel `onnxruntime` on a dev machine; GPU and Jetson need `onnxruntime-gpu`
or NVIDIA's Jetson wheel). Imports onnxruntime only, never torch.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

LOG = logging.getLogger('vla_nav.runtime')
DEVICES = ('cpu', 'cuda', 'tensorrt')
CPU = 'CPUExecutionProvider'
CUDA = 'CUDAExecutionProvider'
TENSORRT = 'TensorrtExecutionProvider'
DEFAULT_ENGINE_CACHE = '~/.cache/vla_nav/trt'
# TensorRT's builder scratch memory. The per-step graphs are a few MB: 1 GiB is ample and leaves
# the rest of a Jetson's memory (shared by CPU and GPU) to the robot.
TRT_WORKSPACE_BYTES = 1 << 30


def provider_chain(device: str, engine_cache_dir: str | os.PathLike | None = None,
                   precision: str = 'fp32') -> list[tuple[str, dict]]:
    """The providers we would like for `device`, best first, with their options."""
    if device not in DEVICES:
        raise ValueError(f'unknown device {device!r}: use one of {DEVICES}')
    chain: list[tuple[str, dict]] = []
    if device == 'tensorrt':
        cache = Path(os.path.expanduser(str(engine_cache_dir or DEFAULT_ENGINE_CACHE)))
        chain.append((TENSORRT, {
            'trt_fp16_enable': True,  # the point of TensorRT on Jetson; fp32 graphs go in
            'trt_max_workspace_size': TRT_WORKSPACE_BYTES,
            'trt_engine_cache_enable': True,
            'trt_engine_cache_path': str(cache),
            'trt_timing_cache_enable': True,
            'trt_timing_cache_path': str(cache),
        }))
    if device in ('tensorrt', 'cuda'):
        chain.append((CUDA, {'cudnn_conv_algo_search': 'HEURISTIC'}))
    chain.append((CPU, {}))
    return chain


def available_chain(device: str, engine_cache_dir: str | os.PathLike | None = None,
                    precision: str = 'fp32') -> list[tuple[str, dict]]:
    """provider_chain minus what this onnxruntime build lacks; logs one warning if it fell back."""
    import onnxruntime as ort
    available = set(ort.get_available_providers())
    wanted = provider_chain(device, engine_cache_dir, precision)
    chain = [(name, options) for name, options in wanted if name in available]
    missing = [name for name, _ in wanted if name not in available]
    if missing:
        LOG.warning('device %r: onnxruntime %s lacks %s; falling back to %s (install onnxruntime-gpu '
                    'for CUDA/TensorRT)', device, ort.__version__, ', '.join(missing),
                    chain[0][0] if chain else 'nothing')
    if chain and chain[0][0] == TENSORRT:
        Path(chain[0][1]['trt_engine_cache_path']).mkdir(parents=True, exist_ok=True)
    return chain


def session_options(threads: int | None = None):
    """Latency-tuned: full graph optimisation, sequential execution, few threads.

    Batch-1 convolutions this small scale poorly across cores; one intra-op thread per session
    avoids thread hand-off cost (VLA_NAV_ORT_THREADS overrides).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    threads = threads or int(os.environ.get('VLA_NAV_ORT_THREADS', '0') or 0) or 1
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def create_session(path: str | os.PathLike, chain: list[tuple[str, dict]], threads: int | None = None):
    """InferenceSession on the first providers of `chain` that load; the CPU provider last."""
    import onnxruntime as ort
    names = [name for name, _ in chain]
    options = [opts for _, opts in chain]
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads),
                                    providers=names, provider_options=options)
    except Exception as error:
        if names == [CPU]:
            raise
        # e.g. CUDA libraries present in the wheel but no usable GPU / driver at run time
        LOG.warning('providers %s failed for %s (%s); falling back to CPUExecutionProvider',
                    names, Path(path).name, error)
        return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=[CPU])
