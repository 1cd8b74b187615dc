"""A forced camera mount (record-sim / eval-sim --suite --camera-mount): outside the training
jitter, the same rooms and tasks seen from another camera, pinned in the recording's settings."""
import json
from dataclasses import asdict

import numpy as np
import pytest

from vla_nav.config import load_config
from vla_nav.data.bags import bag_custom_data
from vla_nav.sim import NavSim
from vla_nav.sim.robot import RobotLimits
from vla_nav.sim.rooms import CAMERA_PRESETS, CAMERA_RANGES, CameraMount, parse_camera_mount
from vla_nav.tools import record_sim

SIZE = 32


def _sim(**kwargs):
    config = load_config()
    return NavSim(split='train', seed=6, image_size=(SIZE, SIZE), world='v2',
                  limits=RobotLimits.from_executor(config.executor), stop_words=config.stop_words,
                  **kwargs)


def test_presets_lie_outside_every_training_range():
    assert set(CAMERA_PRESETS) >= {'low', 'high'}
    for mount in CAMERA_PRESETS.values():
        assert not mount.in_training_range()
        for key, (low, high) in CAMERA_RANGES.items():   # each value, not just one of them
            assert not low <= getattr(mount, key) <= high, (mount, key)
    assert CameraMount().in_training_range()   # v1's mount is inside the jitter


def test_a_mount_is_parsed_from_a_preset_or_three_numbers():
    assert parse_camera_mount('low') == CAMERA_PRESETS['low']
    assert parse_camera_mount('0.25,18,70') == CameraMount(0.25, 18.0, 70.0)
    for bad in ('', 'lowest', '0.2,20', '0.2,20,x', '5,20,66', '0.2,20,170'):
        with pytest.raises(ValueError, match='camera mount'):
            parse_camera_mount(bad)


def test_the_same_rooms_and_tasks_are_seen_from_the_forced_mount():
    drawn, forced = _sim(), _sim(camera_mount=CAMERA_PRESETS['low'])
    try:
        for episode in range(3):
            a, b = drawn.reset(episode), forced.reset(episode)
            assert forced.layout.camera == CAMERA_PRESETS['low']
            assert drawn.layout.camera.in_training_range()
            assert forced.scenario.instruction == drawn.scenario.instruction
            assert forced.layout.objects == drawn.layout.objects
            assert not np.array_equal(a.rgb, b.rgb)
    finally:
        drawn.close()
        forced.close()
    config = load_config()
    with pytest.raises(ValueError, match='v2'):
        NavSim(world='v1', camera_mount=CAMERA_PRESETS['low'],
               limits=RobotLimits.from_executor(config.executor), stop_words=config.stop_words)


def test_record_sim_writes_the_mount_and_pins_it(tmp_path):
    settings = record_sim.RecordSettings(split='train', seed=6, image_size=SIZE, control_dt=0.1,
                                         storage='mcap', compress=True, world='v2',
                                         camera_mount='low')
    summary = record_sim.record_episode(settings, 0, str(tmp_path), keep_failures=True)
    assert summary['written']
    metadata = bag_custom_data(tmp_path / record_sim.episode_name(settings, 0))
    assert json.loads(metadata['camera']) == asdict(CAMERA_PRESETS['low'])
    record_sim._check_settings(tmp_path, settings)
    drawn = record_sim.RecordSettings(**{**asdict(settings), 'camera_mount': ''})
    with pytest.raises(SystemExit, match='camera_mount'):
        record_sim._check_settings(tmp_path, drawn)
    with pytest.raises(ValueError, match='--world v2'):
        record_sim.RecordSettings(**{**asdict(settings), 'world': 'v1'})
    with pytest.raises(ValueError, match='camera mount'):
        record_sim.RecordSettings(**{**asdict(settings), 'camera_mount': 'sideways'})


def test_the_suite_drives_scenes_from_the_forced_mount():
    from vla_nav.tools.eval_sim import ClosedLoopSettings
    from vla_nav.tools.suite import runner
    runner.init_worker(lambda: None, (), runner.SuiteSettings('train', 6, camera_mount='high'),
                       ClosedLoopSettings.from_config(latency=0.02))
    try:
        runner._WORKER['sim'].reset(0)
        assert runner._WORKER['sim'].layout.camera == CAMERA_PRESETS['high']
    finally:
        runner.close_worker()


def test_eval_sim_refuses_a_mount_without_the_suite_or_a_bad_one(capsys):
    from vla_nav.cli import main
    assert main(['eval-sim', '--camera-mount', 'low', '--episodes', '1']) == 2
    assert '--camera-mount need --suite' in capsys.readouterr().err
    assert main(['eval-sim', '--suite', '--camera-mount', 'sideways', '--tiers', 'goto']) == 2
    assert "camera mount must be one of ['high', 'low']" in capsys.readouterr().err
