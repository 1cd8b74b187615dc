"""Provider chains and their options per `device` (no GPU needed: the chain is what we ASK for;
what this onnxruntime build lacks is dropped, see test_runtime_onnx's fallback test)."""
from __future__ import annotations

from pathlib import Path

import pytest

from vla_nav.runtime.providers import (
    CPU,
    CUDA,
    TENSORRT,
    TRT_WORKSPACE_BYTES,
    provider_chain,
)


def test_tensorrt_chain_options(tmp_path):
    chain = provider_chain('tensorrt', tmp_path / 'trt')
    assert [name for name, _ in chain] == [TENSORRT, CUDA, CPU]
    trt = chain[0][1]
    assert trt['trt_fp16_enable'] is True and trt['trt_max_workspace_size'] == TRT_WORKSPACE_BYTES
    assert trt['trt_engine_cache_enable'] is True and trt['trt_timing_cache_enable'] is True
    assert trt['trt_engine_cache_path'] == trt['trt_timing_cache_path'] == str(tmp_path / 'trt')


def test_default_engine_cache_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    trt = provider_chain('tensorrt')[0][1]
    assert Path(trt['trt_engine_cache_path']) == tmp_path / '.cache' / 'vla_nav' / 'trt'


def test_cuda_and_cpu_chains():
    assert [name for name, _ in provider_chain('cuda')] == [CUDA, CPU]
    assert provider_chain('cpu') == [(CPU, {})]
    with pytest.raises(ValueError, match='unknown device'):
        provider_chain('gpu')
