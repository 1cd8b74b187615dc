"""The MuJoCo world: rendering, determinism, the expert, limits, collisions, judging, plots."""
import math

import numpy as np
import pytest

from vla_nav.config import load_config
from vla_nav.sim import NavSim, plot_topdown
from vla_nav.sim.layout import COLOURS, ROBOT_RADIUS, free_distance, wall_clearance
from vla_nav.sim.robot import RobotLimits
from vla_nav.sim.scenarios import KINDS

EPISODES_PER_KIND = 20
CONFIG = load_config()
ROBOT = {'limits': RobotLimits.from_executor(CONFIG.executor), 'stop_words': CONFIG.stop_words}


@pytest.fixture(scope='module')
def sim():
    with NavSim('test', seed=0, **ROBOT) as simulator:
        yield simulator


def _nearest_colour(rgb) -> str:
    """The named colour whose chromaticity is closest (lighting scales brightness, not hue)."""
    chroma = np.asarray(rgb, float) / max(float(np.sum(rgb)), 1e-6)
    return min(COLOURS, key=lambda name: np.linalg.norm(
        chroma - np.asarray(COLOURS[name]) / sum(COLOURS[name])))


def test_observation_shapes_and_types(sim):
    obs = sim.reset(0)
    assert obs.rgb.shape == (128, 128, 3) and obs.rgb.dtype == np.uint8
    assert obs.rgb.std() > 5  # a scene, not a blank frame
    assert obs.state.shape == (4,) and obs.state.dtype == np.float32
    assert obs.time == 0.0 and obs.twist == (0.0, 0.0)
    assert obs.pose == sim.layout.start_pose
    step = sim.step(0.2, 0.0)
    assert step.observation.time == pytest.approx(0.1)
    assert step.observation.rgb.shape == (128, 128, 3)


def test_same_seed_gives_the_same_room_and_first_frame(sim):
    first = sim.reset(4)
    layout = sim.layout
    sim.reset(9)
    again = sim.reset(4)
    assert sim.layout == layout
    assert np.array_equal(first.rgb, again.rgb)
    with NavSim('test', seed=0, image_size=(64, 96), **ROBOT) as other:
        small = other.reset(4)
        assert other.layout == layout and other.scenario.instruction == sim.scenario.instruction
        assert small.rgb.shape == (64, 96, 3)
    assert sim.reset(4).rgb.tobytes() == first.rgb.tobytes()
    assert sim.reset(5).rgb.tobytes() != first.rgb.tobytes()


def test_the_goto_target_is_visible_in_its_colour_in_the_first_frame(sim):
    for episode in range(6):
        obs = sim.reset(episode, kind='goto')
        target = sim.scenario.target
        assert target in sim.visible_objects(min_pixels=sim.min_target_pixels)
        counts = sim.world.pixel_counts()
        index = sim.layout.objects.index(target)
        assert counts[index] >= sim.min_target_pixels
        segmentation_mask = _target_mask(sim, index)
        assert _nearest_colour(obs.rgb[segmentation_mask].mean(axis=0)) == target.colour


def _target_mask(sim, index):
    renderer = sim.world._renderer
    renderer.enable_segmentation_rendering()
    try:
        renderer.update_scene(sim.world.data, camera='front')
        segmentation = renderer.render()
    finally:
        renderer.disable_segmentation_rendering()
    geom = sim.world._object_geoms[index]
    return segmentation[..., 0] == geom


@pytest.mark.parametrize('kind', KINDS)
def test_expert_solves_episodes_smoothly_within_the_executor_limits(sim, kind):
    limits = CONFIG.chunk_executor.to_params()
    dt = sim.control_dt
    successes = 0
    for episode in range(EPISODES_PER_KIND):
        sim.reset(1000 + episode, kind=kind)
        previous = (0.0, 0.0)
        for _ in range(2000):
            linear, angular = sim.expert_action()
            assert limits['min_linear_vel'] - 1e-9 <= linear <= limits['max_linear_vel'] + 1e-9
            assert abs(angular) <= limits['max_angular_vel'] + 1e-9
            assert abs(linear - previous[0]) <= limits['max_linear_accel'] * dt + 1e-9 or \
                abs(linear) < abs(previous[0])
            assert abs(linear - previous[0]) <= limits['max_linear_decel'] * dt + 1e-9
            assert abs(angular - previous[1]) <= limits['max_angular_decel'] * dt + 1e-9
            result = sim.step(linear, angular, render=False)
            # the base follows commands inside its limits exactly
            assert result.observation.twist == pytest.approx((linear, angular), abs=1e-9)
            previous = (linear, angular)
            if result.done:
                break
        successes += result.outcome == 'success'
        if kind == 'stop':
            assert result.observation.time == pytest.approx(sim.scenario.time_limit)
    assert successes >= 0.9 * EPISODES_PER_KIND


def test_goto_success_metrics(sim):
    sim.reset(3, kind='goto')
    while not sim.step(*sim.expert_action(), render=False).done:
        pass
    metrics = sim.metrics()
    assert metrics['outcome'] == 'success' and metrics['success']
    target = sim.scenario.target
    end = metrics['end_pose']
    assert math.hypot(end[0] - target.position[0], end[1] - target.position[1]) <= \
        sim.scenario.parameters['success_radius']
    assert metrics['time_to_goal'] == pytest.approx(sim.observation.time)
    assert 0.8 <= metrics['path_efficiency'] <= 1.0
    assert metrics['path_length'] >= metrics['straight_line_distance'] > 1.0


def _face_a_wall(sim) -> None:
    """A start pose with a wall, and no object, straight ahead; the robot turned to face it."""
    for episode in range(50):
        sim.reset(episode)
        x, y, _ = sim.layout.start_pose
        headings = [h for h in (0.0, math.pi / 2, math.pi, -math.pi / 2)
                    if free_distance(sim.layout, x, y, h, ROBOT_RADIUS + 0.3)
                    == pytest.approx(free_distance(sim.layout, x, y, h, ROBOT_RADIUS + 0.3,
                                                   objects=False))]
        if headings:
            break
    sim.set_instruction('')   # no task: only a collision ends it
    heading = headings[0]
    for _ in range(100):      # face the wall
        error = math.atan2(math.sin(heading - sim.observation.pose[2]),
                           math.cos(heading - sim.observation.pose[2]))
        if abs(error) < 0.01:
            break
        sim.step(0.0, float(np.clip(2.0 * error, -1.0, 1.0)), render=False)


def test_driving_into_a_wall_is_a_collision_and_the_robot_stays_outside_it(sim):
    _face_a_wall(sim)
    for _ in range(300):
        result = sim.step(0.5, 0.0, render=False)
        if result.done:
            break
    assert result.outcome == 'collision'
    assert sim.metrics()['collided_with'] == 'wall'
    assert result.observation.twist == (0.0, 0.0)
    x, y, _ = result.observation.pose
    assert wall_clearance(sim.layout, x, y) >= ROBOT_RADIUS - 0.02
    assert wall_clearance(sim.layout, x, y) <= ROBOT_RADIUS + 0.05   # it did reach the wall
    # pushing on does not go through: the base stays put
    pushed = sim.step(0.5, 0.0, render=False).observation.pose
    assert wall_clearance(sim.layout, *pushed[:2]) >= ROBOT_RADIUS - 0.02


def test_would_collide_looks_ahead_through_the_base_limits_and_leaves_the_world_as_found(sim):
    """record-sim --rescue's look-ahead: driving at a wall, `would_collide(command, 0.6 s)` turns
    true a few steps before the touch (not at the start); the command is held through the base's
    acceleration, a turn in place touches nothing, and the pose, twist and image stay as they were."""
    _face_a_wall(sim)
    sim.render()
    predictions = []
    for _ in range(300):
        pose, twist, image = sim.observation.pose, sim.observation.twist, sim.render().copy()
        predictions.append(sim.would_collide(0.5, 0.0, 0.6))
        assert (sim.observation.pose, sim.observation.twist) == (pose, twist)
        np.testing.assert_array_equal(sim.render(), image)
        if sim.step(0.5, 0.0, render=False).done:
            break
    assert sim.outcome == 'collision'
    first = predictions.index(True)
    assert not predictions[0] and all(predictions[first:])
    assert len(predictions) - 8 <= first <= len(predictions) - 2     # 0.6 s at <= 0.5 m/s ahead
    assert not sim.would_collide(0.0, 1.0, 0.6) and sim.would_collide(0.5, 0.0, 0.6)


def test_judge_ends_turns_forwards_and_stops_as_specified(sim):
    sim.reset(2)
    scenario = sim.set_instruction('turn left')
    assert scenario.kind == 'turn' and sim.observation.time == 0.0
    for _ in range(30):   # 1.2 rad/s for 3 s overshoots 90 degrees by more than 60 degrees
        result = sim.step(0.0, 1.2, render=False)
        if result.done:
            break
    assert result.outcome == 'failure'
    sim.set_instruction('stop')
    result = sim.step(0.3, 0.0, render=False)
    for _ in range(10):
        result = sim.step(0.3, 0.0, render=False)
    assert result.outcome == 'failure'   # it moved
    sim.set_instruction('stay')
    while not (result := sim.step(0.0, 0.0, render=False)).done:
        pass
    assert result.outcome == 'success' and sim.observation.time == pytest.approx(3.0)
    assert sim.set_instruction('fly to the moon') is None
    for _ in range(5):
        assert not sim.step(0.0, 0.0, render=False).done


def test_metrics_count_the_turn_unwrapped_past_a_full_circle(sim):
    sim.reset(2)
    for angular, seconds, low, high in ((1.0, 9.0, 2 * math.pi, 9.0), (-1.0, 2.0, -2.0, -1.0)):
        assert sim.set_instruction('fly to the moon') is None   # free driving: nothing ends it
        start = sim.observation.pose[2]
        while sim.observation.time < seconds - 1e-9:
            sim.step(0.0, angular, render=False)
        turned = sim.metrics()['turned_rad']
        assert low < turned < high   # at most |angular| rad/s, from rest
        assert math.remainder(turned - (sim.observation.pose[2] - start), math.tau) == \
            pytest.approx(0.0, abs=1e-3)


def test_timeout(sim):
    sim.reset(1, kind='forward')
    while not (result := sim.step(0.0, 0.0, render=False)).done:
        pass
    assert result.outcome == 'timeout'
    assert result.observation.time == pytest.approx(sim.scenario.time_limit)


def test_topdown_plot(sim, tmp_path):
    sim.reset(0, kind='goto')
    poses = [sim.observation.pose]
    while not (result := sim.step(*sim.expert_action(), render=False)).done:
        poses.append(result.observation.pose)
    path = plot_topdown(sim.layout, [{'poses': poses, 'outcome': result.outcome,
                                      'target': sim.scenario.target, 'label': 'expert'}],
                        tmp_path / 'top.png')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert path.stat().st_size > 10_000
