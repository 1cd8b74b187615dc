"""The v2 world's generator (numpy only): tiers, held-out splits, resolution, rooms, planner, judge."""
import dataclasses
import math
import re

import numpy as np
import pytest

from vla_nav.config import load_config
from vla_nav.core import language
from vla_nav.sim import catalog
from vla_nav.sim.episode import COLLISION, SUCCESS, TIMEOUT, TaskJudge
from vla_nav.sim.layout import SceneObject
from vla_nav.sim.rooms import (
    FLOOR_MATERIALS,
    WALL_MATERIALS,
    CameraMount,
    GridPlanner,
    RoomLayout,
    build_room,
    inside_floor,
    line_is_free,
    visible,
    visible_by_turning,
)
from vla_nav.sim.tasks import (
    EVAL_TIERS,
    FAR_DISTANCE,
    HELD_OUT_PAIRS,
    MAX_PER_CATEGORY,
    TEMPLATES,
    TEST_ANGLES,
    TEST_DISTANCES,
    TEST_ONLY_MATERIALS,
    TEST_ONLY_WORDS,
    TEST_TIERS,
    TIERS,
    TRAIN_ANGLES,
    TRAIN_CATEGORY_WORDS,
    TRAIN_COLOUR_WORDS,
    TRAIN_DISTANCES,
    WRITTEN_STOP_PHRASES,
    Task,
    allowed_pairs,
    distance_phrase,
    forward_step,
    generate_task,
    number_words,
    resolve,
    stop_scenario,
    task_from_text,
    turn_step,
)

STOP = load_config().stop_words
SEEDS = (0, 1, 7, 123)
EPISODES = 70


@pytest.fixture(scope='module')
def train_tasks():
    """Train episodes over several seeds: the natural mixture plus every tier forced."""
    out = [generate_task('train', seed, episode) for seed in SEEDS for episode in range(EPISODES)]
    out += [generate_task('train', 5, episode, tier=tier) for tier in TIERS for episode in range(12)]
    return out


# --- the world's breadth -------------------------------------------------------------------------

def test_catalog_has_the_breadth_the_issue_asks_for():
    assert len(catalog.CATEGORIES) >= 8 and {'cone', 'box', 'ball', 'cylinder'} <= set(catalog.CATEGORIES)
    assert len(catalog.COLOURS) >= 8
    assert all(len(catalog.SIZES[c]) > 1 for c in catalog.CATEGORIES)
    assert set(catalog.CATEGORIES) == set(language.CATEGORY_WORDS)
    assert set(catalog.COLOURS) == set(language.COLOUR_WORDS)


@pytest.mark.parametrize('category', catalog.CATEGORIES)
def test_parts_match_the_renderer_pools_and_footprint_covers_them(category):
    for scale in catalog.SIZES[category]:
        size = catalog.dimensions(category, scale)
        parts = catalog.parts(category, size)
        assert tuple(p.kind for p in parts) == catalog.PART_TYPES[category]
        radius = catalog.footprint_radius(category, size)
        for part in parts:
            reach = math.hypot(*part.pos[:2]) + (math.hypot(*part.size[:2]) if part.kind == 'box'
                                                  else part.size[0])
            assert reach <= radius + 1e-6
    heights = [catalog.dimensions(category, s)[2] for s in catalog.SIZES[category]]
    assert len(set(heights)) == len(heights)   # the size classes differ


def test_renderer_pool_holds_what_the_generator_places():
    from vla_nav.sim.world2 import OBJECTS_PER_CATEGORY
    assert MAX_PER_CATEGORY <= OBJECTS_PER_CATEGORY


# --- held-out splits: structural ----------------------------------------------------------------

def test_one_colour_per_category_is_held_out_and_never_allowed_in_train():
    assert sorted(k for _, k in HELD_OUT_PAIRS) == sorted(catalog.CATEGORIES)
    for colour, category in HELD_OUT_PAIRS:
        assert colour in catalog.CATEGORY_COLOURS[category]
    assert not set(allowed_pairs('train')) & HELD_OUT_PAIRS
    assert HELD_OUT_PAIRS <= set(allowed_pairs('test'))


def test_train_and_test_only_pools_are_disjoint():
    train_words = {w for ws in TRAIN_COLOUR_WORDS.values() for w in ws}
    train_words |= {w for ws in TRAIN_CATEGORY_WORDS.values() for w in ws}
    assert TEST_ONLY_WORDS and not train_words & TEST_ONLY_WORDS
    assert {'crimson', 'violet', 'sphere', 'cube', 'pylon'} <= TEST_ONLY_WORDS
    assert not set(TRAIN_ANGLES) & set(TEST_ANGLES)
    assert not set(TRAIN_DISTANCES) & set(TEST_DISTANCES)
    assert all(15 <= a <= 180 for a in TRAIN_ANGLES + TEST_ANGLES)
    assert all(0.3 <= d <= 5.0 for d in TRAIN_DISTANCES + TEST_DISTANCES)
    for kind in TEMPLATES['train']:
        assert not set(TEMPLATES['train'][kind]) & set(TEMPLATES['test'][kind]), kind
    every = {('floor', m) for m in FLOOR_MATERIALS} | {('wall', m) for m in WALL_MATERIALS}
    assert every > TEST_ONLY_MATERIALS


def _test_template_patterns():
    patterns = []
    for kind, templates in TEMPLATES['test'].items():
        if kind == 'then':
            continue
        for template in templates:
            body = re.sub(r'\s*\[\d+\]$', '', template)
            body = re.escape(body)
            for slot in ('t', 'd', 'a', 'm'):
                body = body.replace(re.escape('{' + slot + '}'), '.+')
            patterns.append(re.compile(body))
    return patterns


def _numbers(task: Task):
    angles = [round(math.degrees(abs(s.parameters['angle']))) for s in task.steps if s.kind == 'turn']
    distances = [round(s.parameters['distance'], 2) for s in task.steps if s.kind == 'forward']
    return angles, distances


# --- held-out splits: over many seeds -----------------------------------------------------------

def test_the_far_block_is_never_drawn_so_never_recorded(train_tasks):
    assert not {task.tier for _, task in train_tasks} & set(EVAL_TIERS)
    assert not {generate_task('test', 0, episode)[1].tier for episode in range(60)} & set(EVAL_TIERS)


def test_train_never_emits_a_held_out_pair(train_tasks):
    for layout, _ in train_tasks:
        for obj in layout.named_objects:
            assert (obj.colour, obj.shape) not in HELD_OUT_PAIRS, (layout.seed, layout.episode)


def test_train_never_emits_a_test_only_word(train_tasks):
    for _, task in train_tasks:
        text = task.instruction.casefold()
        for word in TEST_ONLY_WORDS:
            assert not re.search(rf'\b{re.escape(word)}s?\b', text), (word, text)


def test_train_never_emits_a_test_number(train_tasks):
    seen_angles = set()
    for _, task in train_tasks:
        angles, distances = _numbers(task)
        assert not set(angles) & set(TEST_ANGLES), task.instruction
        assert not set(distances) & set(TEST_DISTANCES), task.instruction
        seen_angles |= set(angles)
        # the words say the same numbers (the parser reads them back)
        parsed = language.parse_instruction(task.instruction, STOP).steps
        assert not {abs(s.angle_deg) for s in parsed if s.kind == 'turn'} & set(TEST_ANGLES)
        assert not {round(s.distance_m, 2) for s in parsed if s.kind == 'forward'} & set(TEST_DISTANCES)
    assert len(seen_angles) > 8   # many angles, not only 90


def test_train_never_emits_a_test_template(train_tasks):
    patterns = _test_template_patterns()
    for _, task in train_tasks:
        assert all(t.startswith('train:') for t in task.template.split('+')), task.template
        assert ';' not in task.instruction and 'afterwards' not in task.instruction
        for step in task.steps:
            assert not any(p.fullmatch(step.instruction) for p in patterns), step.instruction


def test_train_never_emits_a_test_only_texture(train_tasks):
    for layout, _ in train_tasks:
        assert ('floor', layout.style.floor_material) not in TEST_ONLY_MATERIALS
        assert ('wall', layout.style.wall_material) not in TEST_ONLY_MATERIALS


def test_test_split_uses_test_templates_and_held_out_tiers_deliver():
    for episode in range(25):
        _, task = generate_task('test', 3, episode)
        assert all(t.startswith('test:') for t in task.template.split('+'))
        layout, task = generate_task('test', 3, episode, tier='held_out_pair')
        assert (task.target.colour, task.target.shape) in HELD_OUT_PAIRS
        _, task = generate_task('test', 3, episode, tier='held_out_words')
        words = set(re.findall(r"[a-z]+(?: can)?", task.instruction))
        assert words & TEST_ONLY_WORDS or any(w in task.instruction for w in TEST_ONLY_WORDS)
        _, task = generate_task('test', 3, episode, tier='numbers')
        angles, distances = _numbers(task)
        assert set(angles) <= set(TEST_ANGLES) and set(distances) <= set(TEST_DISTANCES)
        assert angles or distances
    with pytest.raises(ValueError):
        generate_task('train', 0, 0, tier='held_out_pair')


# --- generator behaviour -------------------------------------------------------------------------

def test_generator_is_deterministic_and_split_salted():
    a = generate_task('train', 4, 9)
    b = generate_task('train', 4, 9)
    assert a[0].fingerprint() == b[0].fingerprint() and a[1] == b[1]
    assert generate_task('test', 4, 9)[0].fingerprint() != a[0].fingerprint()
    assert generate_task('train', 4, 10)[0].fingerprint() != a[0].fingerprint()


@pytest.mark.parametrize('split, tier', [('train', t) for t in TIERS + EVAL_TIERS] +
                         [('test', t) for t in TEST_TIERS + EVAL_TIERS])
def test_every_tier_round_trips_through_the_one_parser(split, tier):
    for episode in range(6):
        layout, task = generate_task(split, 2, episode, tier=tier)
        assert task.tier == tier
        read, reason = task_from_text(task.instruction, layout, layout.start_pose, STOP)
        assert read is not None, reason
        assert [s.kind for s in read.steps] == [s.kind for s in task.steps]
        assert [s.target for s in read.steps] == [s.target for s in task.steps]
        for ours, theirs in zip(task.steps, read.steps, strict=True):
            if ours.kind == 'turn':
                assert theirs.parameters['angle'] == pytest.approx(ours.parameters['angle'])
            if ours.kind == 'forward':
                assert theirs.parameters['distance'] == pytest.approx(ours.parameters['distance'])


def test_tiers_have_their_defining_geometry():
    for episode in range(8):
        layout, task = generate_task('train', 11, episode, tier='search')
        assert not visible(layout, layout.start_pose, task.target)
        layout, task = generate_task('train', 11, episode, tier='goto')
        assert visible(layout, layout.start_pose, task.target)
        layout, task = generate_task('train', 11, episode, tier='detour')
        assert not line_is_free(layout, layout.start_pose[:2], task.target.position, 0.2,
                                ignore=(task.target,))
        layout, task = generate_task('train', 11, episode, tier='far')   # in view of the bare room
        assert visible(dataclasses.replace(layout, objects=(task.target,)), layout.start_pose, task.target)
        assert math.dist(layout.start_pose[:2], task.target.position) >= FAR_DISTANCE[0] >= 3.0
        _, task = generate_task('train', 11, episode, tier='multi_step')
        assert 2 <= len(task.steps) <= 3
    shapes = {generate_task('train', 11, e)[0].shape for e in range(40)}
    assert shapes == {'box', 'L', 'two_rooms'}
    far = max(math.dist(lay.start_pose[:2], t.target.position) for lay, t in
              (generate_task('train', 12, e, tier='search') for e in range(30)))
    assert far > 4.0   # targets well beyond v1's 3.5 m


def test_camera_mount_is_jittered_within_its_documented_range():
    from vla_nav.sim.rooms import CAMERA_RANGES
    mounts = {generate_task('train', 0, e)[0].camera for e in range(20)}
    assert len(mounts) == 20
    for mount in mounts:
        assert CAMERA_RANGES['height'][0] <= mount.height <= CAMERA_RANGES['height'][1]
        assert CAMERA_RANGES['pitch_deg'][0] <= mount.pitch_deg <= CAMERA_RANGES['pitch_deg'][1]
        assert CAMERA_RANGES['fovy_deg'][0] <= mount.fovy_deg <= CAMERA_RANGES['fovy_deg'][1]


# --- numbers in words ----------------------------------------------------------------------------

def test_every_number_reads_back_in_every_wording():
    for degrees in TRAIN_ANGLES + TEST_ANGLES:
        for text in (f'turn left {degrees} degrees', f'turn left {number_words(degrees)} degrees'):
            assert language.parse_instruction(text, STOP).steps[0].angle_deg == degrees, text
    rng = np.random.default_rng(0)
    for metres in TRAIN_DISTANCES + TEST_DISTANCES:
        for _ in range(6):
            text = f'go forward {distance_phrase(metres, rng)}'
            assert language.parse_instruction(text, STOP).steps[0].distance_m == pytest.approx(metres), text


# --- resolution of words against a room ----------------------------------------------------------

def _obj(colour, shape, x, y, role='distractor', radius=0.2):
    return SceneObject(colour, shape, (x, y), radius, 0.4, (radius, radius, 0.4), 0.0, role)


def _room(objects, width=8.0, depth=6.0, shape='box'):
    rects, walls = build_room(shape, width, depth, np.random.default_rng(0))
    return RoomLayout(width, depth, tuple(objects), (0.0, 0.0, 0.0), shape=shape, wall_boxes=walls,
                      free_rects=rects, camera=CameraMount())


def _step(text):
    return language.parse_instruction(text, STOP).steps[0]


def test_resolve_plain_relational_and_ambiguous():
    near = _obj('red', 'chair', 1.5, 0.3)
    far = _obj('blue', 'chair', 3.5, -0.5)
    box = _obj('green', 'box', 2.0, 2.0)
    ball = _obj('red', 'ball', 2.6, 2.0)
    layout = _room([near, far, box, ball])
    pose = (0.0, 0.0, 0.0)
    assert resolve(_step('go to the blue chair'), layout, pose)[0] is far
    assert resolve(_step('go to the box'), layout, pose)[0] is box
    assert resolve(_step('go to the nearest chair'), layout, pose)[0] is near
    assert resolve(_step('go to the farthest chair'), layout, pose)[0] is far
    assert resolve(_step('go to the chair on your left'), layout, pose)[0] is near
    assert resolve(_step('go to the chair on your right'), layout, pose)[0] is far
    assert resolve(_step('go to the red one next to the box'), layout, pose)[0] is ball
    target, reason = resolve(_step('go to the chair'), layout, pose)
    assert target is None and 'say which' in reason
    target, reason = resolve(_step('go to the person'), layout, pose)
    assert target is None and 'no person' in reason


def test_task_from_text_refuses_with_the_parsers_reason():
    layout = _room([_obj('red', 'cone', 2.0, 0.0)])
    task, reason = task_from_text("don't go to the red cone", layout, (0.0, 0.0, 0.0), STOP)
    assert task is None and 'negation' in reason
    task, reason = task_from_text('go to the red cone, then turn around', layout, (0.0, 0.0, 0.0), STOP)
    assert [s.kind for s in task.steps] == ['goto', 'turn'] and task.kind == 'multi_step'
    assert task.steps[1].parameters['either_way']
    task, _ = task_from_text('halt', layout, (0, 0, 0), stop_phrases=['halt'])
    assert task.kind == 'stop'


# --- rooms and planning --------------------------------------------------------------------------

def test_room_shapes_and_the_doorway_is_passable():
    rng = np.random.default_rng(3)
    for shape in ('box', 'L', 'two_rooms'):
        rects, walls = build_room(shape, 8.0, 6.0, rng)
        layout = RoomLayout(8.0, 6.0, (), (0.0, 0.0, 0.0), shape=shape, wall_boxes=walls,
                            free_rects=rects)
        assert len(walls) >= 4
        planner = GridPlanner(layout, 0.32)
        free = np.argwhere(planner.free)
        a, b = planner.point(tuple(free[0])), planner.point(tuple(free[-1]))
        assert inside_floor(layout, *a) and inside_floor(layout, *b)
        path = planner.plan(a, b)
        assert path is not None, shape   # every room is one connected floor
        for p, q in zip(path, path[1:], strict=False):
            assert line_is_free(layout, p, q, 0.2)
    rects, walls = build_room('two_rooms', 8.0, 6.0, np.random.default_rng(1))
    layout = RoomLayout(8.0, 6.0, (), (0.0, 0.0, 0.0), shape='two_rooms', wall_boxes=walls,
                        free_rects=rects)
    wall_x = walls[-1][0]
    assert not line_is_free(layout, (wall_x - 2, -2.9 + 0.35), (wall_x + 2, -2.9 + 0.35), 0.2) or \
        not line_is_free(layout, (wall_x - 2, 2.9 - 0.35), (wall_x + 2, 2.9 - 0.35), 0.2)


def test_planner_detours_around_an_obstacle_and_reports_unreachable():
    wall_like = _obj('grey', 'crate', 2.0, 0.0, 'clutter', radius=0.8)
    layout = _room([wall_like])
    planner = GridPlanner(layout, 0.32)
    path = planner.plan((0.0, 0.0), (3.3, 0.0))
    assert path is not None and len(path) > 2
    assert max(abs(p[1]) for p in path) > 0.8   # went round
    boxed = _room([_obj('grey', 'crate', 3.0, 0.0, 'clutter', radius=2.9)], width=8.0, depth=6.0)
    assert GridPlanner(boxed, 0.32).plan((-3.5, 0.0), (3.0, 0.0)) is None


def test_planner_keeps_left_of_an_obstacle_across_the_way_unless_the_left_is_shut():
    """keep_left: of two nearly equal ways round, the one left of the travel direction, from
    either end; a way shut on the left is still passed on the right."""
    layout = _room([_obj('grey', 'crate', 1.0, 0.0, 'clutter', radius=0.5)])
    planner = GridPlanner(layout, 0.32)
    east = planner.plan((-1.5, 0.0), (3.0, 0.0), keep_left=1.0)     # left of +x is +y
    west = planner.plan((3.0, 0.0), (-1.5, 0.0), keep_left=1.0)     # left of -x is -y
    assert max(p[1] for p in east) > 0.5 and min(p[1] for p in east) > -0.05
    assert min(p[1] for p in west) < -0.5 and max(p[1] for p in west) < 0.05
    shut = _room([_obj('grey', 'crate', 1.0, 0.0, 'clutter', radius=0.5),
                  _obj('grey', 'crate', 1.0, 1.2, 'clutter', radius=0.6),
                  _obj('grey', 'crate', 1.0, 2.4, 'clutter', radius=0.6)])
    right = GridPlanner(shut, 0.32).plan((-1.5, 0.0), (3.0, 0.0), keep_left=1.0)
    assert right is not None and min(p[1] for p in right) < -0.5


def test_the_expert_names_its_way_round_left_unless_the_left_is_shut():
    """PlanningExpert.way_round (the suite's detour_side): the side its plan swings out to,
    relative to the travel direction; None when the straight way is free or there is none."""
    from vla_nav.config import load_config
    from vla_nav.sim.expert import PlanningExpert
    from vla_nav.sim.robot import RobotLimits

    expert = PlanningExpert(None, RobotLimits.from_executor(load_config().executor))
    east, west = _obj('red', 'cone', 3.0, 0.0, 'target'), _obj('red', 'cone', -1.5, 0.0, 'target')
    crate = _obj('grey', 'crate', 1.0, 0.0, 'clutter', radius=0.5)
    assert expert.way_round(_room([east, crate]), east, (-1.5, 0.0, 0.0), 0.5) == 'left'
    assert expert.way_round(_room([west, crate]), west, (3.0, 0.0, math.pi), 0.5) == 'left'
    wall_of_crates = [_obj('grey', 'crate', 1.0, y, 'clutter', radius=0.6) for y in (1.2, 2.4)]
    assert expert.way_round(_room([east, crate, *wall_of_crates]), east, (-1.5, 0.0, 0.0), 0.5) == 'right'
    assert expert.way_round(_room([east]), east, (-1.5, 0.0, 0.0), 0.5) is None
    boxed = _obj('grey', 'crate', 3.0, 0.0, 'clutter', radius=2.9)
    assert expert.way_round(_room([east, boxed]), east, (-3.5, 0.0, 0.0), 0.5) is None


def test_visibility_field_of_view_walls_and_tall_objects():
    target = _obj('red', 'cone', 3.0, 0.0)
    layout = _room([target])
    assert visible(layout, (0.0, 0.0, 0.0), target)
    assert not visible(layout, (0.0, 0.0, math.pi), target)       # behind the robot
    assert not visible(layout, (0.0, 0.0, math.pi / 2), target)   # beside it
    tall = SceneObject('grey', 'crate', (1.5, 0.0), 0.4, 1.0, (0.3, 0.3, 1.0), 0.0, 'clutter')
    assert not visible(_room([target, tall]), (0.0, 0.0, 0.0), target)
    low = SceneObject('grey', 'crate', (1.5, 0.0), 0.4, 0.2, (0.3, 0.3, 0.2), 0.0, 'clutter')
    assert visible(_room([target, low]), (0.0, 0.0, 0.0), target)


def test_a_turn_in_place_finds_a_target_behind_but_not_one_behind_a_tall_object():
    target = _obj('red', 'cone', 3.0, 0.0)
    for yaw in (0.0, math.pi / 2, math.pi):   # ahead, beside, behind: a turn brings it into view
        assert visible_by_turning(_room([target]), (0.0, 0.0, yaw), target)
    tall = SceneObject('grey', 'crate', (1.5, 0.0), 0.4, 1.0, (0.3, 0.3, 1.0), 0.0, 'clutter')
    assert not visible_by_turning(_room([target, tall]), (0.0, 0.0, math.pi), target)
    # search scenes: both kinds occur, and the second is hidden at every heading, not only ahead
    kinds = []
    for episode in range(40):
        layout, task = generate_task('train', 11, episode, tier='search')
        x, y, _ = layout.start_pose
        seen = visible_by_turning(layout, layout.start_pose, task.target)
        kinds.append(seen)
        assert seen == any(visible(layout, (x, y, k * math.pi / 90), task.target) for k in range(180))
    assert any(kinds) and not all(kinds)


# --- the step judge ------------------------------------------------------------------------------

def test_task_judge_advances_steps_and_ends_on_the_last():
    task = Task('turn left, then go forward 1 m',
                (turn_step('turn left', 90.0), forward_step('go forward 1 m', 1.0)))
    judge = TaskJudge(task)
    still = (0.0, 0.0)
    assert judge.update(1.0, (0, 0, 0), still, (0, 0, 0.0, 0.5), False) is None and judge.step == 0
    assert judge.update(2.0, (0, 0, 1.57), still, (0, 0, 0.0, math.pi / 2), False) is None
    assert judge.step == 1 and judge.step_times == [2.0]
    # the caller restarts GoalProgress: the forward step sees its own distance
    assert judge.update(3.0, (0, 0.5, 1.57), still, (0, 0, 0.5, 0.0), False) is None
    assert judge.update(4.0, (0, 1.0, 1.57), still, (0, 0, 1.0, 0.0), False) == SUCCESS
    assert judge.step_times == [2.0, 4.0]


def test_task_judge_step_time_limits_collisions_and_either_way_turns():
    task = Task('turn around', (turn_step('turn around', 180.0),))
    judge = TaskJudge(task)
    assert judge.update(5.0, (0, 0, 0), (0, 0), (0, 0, 0, -math.pi), False) == SUCCESS
    judge = TaskJudge(Task('stop', (stop_scenario('stop'),)))
    assert judge.update(0.5, (0, 0, 0), (0, 0), (0, 0, 0, 0), True) == COLLISION
    task = Task('x', (forward_step('go forward 1 m', 1.0), turn_step('turn left', 90.0)))
    judge = TaskJudge(task)
    limit = task.steps[0].time_limit
    assert judge.update(limit + 0.1, (0, 0, 0), (0, 0), (0, 0, 0.0, 0), False) == TIMEOUT
    small = turn_step('turn left 15 degrees', 15.0)
    assert small.parameters['tolerance'] < math.radians(15.0)   # not turning at all is no success


def test_the_stop_sentences_the_generator_writes_are_in_the_one_stop_list():
    """The generator's round trip reads its stop templates with WRITTEN_STOP_PHRASES; each must
    also be a stop for vla_node and the simulator's judge (config `vla_node.stop_words`)."""
    assert set(WRITTEN_STOP_PHRASES) <= set(STOP)
    for phrase in WRITTEN_STOP_PHRASES:
        assert language.parse_instruction(phrase, STOP).steps[0].kind == 'stop'
