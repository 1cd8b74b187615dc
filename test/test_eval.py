"""Offline evaluation: MAE bookkeeping, the eval verb's JSON + plot, and exact figures through
PolicyLoop with a known engine (the engine is found as 'test_eval:make_engine')."""
import json

import numpy as np
import pytest

from vla_nav.core.engine import EngineSpec, PolicyEngine
from vla_nav.tools.evaluate import chunk_targets
from vla_nav.training.metrics import ChunkMAE
from vla_nav.training.synthetic import synthetic_action, write_synthetic_bags

CONSTANT = (0.1, 0.2)


class ConstantEngine(PolicyEngine):
    """Always the same chunk: its offline MAE is computable from the recorded commands alone."""

    backend = 'test'

    def __init__(self, **_):
        self.spec = EngineSpec(image_height=32, image_width=32, feature_dim=4, state_dim=4)
        self.instructions = []

    def set_instruction(self, text):
        self.instructions.append(text)

    def encode_frame(self, rgb):
        assert rgb.shape == (32, 32, 3)
        return np.zeros(4, np.float32)

    def act(self, features, states=None):
        assert features.shape == (8, 4) and states.shape == (8, 4)
        return np.tile(np.float32(CONSTANT), (10, 1))


def make_engine(**kwargs):
    return ConstantEngine(**kwargs)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    write_synthetic_bags(root, episodes=2, length=12, image_size=32)
    return root


def test_chunk_mae_per_step_dim_and_overall():
    errors = ChunkMAE(chunk=3)
    predicted = np.zeros((2, 3, 2))
    target = np.array([[[1, 2], [1, 2], [9, 9]], [[3, 4], [0, 0], [0, 0]]], float)
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    errors.add(predicted, target, mask)
    summary = errors.summary()
    assert summary['count'] == 3 and summary['chunks'] == 2
    assert summary['per_dim'] == {'linear': pytest.approx(5 / 3), 'angular': pytest.approx(8 / 3)}
    assert summary['overall'] == pytest.approx(13 / 6)
    assert summary['per_step_dim'][0] == [2.0, 3.0] and summary['per_step'][2] == 0.0


def test_chunk_targets_mask_past_the_end():
    actions = np.arange(10, dtype=np.float32).reshape(5, 2)
    target, mask = chunk_targets(actions, 3, chunk=4)
    assert mask.tolist() == [True, True, False, False]
    assert target[:2].tolist() == actions[3:5].tolist() and not target[2:].any()


def test_eval_verb_json_plot_and_exact_mae(bags, tmp_path, capsys):
    from vla_nav.cli import main
    plot = tmp_path / 'mae.png'
    code = main(['eval', '--model', str(tmp_path), '--data', str(bags), '--backend',
                 'test_eval:make_engine', '--json', '--plot', str(plot)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ('overall', 'per_dim', 'per_step', 'per_step_dim', 'per_kind', 'episodes', 'count'):
        assert key in summary
    assert plot.is_file() and plot.stat().st_size > 1000
    # expected: every tick's chunk vs the recorded commands of the next 10 ticks
    errors = []
    for kind in (0, 1):
        actions = np.array([synthetic_action(kind, t, 12) for t in range(12)], np.float32)
        for tick in range(12):
            for step in range(min(10, 12 - tick)):
                errors.append(np.abs(actions[tick + step] - np.float32(CONSTANT)))
    errors = np.array(errors)
    assert summary['episodes'] == 2 and summary['count'] == len(errors)
    assert summary['overall'] == pytest.approx(errors.mean(), abs=1e-5)
    assert summary['per_dim']['angular'] == pytest.approx(errors[:, 1].mean(), abs=1e-5)


def test_eval_verb_reports_a_bad_model(tmp_path, bags, capsys):
    from vla_nav.cli import main
    assert main(['eval', '--model', str(tmp_path / 'missing'), '--data', str(bags)]) == 2
    assert 'missing' in capsys.readouterr().err


def test_offline_mae_hands_a_fovea_model_each_frame_cut_once(bags):
    """read_episodes(image_size=spec.view) already cut the model's view (full view + fovea strip):
    the loop must encode it as is, as training does, not cut a strip out of the cut again."""
    from vla_nav.core.image_decode import Fovea
    from vla_nav.data.dataset import read_episodes
    from vla_nav.tools.evaluate import evaluate_offline

    class Recording(ConstantEngine):
        def __init__(self):
            super().__init__()
            self.spec = EngineSpec(image_height=24, image_width=16, feature_dim=4, state_dim=4,
                                   fovea=Fovea(rows=8))
            self.frames = []

        def encode_frame(self, rgb):
            self.frames.append(np.array(rgb))
            return np.zeros(4, np.float32)

    engine = Recording()
    episodes = list(read_episodes(bags, dt=engine.spec.dt, image_size=engine.spec.view))
    summary = evaluate_offline(engine, episodes)
    assert summary['episodes'] == 2 and summary['refused_steps'] == 0
    expected = [frame for episode in episodes for frame in episode.frames]
    assert len(engine.frames) == len(expected)
    assert all(np.array_equal(seen, frame) for seen, frame in zip(engine.frames, expected, strict=True))
