"""VLAPolicy: config validation, shapes, normalisation, masking, and every head learns a toy task."""
from __future__ import annotations

import pytest

torch = pytest.importorskip('torch')

from vla_nav.config import load_config  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402

B, W, C = 3, 8, 10


def unit_text(batch: int, dim: int = 384, seed: int = 0) -> torch.Tensor:
    """Stand-in instruction embeddings (MiniLM output is L2-normalised too)."""
    text = torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))
    return text / text.norm(dim=-1, keepdim=True)


@pytest.fixture(scope='module')
def policy() -> VLAPolicy:
    torch.manual_seed(0)
    return VLAPolicy(PolicyConfig()).eval()


def test_config_round_trip_and_default_bounds_cover_the_executor_limits():
    config = PolicyConfig(head='gpt', state_dim=4, history_stride=3)
    assert PolicyConfig.from_dict(config.to_dict()) == config
    limits = load_config().executor   # the model can express every command the executor allows
    assert config.action_low[0] <= limits.min_linear_vel
    assert config.action_high[0] >= limits.max_linear_vel
    assert config.action_low[1] <= -limits.max_angular_vel
    assert config.action_high[1] >= limits.max_angular_vel
    assert (config.window, config.chunk, config.action_dim) == (8, 10, 2)


@pytest.mark.parametrize('changes, message', [
    ({'backbone': 'resnet'}, 'backbone'),
    ({'head': 'diffusion'}, 'head'),
    ({'head': 'flow', 'flow_steps': 0}, 'flow_steps'),
    ({'state_dim': 2}, 'state_dim'),
    ({'action_low': (0.5, -1.5)}, 'action_low'),
    ({'action_low': (0.0,)}, 'action_low'),
    ({'trunk_blocks': 17}, 'trunk_blocks'),
    ({'history_stride': 0}, 'history_stride'),
    ({'memory_slots': 8}, 'memory_slots'),
    ({'memory_slots': 2, 'memory_stride': 0}, 'memory_stride'),
    ({'fovea_rows': 81}, 'fovea_rows'),
    ({'fovea_rows': 8, 'backbone': 'kosmos2', 'kosmos2_path': '/k2'}, 'fovea_rows needs backbone edge'),
    ({'fovea_zoom': 0.5}, 'fovea_zoom'),
    ({'fovea_centre': 1.5}, 'fovea_centre'),
    ({'backbone': 'kosmos2'}, 'kosmos2_path'),
    ({'format_version': 99}, 'format_version'),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        PolicyConfig(**changes)
    with pytest.raises(ValueError, match='unknown PolicyConfig keys'):
        PolicyConfig.from_dict({**PolicyConfig().to_dict(), 'colour': 'red'})


def test_shapes_and_frozen_trunk(policy):
    cfg = policy.config
    images = torch.randint(0, 256, (B, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8)
    text = unit_text(B)
    trunk = policy.encode_trunk(images)
    assert not trunk.requires_grad and trunk.shape == (B, *policy.backbone.trunk_shape)
    features = policy.encode_frame_from_trunk(trunk, text)
    assert features.shape == (B, cfg.feature_dim)
    assert torch.allclose(features, policy.encode_frame(images, text))
    window = policy.encode_window_from_trunk(trunk.unsqueeze(1).expand(-1, W, -1, -1, -1), text)
    assert window.shape == (B, W, cfg.feature_dim)
    out = policy.head_forward(window, text)
    assert out.shape == (B, W, C, 2) and out.abs().max() <= 1.0
    chunk = policy.predict_chunk(window, text)
    assert chunk.shape == (B, C, 2)
    assert torch.allclose(policy.normalise_actions(chunk), out[:, -1], atol=1e-5)
    with pytest.raises(ValueError, match='images must be'):
        policy.encode_trunk(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    # frozen parts never train and stay out of the trainable weights
    policy.train()
    assert not policy.backbone.trunk.training
    assert all(not name.startswith('backbone.trunk.') for name in policy.trainable_state_dict())
    assert all(p.requires_grad for p in policy.trainable_parameters())
    policy.eval()


def test_instruction_film_changes_features(policy):
    """The neck must depend on the instruction (FiLM), the trunk must not."""
    cfg = policy.config
    with torch.no_grad():
        policy.backbone.film.weight.normal_(0.0, 0.5)
        images = torch.randint(0, 256, (1, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8)
        first = policy.encode_frame(images, unit_text(1, seed=1))
        second = policy.encode_frame(images, unit_text(1, seed=2))
        policy.backbone.film.weight.zero_()
    assert (first - second).abs().max() > 1e-3


def test_extra_neck_layers_are_residual_and_instruction_conditioned():
    """neck_layers=2: starts close to the one-layer neck (residual), and its own FiLM also reads the
    instruction, so it can bind colour and shape at one position."""
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(neck_layers=2), load_pretrained=False).eval()
    backbone = policy.backbone
    assert len(backbone.mix) == len(backbone.mix_film) == 1
    assert not backbone.mix_film[0].weight.any()
    trunk = torch.randn(2, *backbone.trunk_shape)
    with torch.no_grad():
        backbone.mix_film[0].weight.normal_(0.0, 0.5)
        first = policy.encode_frame_from_trunk(trunk, unit_text(2, seed=1))
        second = policy.encode_frame_from_trunk(trunk, unit_text(2, seed=2))
    assert (first - second).abs().max() > 1e-3
    assert any(name.startswith('backbone.mix') for name in policy.trainable_state_dict())


def test_normalisation_round_trip_and_clipping(policy):
    physical = torch.tensor([[-0.2, -1.5], [0.5, 1.5], [0.15, 0.0], [0.3, -0.7]])
    normalised = policy.normalise_actions(physical)
    assert torch.allclose(normalised[:2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert torch.allclose(policy.denormalise_actions(normalised), physical, atol=1e-6)
    clipped = policy.normalise_actions(torch.tensor([[9.0, -9.0]]))
    assert torch.allclose(clipped, torch.tensor([[1.0, -1.0]]))


def test_states_required_when_configured():
    state_policy = VLAPolicy(PolicyConfig(state_dim=4), load_pretrained=False).eval()
    features, text = torch.randn(1, W, 256), unit_text(1)
    with pytest.raises(ValueError, match='states'):
        state_policy.head_forward(features, text, None)
    states = torch.zeros(1, W, 4)
    moved = states.clone()
    moved[..., 2] = 3.0
    assert not torch.allclose(state_policy.predict_chunk(features, text, states),
                              state_policy.predict_chunk(features, text, moved))


def test_loss_ignores_masked_steps(policy):
    features, text = torch.randn(2, W, 256), unit_text(2)
    targets = torch.rand(2, W, C, 2) * 0.3
    mask = torch.ones(2, W, C, dtype=torch.bool)
    mask[1, 5:, 4:] = False  # the episode ended
    base, metrics = policy.compute_loss(features, text, None, targets, mask)
    assert metrics['valid_steps'] == int(mask.sum())
    altered = targets.clone()
    altered[1, 5:, 4:] = -5.0  # garbage past the end must not matter
    assert torch.allclose(policy.compute_loss(features, text, None, altered, mask)[0], base)
    altered[0, 0, 0] = 0.5
    assert not torch.allclose(policy.compute_loss(features, text, None, altered, mask)[0], base)
    with pytest.raises(ValueError, match='target_chunks'):
        policy.compute_loss(features, text, None, targets[:, :, :5], mask)


@pytest.mark.parametrize('head', ['lstm', 'fc', 'gpt', 'discrete', 'flow'])
def test_each_head_learns_a_toy_batch(head):
    """Chunk depends on the newest feature and the instruction; a few Adam steps cut the loss
    (the flow head regresses a noisy velocity target: it gets more steps)."""
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(head=head, dropout=0.0), load_pretrained=False).train()
    features = torch.randn(8, W, 256)
    text = unit_text(8)
    speed = 0.15 + 0.1 * torch.tanh(features[:, :, :1])               # (8, W, 1)
    turn = torch.tanh(text[:, :1]).unsqueeze(1).expand(-1, W, -1) * 3.0  # instruction -> turn
    targets = torch.cat([speed, turn], dim=-1).unsqueeze(2).expand(-1, -1, C, -1).contiguous()
    mask = torch.ones(8, W, C, dtype=torch.bool)
    optimiser = torch.optim.Adam(policy.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(150 if head == 'flow' else 40):
        loss, _ = policy.compute_loss(features, text, None, targets, mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (head, losses[0], losses[-1])
    policy.eval()
    with torch.no_grad():
        chunk = policy.predict_chunk(features, text)
    assert chunk.shape == (8, C, 2)
    assert float((chunk - targets[:, -1]).abs().mean()) < float(targets[:, -1].abs().mean())


def test_minilm_instruction_embedding(policy):
    texts = ['go to the red cone', 'go to the red cone', 'turn left']
    embedding = policy.embed_instructions(texts)
    assert embedding.shape == (3, 384)
    assert torch.allclose(embedding.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(embedding[0], embedding[1])
    assert float(embedding[0] @ embedding[2]) < 0.99


def test_flow_head_shapes_and_deterministic_prediction():
    """The flow head integrates from a stored fixed sample: the same window gives the same chunk
    whatever the global RNG, and its flow_steps Euler steps are what the chunk depends on."""
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(head='flow', flow_steps=4), load_pretrained=False).eval()
    features, text = torch.randn(2, W, 256), unit_text(2)
    with torch.no_grad():
        torch.manual_seed(1)
        first = policy.predict_chunk(features, text)
        torch.manual_seed(2)
        second = policy.predict_chunk(features, text)
        every = policy.head_forward(features, text)
    assert first.shape == (2, C, 2) and torch.equal(first, second)
    assert every.shape == (2, W, C, 2) and every.abs().max() <= 1.0
    assert torch.allclose(policy.normalise_actions(first), every[:, -1], atol=1e-5)
    assert 'head.start' in policy.trainable_state_dict()      # the checkpoint carries the start
    one_step = VLAPolicy(PolicyConfig(head='flow', flow_steps=1), load_pretrained=False).eval()
    one_step.load_state_dict(policy.state_dict())
    with torch.no_grad():
        assert not torch.allclose(one_step.predict_chunk(features, text), first)


def test_flow_loss_is_finite_reproducible_in_eval_and_ignores_masked_steps():
    torch.manual_seed(0)
    policy = VLAPolicy(PolicyConfig(head='flow'), load_pretrained=False).eval()
    features, text = torch.randn(2, W, 256), unit_text(2)
    targets = torch.rand(2, W, C, 2) * 0.3
    mask = torch.ones(2, W, C, dtype=torch.bool)
    mask[1, 5:, 4:] = False
    base, metrics = policy.compute_loss(features, text, None, targets, mask)
    assert torch.isfinite(base) and base > 0 and metrics['valid_steps'] == int(mask.sum())
    assert torch.equal(policy.compute_loss(features, text, None, targets, mask)[0], base)
    altered = targets.clone()
    altered[1, 5:, 4:] = -5.0  # padding past the end never reaches the loss nor the noisy input
    assert torch.equal(policy.compute_loss(features, text, None, altered, mask)[0], base)
    altered[0, 0, 0] = 0.5
    assert not torch.allclose(policy.compute_loss(features, text, None, altered, mask)[0], base)
    policy.train()  # training draws fresh noise and times from the (seeded) global RNG
    torch.manual_seed(5)
    draw = policy.compute_loss(features, text, None, targets, mask)[0]
    assert not torch.allclose(policy.compute_loss(features, text, None, targets, mask)[0], draw)
    torch.manual_seed(5)
    assert torch.equal(policy.compute_loss(features, text, None, targets, mask)[0], draw)


def test_flow_head_commits_to_one_of_two_modes():
    """One context, two equally likely answers (turn left or right at 1 rad/s for the whole chunk):
    a regression head averages them to ~0; the flow head picks one side for the whole chunk."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny model: one thread is fastest on a shared CPU
    try:
        torch.manual_seed(0)
        config = PolicyConfig(head='flow', window=2, feature_dim=32, head_hidden=64, text_head_dim=0,
                              dropout=0.0)
        policy = VLAPolicy(config, load_pretrained=False).train()
        features, text = torch.randn(1, 2, 32).expand(32, -1, -1), torch.zeros(32, 384)
        side = torch.where(torch.arange(32) % 2 == 0, 1.0, -1.0).view(32, 1, 1, 1).expand(-1, 2, C, 1)
        targets = torch.cat([torch.full_like(side, 0.3), side], dim=-1).contiguous()
        mask = torch.ones(32, 2, C, dtype=torch.bool)
        optimiser = torch.optim.Adam(policy.trainable_parameters(), lr=5e-3)
        for _ in range(400):
            loss, _ = policy.compute_loss(features, text, None, targets, mask)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        policy.eval()
        with torch.no_grad():
            turn = policy.predict_chunk(features[:1], text[:1])[0, :, 1]
    finally:
        torch.set_num_threads(threads)
    assert bool((turn > 0).all() or (turn < 0).all()), turn
    assert float(turn.abs().mean()) > 0.2, turn   # the two modes are at +-1 rad/s, their mean 0


def test_the_fovea_strip_goes_through_the_same_frozen_trunk():
    """The strip's trunk shares the full view's weights (one copy) and encodes exactly as a trunk
    built for the strip's size alone would (what the training caches hold); the maps stack."""
    from vla_nav.model.pretrained import EfficientNetTrunk
    fovea = VLAPolicy(PolicyConfig(fovea_rows=40)).eval()
    trunk = fovea.backbone.trunk
    assert trunk.strip.stem[0].weight is trunk.full.stem[0].weight
    images = torch.randint(0, 256, (2, 120, 80, 3), dtype=torch.uint8)
    with torch.no_grad():
        stacked = fovea.encode_trunk(images)
        full = EfficientNetTrunk(80, 8).eval()(images[:, :80])
        strip = EfficientNetTrunk((40, 80), 8).eval()(images[:, 80:])
    assert stacked.shape == (2, 80, 8, 5) and fovea.backbone.trunk_shape == (80, 8, 5)
    assert torch.equal(stacked, torch.cat([full, strip], dim=2))
