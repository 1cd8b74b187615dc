"""`python -m vla_nav bench --json`: runs end to end and reports sane figures (speed never asserted)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from vla_nav.model.checkpoint import save_random_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402

KEYS = {'backend', 'provider', 'resolution', 'steps_per_s', 'p50_ms', 'p99_ms', 'peak_rss_mb',
        'params_m', 'gflops_per_step', 'instruction_ms', 'naive_steps_per_s', 'torch_steps_per_s'}


def test_bench_json(tmp_path):
    model = save_random_checkpoint(PolicyConfig(head='fc'), tmp_path / 'model')
    result = subprocess.run(
        [sys.executable, '-m', 'vla_nav', 'bench', '--model', str(model), '--steps', '30', '--json'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE='1', VLA_NAV_CACHE=str(tmp_path / 'cache')))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert KEYS <= set(report)
    assert report['backend'] == 'onnx' and report['provider'] == 'CPUExecutionProvider'
    assert report['resolution'] == PolicyConfig().image_size and report['steps'] == 30
    assert report['torch_imported'] is False  # the measured inference process is torch-free
    for key in KEYS - {'backend', 'provider', 'resolution'}:
        assert isinstance(report[key], float) and math.isfinite(report[key]) and report[key] > 0, key
    assert report['p99_ms'] >= report['p50_ms']
    assert 0.1 < report['params_m'] < 50 and report['gflops_per_step'] < 10
    assert report['weights'] == 'random'
