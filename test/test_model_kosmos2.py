"""kosmos2 backbone end to end on a tiny, randomly initialised Kosmos-2 saved to a temp folder:
forward, loss, training steps, checkpoint round trip, ONNX export + engine parity, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from vla_nav.core.engine import ModelLoadError  # noqa: E402
from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.export import export_onnx  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.runtime.onnx_engine import OnnxEngine  # noqa: E402
from vla_nav.runtime.torch_engine import TorchEngine  # noqa: E402

WORDS = ['<s>', '<pad>', '</s>', '<unk>', '<image>', '</image>', 'go', 'to', 'the', 'red', 'blue',
         'cone', 'ball', 'turn', 'left', 'right']
IMAGE_SIZE = 32


@pytest.fixture(scope='module')
def kosmos2_dir(tmp_path_factory):
    """Tiny Kosmos-2 (2 text layers of width 32, 1 vision layer) + a word-level tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import Kosmos2Config, Kosmos2Model
    transformers.utils.logging.disable_progress_bar()
    folder = tmp_path_factory.mktemp('kosmos2') / 'tiny-kosmos2'
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token='<unk>'))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    config = Kosmos2Config(
        text_config={'vocab_size': len(WORDS), 'embed_dim': 32, 'layers': 2, 'ffn_dim': 64,
                     'attention_heads': 2, 'max_position_embeddings': 128},
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': IMAGE_SIZE, 'patch_size': 8},
        latent_query_num=4)
    torch.manual_seed(0)
    Kosmos2Model(config).save_pretrained(folder)
    tokenizer.save(str(folder / 'tokenizer.json'))
    return folder


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
