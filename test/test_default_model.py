"""The committed default model: it loads, and the small fixed held-out evaluation recorded in
models/default/eval.json ("fixed") reproduces in the world eval.json names (offline MAE on freshly
recorded test episodes and closed-loop outcomes on fixed test scenes, both through the ONNX
runtime; v1 for a model published before worlds were recorded)."""
import json

import pytest

from vla_nav.config import default_model_dir, model_world

MODEL = default_model_dir()
pytestmark = pytest.mark.skipif(not (MODEL / 'eval.json').is_file(),
                                reason='models/default has no eval.json yet')


@pytest.fixture(scope='module')
def recorded():
    return json.loads((MODEL / 'eval.json').read_text())


def test_default_model_is_small_and_loads(recorded):
    from vla_nav.model.config import read_checkpoint_config
    config, document = read_checkpoint_config(MODEL)
    size = sum(p.stat().st_size for p in MODEL.iterdir() if p.is_file())
    assert size < 25 * 1024 * 1024
    assert document['frozen'] and all('sha256' in ref for ref in document['frozen'].values())
    assert recorded['offline']['overall'] > 0
    if model_world(MODEL) == 'v2':     # the test-split suite: a rate per tier
        assert all(0 <= tier['success']['rate'] <= 1 for tier in recorded['suite']['tiers'].values())
    else:
        assert 0 <= recorded['closed_loop']['success_rate'] <= 1


def test_fixed_evaluation_reproduces(recorded):
    from vla_nav.tools.publish import fixed_block
    expected = recorded['fixed']
    world = model_world(MODEL)          # eval.json's "world" (v1 when it names none)
    assert expected.get('world', world) == world
    measured = fixed_block(MODEL, world=world)
    assert measured['offline']['count'] == expected['offline']['count']
    assert measured['offline']['overall'] == pytest.approx(expected['offline']['overall'], abs=2e-3)
    for name, value in expected['offline']['per_dim'].items():
        assert measured['offline']['per_dim'][name] == pytest.approx(value, abs=3e-3)
    outcomes, wanted = measured['closed_loop']['outcomes'], expected['closed_loop']['outcomes']
    assert len(outcomes) == len(wanted)
    assert measured['closed_loop'].get('labels') == expected['closed_loop'].get('labels')
    # one marginal episode may flip on another CPU's float rounding; on another stack (the robot's
    # Python 3.10 venv: older MuJoCo, ONNX Runtime and numpy) two: the long search scenes (up to
    # 600 policy steps) are where the published model's last such check flipped (2 of 22)
    allowed = 1 if measured['stack'] == expected.get('stack') else 2
    flips = sum(a != b for a, b in zip(outcomes, wanted, strict=True))
    assert flips <= allowed, (measured['stack'], expected.get('stack'), outcomes, wanted)
