"""kosmos2 backbone end to end on a tiny, randomly initialised Kosmos-2 saved to a temp folder:
forward, loss, training steps, checkpoint round trip, ONNX export (inline and external data,
fp32 and fp16) + engine parity, and the errors of a user's folder (missing, partial, other
architecture, no network). The same code at full size: scripts/kosmos2_fullsize.py."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from vla_nav.core.engine import ModelLoadError  # noqa: E402
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.export import export_onnx, find_fresh_export, save_with_external_data  # noqa: E402
from vla_nav.model.kosmos2 import (  # noqa: E402
    RANDOM_MARKER,
    STAND_IN_VOCABULARY,
    is_random_kosmos2,
    load_kosmos2,
    write_random_kosmos2,
)
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.runtime.onnx_engine import OnnxEngine  # noqa: E402
from vla_nav.runtime.torch_engine import TorchEngine  # noqa: E402

IMAGE_SIZE = 32


def tiny_kosmos2_config():
    """Kosmos-2 with 2 text layers of width 32 and 1 vision layer (the full size is the default)."""
    from transformers import Kosmos2Config
    return Kosmos2Config(
        text_config={'vocab_size': len(STAND_IN_VOCABULARY), 'embed_dim': 32, 'layers': 2, 'ffn_dim': 64,
                     'attention_heads': 2, 'max_position_embeddings': 128},
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': IMAGE_SIZE, 'patch_size': 8},
        latent_query_num=4)


@pytest.fixture(scope='module')
def kosmos2_dir(tmp_path_factory):
    """Tiny random Kosmos-2 + the stand-in word-level tokenizer.json, as write_random_kosmos2 makes them."""
    return write_random_kosmos2(tmp_path_factory.mktemp('kosmos2') / 'tiny-kosmos2', tiny_kosmos2_config())


def make_config(folder, **changes) -> PolicyConfig:
    return PolicyConfig(backbone='kosmos2', kosmos2_path=str(folder), image_size=IMAGE_SIZE,
                        kosmos2_max_text_tokens=8, dropout=0.0, **changes)


def test_forward_loss_and_training(kosmos2_dir):
    torch.manual_seed(0)
    policy = VLAPolicy(make_config(kosmos2_dir))
    texts = ['go to the red cone', 'turn left']
    instruction = policy.embed_instructions(texts)
    assert instruction.shape == (2, 8) and instruction[1, 2:].eq(-1).all()  # ids, -1 padded
    images = torch.randint(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
    trunk = policy.encode_trunk(images)
    assert trunk.shape == (2, 4, 32) and not trunk.requires_grad
    features = policy.encode_window_from_trunk(trunk.unsqueeze(1).expand(-1, 8, -1, -1), instruction)
    assert features.shape == (2, 8, 256)
    # the [ACT] feature depends on the instruction the VLM reads
    other = policy.encode_frame_from_trunk(trunk, policy.embed_instructions(['turn right', 'blue ball']))
    assert (other - features[:, 0]).abs().max() > 1e-4
    vlm_before = {k: v.clone() for k, v in policy.backbone.vlm.state_dict().items()}
    targets = torch.tensor([[0.3, 1.0], [0.1, -1.0]]).view(2, 1, 1, 2).expand(2, 8, 10, 2)
    mask = torch.ones(2, 8, 10, dtype=torch.bool)
    optimiser = torch.optim.Adam(policy.trainable_parameters(), lr=3e-3)
    policy.train()
    losses = []
    for _ in range(25):
        window = policy.encode_window_from_trunk(trunk.unsqueeze(1).expand(-1, 8, -1, -1), instruction)
        loss, _ = policy.compute_loss(window, instruction, None, targets, mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert policy.backbone.act_token.grad is not None and policy.backbone.act_token.grad.abs().sum() > 0
    for key, value in policy.backbone.vlm.state_dict().items():
        assert torch.equal(value, vlm_before[key]), f'frozen Kosmos-2 tensor {key} changed'


@pytest.fixture(scope='module')
def checkpoint(kosmos2_dir, tmp_path_factory):
    torch.manual_seed(1)
    policy = VLAPolicy(make_config(kosmos2_dir, head='gpt')).eval()
    directory = save_checkpoint(policy, tmp_path_factory.mktemp('k2ckpt') / 'model')
    return policy, directory


def test_checkpoint_round_trip(checkpoint):
    policy, directory = checkpoint
    from safetensors import safe_open
    with safe_open(str(directory / 'model.safetensors'), 'pt') as stored:
        names = list(stored.keys())
    assert 'backbone.act_token' in names and not any(n.startswith('backbone.vlm.') for n in names)
    loaded = load_checkpoint(directory)
    images = torch.randint(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
    instruction = policy.embed_instructions(['go to the blue ball'])
    features = torch.randn(1, 8, 256)
    assert torch.allclose(loaded.encode_frame(images, instruction), policy.encode_frame(images, instruction))
    assert torch.allclose(loaded.predict_chunk(features, instruction),
                          policy.predict_chunk(features, instruction))


def test_checkpoint_checks_the_kosmos2_weights(checkpoint, tmp_path):
    import shutil
    copy = shutil.copytree(checkpoint[1], tmp_path / 'model')
    document = json.loads((copy / 'config.json').read_text())
    document['frozen']['kosmos2']['sha256'] = 'f' * 64
    (copy / 'config.json').write_text(json.dumps(document))
    with pytest.raises(ModelLoadError, match='Kosmos-2 weights'):
        load_checkpoint(copy)
    document['policy']['kosmos2_path'] = str(tmp_path / 'nowhere')
    (copy / 'config.json').write_text(json.dumps(document))
    with pytest.raises(ModelLoadError, match='nowhere'):
        load_checkpoint(copy)


def test_onnx_export_and_engines(checkpoint):
    _, directory = checkpoint
    export_onnx(directory)
    onnx_engine, torch_engine = OnnxEngine(directory), TorchEngine(directory)
    assert not (directory / 'onnx' / 'text_encoder.onnx').exists()
    for engine in (onnx_engine, torch_engine):
        engine.set_instruction('go to the red cone')
    np.testing.assert_array_equal(onnx_engine.embed_instruction('turn left'),
                                  torch_engine.embed_instruction('turn left'))
    frames = np.random.default_rng(0).integers(0, 256, (8, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    onnx_features = np.stack([onnx_engine.encode_frame(frame) for frame in frames])
    torch_features = torch_engine.encode_frames(frames)
    np.testing.assert_allclose(onnx_features, torch_features, atol=1e-4)
    np.testing.assert_allclose(onnx_engine.act(torch_features), torch_engine.act(torch_features), atol=1e-4)


def test_kosmos2_is_loaded_from_a_local_folder_only(tmp_path):
    with pytest.raises(ModelLoadError, match='local folder'):
        VLAPolicy(make_config(tmp_path / 'microsoft/kosmos-2-patch14-224'))


# --- a user's folder: what is accepted, what is refused ----------------------------------------
def test_random_folder_is_marked_and_complete(kosmos2_dir):
    assert is_random_kosmos2(kosmos2_dir) and (kosmos2_dir / 'config.json').is_file()
    assert json.loads((kosmos2_dir / RANDOM_MARKER).read_text())['random_weights'] is True
    model = load_kosmos2(kosmos2_dir)
    assert not model.training and next(model.parameters()).dtype == torch.float32


def test_published_format_loads_without_network(kosmos2_dir, tmp_path, monkeypatch):
    """microsoft/kosmos-2-patch14-224 is a Kosmos2ForConditionalGeneration save, in shards here;
    it loads into the backbone's Kosmos2Model with every tensor, and no socket is ever opened."""
    from transformers import Kosmos2ForConditionalGeneration
    folder = tmp_path / 'kosmos-2-patch14-224'
    reference = load_kosmos2(kosmos2_dir)
    full = Kosmos2ForConditionalGeneration(reference.config)
    full.load_state_dict(reference.state_dict(), strict=False)
    full.save_pretrained(folder, max_shard_size='100KB')
    shutil.copy(kosmos2_dir / 'tokenizer.json', folder)
    assert (folder / 'model.safetensors.index.json').is_file()

    def no_network(*args, **kwargs):
        raise AssertionError('network access while loading a local Kosmos-2 folder')
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    monkeypatch.setattr(socket, 'create_connection', no_network)
    loaded = load_kosmos2(folder)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    policy = VLAPolicy(make_config(folder))
    assert policy.backbone.frozen_references()['kosmos2']['files'][0].endswith('.safetensors')


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match='does not exist'):
        load_kosmos2(tmp_path / 'no-such-folder')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ModelLoadError, match='config.json missing'):
        load_kosmos2(tmp_path / 'empty')


def test_another_architecture_is_refused(kosmos2_dir, tmp_path):
    folder = shutil.copytree(kosmos2_dir, tmp_path / 'clip')
    document = json.loads((folder / 'config.json').read_text())
    document.update(model_type='clip', architectures=['CLIPModel'])
    (folder / 'config.json').write_text(json.dumps(document))
    with pytest.raises(ModelLoadError, match="model_type is 'clip'.*another model"):
        load_kosmos2(folder)
    with pytest.raises(ModelLoadError, match="model_type is 'clip'"):
        VLAPolicy(make_config(folder))


def test_missing_shard_is_named(kosmos2_dir, tmp_path):
    folder = tmp_path / 'sharded'
    load_kosmos2(kosmos2_dir).save_pretrained(folder, max_shard_size='100KB')
    shutil.copy(kosmos2_dir / 'tokenizer.json', folder)
    shards = sorted(folder.glob('*.safetensors'))
    assert len(shards) >= 2
    shards[-1].unlink()
    with pytest.raises(ModelLoadError, match=f'1 of {len(shards)} weight shards missing: {shards[-1].name}'):
        load_kosmos2(folder)


def test_missing_tensors_are_refused_not_randomised(kosmos2_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    folder = shutil.copytree(kosmos2_dir, tmp_path / 'partial')
    (weights,) = sorted(folder.glob('*.safetensors'))
    tensors = load_file(str(weights))
    dropped = [name for name in tensors if '.layers.1.' in name and name.startswith('text_model')]
    assert dropped
    save_file({k: v for k, v in tensors.items() if k not in dropped}, str(weights), metadata={'format': 'pt'})
    with pytest.raises(ModelLoadError, match=f'{len(dropped)} tensors missing'):
        load_kosmos2(folder)
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(ModelLoadError, match='cannot load Kosmos-2'):
        load_kosmos2(folder)
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r'no \*.safetensors'):
        load_kosmos2(folder)


# --- export: external data and fp16, the options a full-size Kosmos-2 needs --------------------
def test_external_data_gathers_per_tensor_files_and_constants(tmp_path):
    """Over 2 GB torch writes one file per tensor, Constant node values included; the export
    gathers them all into one .data file, and the graph runs without the scattered files."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    weight, offset = rng.normal(size=(64, 64)).astype(np.float32), rng.normal(size=(64,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node('Constant', [], ['offset'], value=numpy_helper.from_array(offset, 'offset_value')),
         helper.make_node('MatMul', ['x', 'weight'], ['y']), helper.make_node('Add', ['y', 'offset'], ['z'])],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info('z', TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(weight, 'weight')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
    scattered = tmp_path / 'scattered'
    scattered.mkdir()
    onnx.save_model(model, str(scattered / 'm.onnx'), save_as_external_data=True,
                    all_tensors_to_one_file=False, size_threshold=0, convert_attribute=True)
    assert len(list(scattered.iterdir())) == 3  # graph + one file per tensor (the Constant's too)
    target = tmp_path / 'one' / 'm.onnx'
    target.parent.mkdir()
    save_with_external_data(scattered / 'm.onnx', target)
    shutil.rmtree(scattered)
    assert sorted(p.name for p in target.parent.iterdir()) == ['m.onnx', 'm.onnx.data']
    onnx.checker.check_model(str(target))
    x = rng.normal(size=(1, 64)).astype(np.float32)
    (z,) = onnxruntime.InferenceSession(str(target), providers=['CPUExecutionProvider']).run(None, {'x': x})
    np.testing.assert_allclose(z, x @ weight + offset, rtol=1e-5, atol=1e-5)


def test_external_data_and_fp16_export(checkpoint, tmp_path):
    import onnx
    policy, directory = checkpoint
    out = export_onnx(directory, tmp_path / 'onnx', fp16=True, external_data=True, size_threshold=64)
    info = json.loads((out / 'export.json').read_text())
    assert info['external_data'] == {'frame_encoder.onnx': 'frame_encoder.onnx.data',
                                     'frame_encoder.fp16.onnx': 'frame_encoder.fp16.onnx.data'}
    fp32_data, fp16_data = out / 'frame_encoder.onnx.data', out / 'frame_encoder.fp16.onnx.data'
    vlm_bytes = sum(p.numel() * 4 for p in policy.backbone.vlm.parameters())
    # the weights really live in the data files, the graphs hold structure and tiny tensors only
    assert fp32_data.stat().st_size > 0.9 * vlm_bytes
    assert 0.4 * vlm_bytes < fp16_data.stat().st_size < 0.7 * vlm_bytes
    assert info['frame_encoder_exporter'] == 'dynamo'
    for name in ('frame_encoder.onnx', 'frame_encoder.fp16.onnx'):
        onnx.checker.check_model(str(out / name))  # by path: the form that works past 2 GB
        initializers = onnx.load(str(out / name), load_external_data=False).graph.initializer
        assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in initializers)
        assert max(len(t.raw_data) for t in initializers) < 1024
    assert not list(out.glob('.*scratch*'))
    assert all(path.stat().st_mode & 0o044 == 0o044 for path in (fp32_data, fp16_data))  # others read them

    torch_engine = TorchEngine(directory)
    torch_engine.set_instruction('go to the red cone')
    frames = np.random.default_rng(1).integers(0, 256, (8, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    expected = torch_engine.encode_frames(frames)
    for precision, tolerance in (('fp32', 1e-4), ('fp16', 5e-2)):
        engine = OnnxEngine(directory, onnx_dir=out, precision=precision)
        engine.set_instruction('go to the red cone')
        features = np.stack([engine.encode_frame(frame) for frame in frames])
        np.testing.assert_allclose(features, expected, atol=tolerance)
        # the ring + head path reads the same per-frame features as before
        np.testing.assert_allclose(engine.act(features), torch_engine.act(expected), atol=2 * tolerance)

    fp32_data.unlink()  # a graph without its weights is not a usable export
    assert find_fresh_export(directory, 'fp32', out) is None
    assert find_fresh_export(directory, 'fp16', out) == out


def test_bench_kosmos2_json(kosmos2_dir, tmp_path):
    """The bench path of the full-size check, on the tiny folder: prepare, export, ONNX + torch workers."""
    result = subprocess.run(
        [sys.executable, '-m', 'vla_nav', 'bench', '--backbone', 'kosmos2', '--kosmos2-path',
         str(kosmos2_dir), '--steps', '3', '--threads', '1', '--json'],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, HF_HUB_OFFLINE='1', VLA_NAV_CACHE=str(tmp_path / 'cache')))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['backend'] == 'onnx' and report['steps'] == 3 and report['image_size'] == IMAGE_SIZE
    assert report['weights'].startswith('RANDOM') and report['random_vlm'] is True
    assert report['torch_imported'] is False  # the ONNX inference process stays torch-free
    for key in ('steps_per_s', 'p50_ms', 'p99_ms', 'peak_rss_mb', 'torch_steps_per_s', 'gflops_per_step'):
        assert report[key] > 0, key
    assert report['p99_ms'] >= report['p50_ms']
    vlm = sum(p.numel() for p in load_kosmos2(kosmos2_dir).parameters()) / 1e6
    assert report['vlm_params_m'] == pytest.approx(vlm)


def test_train_cli_with_a_kosmos2_folder(kosmos2_dir, tmp_path):
    """The README's training command, at tiny size: the [ACT] token, projection and head train."""
    from vla_nav.cli import main
    from vla_nav.training.synthetic import write_synthetic_bags
    write_synthetic_bags(tmp_path / 'bags', episodes=2, length=12, image_size=IMAGE_SIZE)
    out = tmp_path / 'kosmos2-model'
    assert main(['train', '--backbone', 'kosmos2', '--resolution', str(IMAGE_SIZE),
                 '--set', f'kosmos2_path={kosmos2_dir}', '--set', 'kosmos2_max_text_tokens=8',
                 '--data', str(tmp_path / 'bags'), '--out', str(out), '--epochs', '1', '--batch-size', '4',
                 '--val-fraction', '0.5', '--cache-dir', str(tmp_path / 'cache'), '--quiet']) == 0
    policy = load_checkpoint(out)
    assert policy.config.backbone == 'kosmos2' and policy.config.kosmos2_path == str(kosmos2_dir)
    assert json.loads((out / 'config.json').read_text())['frozen']['kosmos2']['sha256']


def test_torchscript_fallback_when_dynamo_cannot_export(checkpoint, tmp_path, monkeypatch):
    """An op torch.export cannot trace: the TorchScript exporter + save_with_external_data take over."""
    import vla_nav.model.export as export

    def cannot(*args, **kwargs):
        raise RuntimeError('unsupported op')
    monkeypatch.setattr(export, '_export_dynamo', cannot)
    _, directory = checkpoint
    out = export_onnx(directory, tmp_path / 'onnx', external_data=True, size_threshold=64)
    info = json.loads((out / 'export.json').read_text())
    assert info['frame_encoder_exporter'] == 'torchscript'
    assert (out / 'frame_encoder.onnx.data').stat().st_size > 0 and not list(out.glob('.*scratch*'))
    torch_engine, engine = TorchEngine(directory), OnnxEngine(directory, onnx_dir=out)
    for each in (torch_engine, engine):
        each.set_instruction('turn left')
    frames = np.random.default_rng(2).integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    np.testing.assert_allclose(engine.encode_frames(frames), torch_engine.encode_frames(frames), atol=1e-4)
