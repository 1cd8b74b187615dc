"""ONNX path: parity with torch (fp32 <= 1e-4, fp16 looser), cache freshness, torch-free runtime
process (subprocess, export on demand), provider fallback with a logged warning."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from vla_nav.core.engine import ModelLoadError  # noqa: E402
from vla_nav.model.checkpoint import save_random_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.export import export_onnx, find_fresh_export  # noqa: E402
from vla_nav.runtime import load_engine  # noqa: E402
from vla_nav.runtime.onnx_engine import OnnxEngine  # noqa: E402
from vla_nav.runtime.torch_engine import TorchEngine  # noqa: E402

GOAL = 'go to the blue ball on the left'


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    """A random-weights checkpoint with a state input, a two-layer neck, a history stride and two
    memory slots, exported once (fp32 + fp16)."""
    config = PolicyConfig(state_dim=4, neck_layers=2, history_stride=2, window=10, memory_slots=2,
                          memory_stride=5)
    directory = save_random_checkpoint(config,
                                       tmp_path_factory.mktemp('onnx') / 'model')
    export_onnx(directory, fp16=True)
    return directory


@pytest.fixture(scope='module')
def torch_engine(model_dir):
    engine = TorchEngine(model_dir)
    engine.set_instruction(GOAL)
    return engine


def window_inputs(spec, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (spec.window, spec.image_height, spec.image_width, 3), dtype=np.uint8)
    states = rng.normal(size=(spec.window, spec.state_dim)).astype(np.float32)
    return frames, states


@pytest.mark.parametrize('precision, feature_tol, chunk_tol', [('fp32', 1e-4, 1e-4), ('fp16', 0.1, 0.02)])
def test_parity_with_torch(model_dir, torch_engine, precision, feature_tol, chunk_tol):
    engine = OnnxEngine(model_dir, precision=precision)
    engine.set_instruction(GOAL)
    assert engine.spec == torch_engine.spec and engine.provider == 'CPUExecutionProvider'
    # the runtime ring reads its layout from the checkpoint
    assert (engine.spec.window, engine.spec.history_stride, engine.spec.memory_slots) == (10, 2, 2)
    assert engine.spec.ring(1).size == 7 * 2 + 2 * 5 + 1
    text_tol = 1e-4 if precision == 'fp32' else 1e-2
    np.testing.assert_allclose(engine.embed_instruction(GOAL), torch_engine.embed_instruction(GOAL),
                               atol=text_tol)
    frames, states = window_inputs(engine.spec)
    onnx_features = np.stack([engine.encode_frame(frame) for frame in frames])
    torch_features = torch_engine.encode_frames(frames)
    assert onnx_features.dtype == np.float32
    np.testing.assert_allclose(onnx_features, torch_features, atol=feature_tol)
    np.testing.assert_allclose(engine.encode_frames(frames), onnx_features, atol=feature_tol)
    # same head inputs on both sides: the head's own parity
    chunk = engine.act(torch_features, states)
    assert chunk.shape == (10, 2) and chunk.dtype == np.float32
    np.testing.assert_allclose(chunk, torch_engine.act(torch_features, states), atol=chunk_tol)
    low, high = np.array(engine.config.action_low), np.array(engine.config.action_high)
    assert (chunk >= low - 1e-6).all() and (chunk <= high + 1e-6).all()


def test_engine_input_errors(model_dir):
    engine = load_engine(model_dir, 'onnx')
    frame = np.zeros((engine.spec.image_height, engine.spec.image_width, 3), dtype=np.uint8)
    with pytest.raises(RuntimeError, match='set_instruction'):
        engine.encode_frame(frame)
    engine.set_instruction(GOAL)
    with pytest.raises(ValueError, match='uint8'):
        engine.encode_frame(frame.astype(np.float32))
    with pytest.raises(ValueError, match='features must be'):
        engine.act(np.zeros((4, engine.spec.feature_dim), dtype=np.float32))
    # a state policy without odometry gets zero states
    window = engine.spec.window
    features = np.zeros((window, engine.spec.feature_dim), dtype=np.float32)
    zero_states = np.zeros((window, 4), np.float32)
    np.testing.assert_array_equal(engine.act(features), engine.act(features, zero_states))


def test_stale_export_is_detected(model_dir, tmp_path):
    assert find_fresh_export(model_dir, 'fp32') == model_dir / 'onnx'
    copy = shutil.copytree(model_dir, tmp_path / 'model')
    assert find_fresh_export(copy, 'fp16') == copy / 'onnx'
    config = json.loads((copy / 'config.json').read_text())
    config['metadata']['retrained'] = True
    (copy / 'config.json').write_text(json.dumps(config))
    assert find_fresh_export(copy, 'fp32') is None


def test_cached_graphs_never_hide_corrupt_weights(model_dir, tmp_path):
    copy = shutil.copytree(model_dir, tmp_path / 'model')
    assert find_fresh_export(copy, 'fp32') == copy / 'onnx'   # graphs cached: weights not needed to run
    weights = copy / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match='model.safetensors.*sha256'):
        OnnxEngine(copy)
    weights.unlink()
    with pytest.raises(ModelLoadError, match='model.safetensors.*missing'):
        OnnxEngine(copy)


@pytest.mark.parametrize('device', ['cuda', 'tensorrt'])
def test_provider_fallback_warns(model_dir, device, caplog, tmp_path):
    import onnxruntime
    if 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        pytest.skip('a GPU build of onnxruntime is installed: no fallback to observe')
    with caplog.at_level(logging.WARNING, logger='vla_nav.runtime'):
        engine = load_engine(model_dir, 'onnx', device=device, engine_cache_dir=tmp_path / 'trt')
    assert engine.provider == 'CPUExecutionProvider'
    warnings = [r for r in caplog.records if r.name == 'vla_nav.runtime' and 'falling back' in r.message]
    assert len(warnings) == 1 and 'CUDAExecutionProvider' in warnings[0].getMessage()


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match='does not exist'):
        load_engine(tmp_path / 'absent', 'onnx')


NO_TORCH_SCRIPT = r'''
import logging, sys
import numpy as np
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='LOG %(name)s %(message)s')
from vla_nav.runtime import load_engine
engine = load_engine(sys.argv[1], 'onnx')
engine.set_instruction('go to the red cone')
frame = np.zeros((engine.spec.image_height, engine.spec.image_width, 3), dtype=np.uint8)
feature = engine.encode_frame(frame)
chunk = engine.act(np.repeat(feature[None], engine.spec.window, axis=0))
assert chunk.shape == (10, 2) and np.isfinite(chunk).all()
print('TORCH_IMPORTED', 'torch' in sys.modules, 'TRANSFORMERS_IMPORTED', 'transformers' in sys.modules)
'''


def test_onnx_runtime_never_imports_torch(model_dir, tmp_path):
    """A fresh process loads a checkpoint WITHOUT graphs: export runs in a subprocess, torch never
    enters the engine process."""
    bare = shutil.copytree(model_dir, tmp_path / 'model', ignore=shutil.ignore_patterns('onnx'))
    result = subprocess.run([sys.executable, '-c', NO_TORCH_SCRIPT, str(bare)], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE='1'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'TORCH_IMPORTED False TRANSFORMERS_IMPORTED False' in result.stdout
    assert 'exporting' in result.stdout and (bare / 'onnx' / 'export.json').is_file()


def test_a_fovea_model_exports_with_parity(tmp_path):
    """The frame graph of a model with a fovea strip reads the taller image (full view + strip)."""
    directory = save_random_checkpoint(PolicyConfig(fovea_rows=40, state_dim=4), tmp_path / 'fovea')
    export_onnx(directory)
    info = json.loads((directory / 'onnx' / 'export.json').read_text())
    spec = info['spec']
    assert (spec['image_height'], spec['image_width'], spec['fovea_rows']) == (120, 80, 40)
    engine, reference = OnnxEngine(directory), TorchEngine(directory)
    assert engine.spec == reference.spec and engine.spec.fovea.rows == 40
    camera = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    frame = engine.spec.view(camera)
    for each in (engine, reference):
        each.set_instruction(GOAL)
    np.testing.assert_allclose(engine.encode_frame(frame), reference.encode_frames(frame[None])[0], atol=1e-4)
    with pytest.raises(ValueError, match='120'):
        engine.encode_frame(frame[:80])


@pytest.mark.parametrize('head', ['lstm', 'fc', 'gpt', 'discrete', 'flow'])
def test_every_head_exports_with_parity(head, tmp_path):
    """policy_head graph of each head (physical units, denormalised inside) matches torch, in fp32
    and fp16; the flow head's constant MatMuls (its first Euler step, its step times) are folded
    at export, so ONNX Runtime has nothing left to fold in fp16 (where it has no CPU kernel)."""
    import onnxruntime

    from vla_nav.model.export import _export, _graph_modules, _to_fp16, fold_constant_matmuls
    from vla_nav.model.policy import VLAPolicy
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(head=head, state_dim=4), load_pretrained=False).eval()
    _, head_graph = _graph_modules(policy)
    features, instruction, states = torch.randn(1, 8, 256), torch.randn(1, 384), torch.randn(1, 8, 4)
    path = tmp_path / 'policy_head.onnx'
    _export(head_graph, (features, instruction, states), path, ['features', 'instruction', 'states'],
            ['chunk'], None)
    assert (fold_constant_matmuls(path) > 0) == (head == 'flow')
    assert fold_constant_matmuls(path) == 0
    _to_fp16(path, tmp_path / 'policy_head.fp16.onnx')
    with torch.no_grad():
        expected = policy.predict_chunk(features, instruction, states).numpy()
    for graph, tolerance in ((path, 1e-4), (tmp_path / 'policy_head.fp16.onnx', 0.02)):
        session = onnxruntime.InferenceSession(str(graph), providers=['CPUExecutionProvider'])
        chunk = session.run(None, {'features': features.numpy(), 'instruction': instruction.numpy(),
                                   'states': states.numpy()})[0]
        assert chunk.shape == (1, 10, 2)
        np.testing.assert_allclose(chunk, expected, atol=tolerance)
