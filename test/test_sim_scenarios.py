"""Scenario generation and language, without MuJoCo: determinism, split disjointness, parsing."""
import math

import pytest

from vla_nav.config import load_config
from vla_nav.sim.layout import COLOURS, ROBOT_RADIUS, SHAPES, free_distance, wall_clearance
from vla_nav.sim.scenarios import (
    FORWARD_DISTANCES,
    KINDS,
    TARGET_BEARING,
    TEMPLATES,
    all_instructions,
    generate_episode,
    instruction_for,
    paraphrases,
    parse_instruction,
    split_of_room,
)

EPISODES = 300
STOP_WORDS = load_config().stop_words


def parse(text, layout, start_pose=None):
    """The judge's parser with the one stop-phrase list (config/vla_nav.yaml)."""
    return parse_instruction(text, layout, start_pose, stop_words=STOP_WORDS)


def test_same_split_seed_episode_gives_the_same_episode():
    for episode in (0, 7, 123):
        first, second = generate_episode('train', 3, episode), generate_episode('train', 3, episode)
        assert first[0] == second[0]
        assert first[1].instruction == second[1].instruction
        assert first[0].fingerprint() == second[0].fingerprint()
    other_seed = generate_episode('train', 4, 1)[0]
    assert generate_episode('train', 3, 1)[0].fingerprint() != other_seed.fingerprint()


def test_phrasing_templates_of_the_two_splits_never_produce_the_same_sentence():
    train, test = all_instructions('train'), all_instructions('test')
    assert train and test
    assert not train & test
    # and the generator only ever uses its own split's sentences
    for episode in range(100):
        assert generate_episode('train', 0, episode)[1].instruction in train
        assert generate_episode('test', 0, episode)[1].instruction in test


def test_paraphrases_are_the_same_task_in_other_train_wordings_and_never_test_sentences():
    room = generate_episode('train', 0, 0)[0]
    group = paraphrases('go forward 2 meters')
    assert 'go forward 2 meters' in group and 'drive ahead 2 meters' in group
    assert len(group) == len(TEMPLATES['train']['forward'])
    assert not set(group) & all_instructions('test')
    assert {parse(s, room).parameters['distance'] for s in group} == {2.0}
    assert len(paraphrases('turn left')) == len(TEMPLATES['train']['turn'])
    assert all(parse(s, room).parameters['direction'] == 'left'
               for s in paraphrases('turn left'))
    assert set(paraphrases('stop')) == set(TEMPLATES['train']['stop'])
    assert paraphrases('advance 2 meters') == ()                  # a test sentence: not offered
    assert paraphrases('go to the kitchen') == ()
    assert 'advance 2 meters' in paraphrases('go straight for 2 meters', split='test')


def test_test_layouts_are_never_generated_for_training_whatever_the_seed():
    fingerprints = {'train': set(), 'test': set()}
    for seed in (0, 1):
        for split in fingerprints:
            for episode in range(EPISODES // 2):
                layout, _ = generate_episode(split, seed, episode)
                assert split_of_room(layout.width, layout.depth) == split  # the structural rule
                fingerprints[split].add(layout.fingerprint())
    assert len(fingerprints['train']) == EPISODES and len(fingerprints['test']) == EPISODES
    assert not fingerprints['train'] & fingerprints['test']
    # same seed and episode in both splits: different rooms
    assert generate_episode('train', 0, 5)[0].fingerprint() != generate_episode('test', 0, 5)[0].fingerprint()


def test_every_kind_appears_and_goto_targets_start_in_view_with_a_free_path():
    kinds = set()
    for episode in range(150):
        layout, scenario = generate_episode('test', 2, episode)
        kinds.add(scenario.kind)
        x, y, yaw = layout.start_pose
        assert wall_clearance(layout, x, y) >= ROBOT_RADIUS + 0.3
        for obj in layout.objects:
            assert math.hypot(obj.position[0] - x, obj.position[1] - y) > obj.radius + ROBOT_RADIUS
        if scenario.kind == 'goto':
            target = scenario.target
            assert target is layout.target and target.role == 'target'
            named = [(obj.colour, obj.shape) for obj in layout.named_objects]
            assert named.count((target.colour, target.shape)) == 1   # unambiguous
            bearing = math.atan2(target.position[1] - y, target.position[0] - x) - yaw
            assert abs(math.atan2(math.sin(bearing), math.cos(bearing))) <= TARGET_BEARING + 1e-9
        if scenario.kind == 'forward':
            room = free_distance(layout, x, y, yaw, ROBOT_RADIUS)
            assert room >= scenario.parameters['distance'] + 0.25
    assert kinds == set(KINDS)


@pytest.mark.parametrize('split', ['train', 'test'])
def test_every_template_round_trips_through_the_parser(split):
    layout, _ = generate_episode(split, 0, 0, kind='goto')
    for kind, templates in TEMPLATES[split].items():
        for index in range(len(templates)):
            if kind == 'goto':
                for target in layout.named_objects:
                    text = instruction_for(split, kind, index, target=target.name)
                    scenario = parse(text, layout)
                    assert scenario is not None and scenario.kind == 'goto', text
                    assert scenario.target is target, text
            elif kind == 'turn':
                for direction in ('left', 'right'):
                    text = instruction_for(split, kind, index, direction=direction)
                    scenario = parse(text, layout)
                    assert scenario is not None and scenario.kind == 'turn', text
                    assert scenario.parameters['direction'] == direction
                    assert scenario.parameters['angle'] == pytest.approx(
                        math.pi / 2 if direction == 'left' else -math.pi / 2)
            elif kind == 'forward':
                for distance in FORWARD_DISTANCES:
                    text = instruction_for(split, kind, index, distance=distance)
                    scenario = parse(text, layout)
                    assert scenario is not None and scenario.kind == 'forward', text
                    assert scenario.parameters['distance'] == distance
            else:
                scenario = parse(instruction_for(split, kind, index), layout)
                assert scenario is not None and scenario.kind == 'stop'


def test_generated_scenarios_equal_their_parsed_instruction():
    for episode in range(40):
        layout, scenario = generate_episode('train', 1, episode)
        parsed = parse(scenario.instruction, layout, layout.start_pose)
        assert parsed is not None
        assert (parsed.kind, parsed.target, parsed.parameters) == \
            (scenario.kind, scenario.target, scenario.parameters)


def test_parser_reads_free_text_and_refuses_what_the_room_cannot_satisfy():
    layout, _ = generate_episode('test', 0, 3, kind='goto')
    target = layout.target
    assert parse(f'Please, can you go to the {target.name.upper()}!', layout).target is target
    assert parse('drive two meters forward', layout).parameters['distance'] == 2.0
    assert parse('go ahead 1.5 m', layout).parameters['distance'] == 1.5
    assert parse('turn around', layout).parameters['angle'] == pytest.approx(math.pi)
    assert parse('turn right 45 degrees', layout).parameters['angle'] == \
        pytest.approx(-math.pi / 4)
    assert parse('Stop.', layout).kind == 'stop'
    absent = next((c, s) for c in COLOURS for s in SHAPES
                  if all((o.colour, o.shape) != (c, s) for o in layout.named_objects))
    assert parse(f'go to the {absent[0]} {absent[1]}', layout) is None
    assert parse('make me a sandwich', layout) is None
    assert parse('', layout) is None


def test_seed_must_be_non_negative_and_split_known():
    with pytest.raises(ValueError):
        generate_episode('train', -1, 0)
    with pytest.raises(ValueError):
        generate_episode('validation', 0, 0)
