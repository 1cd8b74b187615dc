"""`python -m vla_nav demo`: the goal planner and chunk drawing (no ROS), and one short end-to-end
run of the real node processes on DDS loopback (sim_node + vla_node + chunk_executor)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from rosutil import REPO_ROOT, TEST_DIR, domain_id_for

from vla_nav.config import default_model_dir, load_config, model_world
from vla_nav.sim.goals import (
    DEMO_SEQUENCE,
    forward_options,
    goal_sequence,
    layout_from_scene,
    plan_goal,
    plan_with_fallback,
)
from vla_nav.sim.scenarios import generate_episode, parse_instruction
from vla_nav.tools.overlay import camera_model, draw_chunk, integrate_chunk, project_floor_points

DEMO_TIMEOUT_S = 240


# --- drawing -------------------------------------------------------------------------------------
def test_integrate_chunk_straight_and_left_turn():
    straight = integrate_chunk(np.tile([0.5, 0.0], (10, 1)), 0.1)
    assert straight.shape == (11, 2)
    assert straight[-1] == pytest.approx([0.5, 0.0])
    left = integrate_chunk(np.tile([0.4, 1.0], (10, 1)), 0.1)
    assert left[-1, 1] > 0.05 and left[-1, 0] < 0.4      # curves to the left (+y), shorter ahead


def test_floor_points_project_in_front_of_the_camera():
    camera = camera_model()
    points = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 0.5], [-1.0, 0.0]])
    pixels = project_floor_points(points, 128, 128, camera)
    assert pixels[0, 0] == pytest.approx(64.0)                 # straight ahead: centre column
    assert pixels[1, 1] < pixels[0, 1] < 128                   # farther: higher in the image
    assert pixels[2, 0] < pixels[0, 0]                         # to the left: left in the image
    assert np.isnan(pixels[3]).all()                           # behind the camera


def test_draw_chunk_marks_the_frame():
    frame = np.full((128, 128, 3), 90, dtype=np.uint8)
    drawn = draw_chunk(frame, np.tile([0.4, 0.3], (10, 1)), 0.1, 'go to the red cone', scale=2)
    assert drawn.shape == (256, 256, 3) and drawn.dtype == np.uint8
    assert (drawn != 90).any(axis=2).mean() > 0.01             # path, inset and captions drawn


# --- goal planning -------------------------------------------------------------------------------
@pytest.mark.parametrize('episode', range(6))
def test_planned_goals_fit_the_room_and_the_sim_understands_them(episode):
    layout, _ = generate_episode('test', 3, episode, kind='goto')
    layout = layout_from_scene(json.loads(json.dumps(layout.to_dict())))   # as heard on /sim/scene
    pose = layout.start_pose
    first = plan_goal('goto', layout, pose)
    assert first is not None and first.target['name'] == layout.target.name  # in view by design
    visited = (first.target['name'],)
    for kind in DEMO_SEQUENCE:
        goal = plan_with_fallback(kind, layout, pose, visited)
        scenario = parse_instruction(goal.text, layout, pose, stop_words=load_config().stop_words)
        assert scenario is not None, goal.text
        assert scenario.kind == goal.sim_kind
        if goal.sim_kind == 'goto':
            assert scenario.target.name == goal.target['name']
        if goal.kind == 'forward':
            assert goal.parameters['distance'] in forward_options(layout, pose)


def test_goal_sequence_repeats_the_demo_cycle():
    assert goal_sequence(2) == ['goto', 'turn']
    assert goal_sequence(len(DEMO_SEQUENCE) + 2) == list(DEMO_SEQUENCE) + ['goto', 'turn']


# --- end to end ----------------------------------------------------------------------------------
@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_the_node_suite_and_writes_its_outputs(tmp_path):
    """The real default model when it exists (what `make demo` runs); before it is trained, the
    deterministic test engine so the orchestration is still proven."""
    out = tmp_path / 'demo_out'
    command = [sys.executable, '-m', 'vla_nav', 'demo', '--goals', '2', '--real-time-factor', '2',
               '--out', str(out), '--domain-id', str(domain_id_for(__file__)), '--seed', '1']
    real_model = (default_model_dir() / 'config.json').is_file()
    if not real_model:
        command += ['--backend', 'policies:make_engine']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TEST_DIR), str(REPO_ROOT)]))
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=DEMO_TIMEOUT_S)
    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, report
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['ok'] and summary['problems'] == []
    assert summary['backend'] == ('onnx' if real_model else 'policies:make_engine')
    assert summary['world'] == model_world(default_model_dir())   # sim_node in the model's world
    assert [item['kind'] for item in summary['instructions']] [:1] == ['goto']
    assert len(summary['instructions']) == 2
    for item in summary['instructions']:
        assert set(item) >= {'text', 'kind', 'outcome', 'time_s', 'path_length_m'}
        assert item['outcome'] in ('success', 'collision', 'timeout', 'failure'), item
    assert summary['totals']['instructions'] == 2
    figures = summary['figures']
    assert figures['chunks'] > 0 and figures['chunk_rate_hz'] > 0
    assert figures['latency_ms']['p50'] is not None and figures['latency_ms']['p50'] > 0
    assert summary['exit_codes'] == {'sim_node': 0, 'vla_node': 0, 'chunk_executor': 0}
    assert summary['final_cmd_vel'] == [0.0, 0.0]               # the robot heard a zero last
    png, gif = out / 'trajectory.png', out / 'camera.gif'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert gif.read_bytes()[:6] in (b'GIF89a', b'GIF87a')
    assert str(png) in report and str(gif) in report            # it says where they are
    if real_model:
        assert math.isfinite(figures['inference_ms']['p50'])


@pytest.mark.parametrize('episode', range(6))
def test_search_targets_are_out_of_view_and_two_steps_split_in_two(episode):
    from vla_nav.core.language import parse_instruction as parse_steps
    from vla_nav.sim.goals import VISIBLE_BEARING, bearing_and_distance
    layout, _ = generate_episode('test', 3, episode, kind='goto')
    pose = layout.start_pose
    search = plan_goal('search', layout, pose)
    if search is not None:   # a room whose every object is in view has no search goal
        bearing, _ = bearing_and_distance(pose, search.target['position'])
        assert search.sim_kind == 'goto' and abs(bearing) > VISIBLE_BEARING
    two = plan_goal('two_step', layout, pose)
    assert two is not None and two.sim_kind == 'forward'
    steps = parse_steps(two.text, load_config().stop_words).steps
    assert [step.kind for step in steps] == ['turn', 'forward']
    assert steps[1].distance_m == two.parameters['distance']
    scenario = parse_instruction(two.text, layout, pose, stop_words=load_config().stop_words)
    assert scenario.kind == 'forward' and scenario.parameters['distance'] == two.parameters['distance']


def test_a_two_step_goal_where_no_side_has_room_to_drive_goes_to_an_object_after_the_turn():
    """Boxed in left and right (the robot stands at a table, say), "turn, then go forward" does not
    fit: the two-step goal turns toward an object it will see and goes to it, and both the robot's
    sequencer and the v1 simulator read it (as a goto)."""
    from vla_nav.core.language import parse_instruction as parse_steps
    from vla_nav.sim.layout import Layout, SceneObject

    def thing(colour, shape, x, y, role='distractor'):
        return SceneObject(colour=colour, shape=shape, position=(x, y), radius=0.2, height=0.5,
                           size=(0.2, 0.5), role=role)
    pose = (0.0, 0.0, 0.0)   # facing +x; boxes 0.6 m to the left and to the right
    layout = Layout(width=8.0, depth=8.0, start_pose=pose, objects=(
        thing('grey', 'box', 0.0, 0.6, 'clutter'), thing('grey', 'box', 0.0, -0.6, 'clutter'),
        thing('red', 'cone', -1.0, 2.2), thing('blue', 'ball', 3.0, 0.0, 'target')))
    assert not forward_options(layout, (0.0, 0.0, math.pi / 2))
    assert not forward_options(layout, (0.0, 0.0, -math.pi / 2))
    two = plan_goal('two_step', layout, pose)
    assert two is not None and two.kind == 'two_step' and two.sim_kind == 'goto'
    assert two.text == 'turn left, then go to the red cone' and two.target['name'] == 'red cone'
    steps = parse_steps(two.text, load_config().stop_words).steps
    assert [step.kind for step in steps] == ['turn', 'goto']
    assert (steps[1].colour, steps[1].category) == ('red', 'cone')
    scenario = parse_instruction(two.text, layout, pose, stop_words=load_config().stop_words)
    assert scenario.kind == 'goto' and scenario.target.name == 'red cone'
    assert plan_goal('two_step', layout, pose, visited=('red cone',)) is None   # nothing else seen
    from vla_nav.tools.demo import remaining_text
    assert remaining_text(two, pose, pose).endswith('m to the red cone')   # the demo's live line


def test_demo_starts_sim_node_in_the_world_the_model_learned(tmp_path):
    """A model published as v2 (eval.json "world") gets a v2 sim_node; --world overrides; the
    committed default gets its own world (v1 until a v2 model is published there)."""
    import argparse

    from vla_nav.tools.demo import add_arguments, sim_node_params
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    model = tmp_path / 'v2model'
    model.mkdir()
    (model / 'eval.json').write_text(json.dumps({'world': 'v2'}))
    params = sim_node_params(parser.parse_args(['--model', str(model), '--real-time-factor', '2']))
    assert params['world'] == 'v2' and params['publish_clock'] and params['real_time_factor'] == 2.0
    assert sim_node_params(parser.parse_args(['--model', str(model), '--world', 'v1']))['world'] == 'v1'
    assert sim_node_params(parser.parse_args([]))['world'] == model_world(default_model_dir())


def test_robot_text_reads_a_goal_status_record():
    from vla_nav.tools.demo import robot_text
    assert robot_text(None) == 'robot: (no status yet)'
    assert robot_text({'state': 'active', 'step': 1, 'steps': 2, 'done_estimate': 0.4,
                       'reason': ''}) == 'robot: active 1/2 (0.40)'
    assert robot_text({'state': 'refused', 'step': 0, 'steps': 0, 'done_estimate': 0.0,
                       'reason': 'negation'}) == 'robot: refused: negation'
