"""The instruction sequencer (vla_nav.core.language): steps, numbers, relations, refusals."""
import pytest

from vla_nav.config import load_config
from vla_nav.core.language import (
    CATEGORY_WORDS,
    COLOUR_WORDS,
    parse_instruction,
    words_to_number,
)

STOP = load_config().stop_words  # the one stop list


def _one(text):
    parse = parse_instruction(text, STOP)
    assert parse.ok, parse.refused
    assert len(parse.steps) == 1, parse.steps
    return parse.steps[0]


@pytest.mark.parametrize('phrase, value', [
    ('45', 45.0), ('1.25', 1.25), ('forty five', 45.0), ('ninety', 90.0),
    ('a hundred and twenty', 120.0), ('one hundred eighty', 180.0), ('one and a half', 1.5),
    ('half a', 0.5), ('a', 1.0), ('three quarters of a', 0.75), ('two and a half', 2.5),
    ('fifteen', 15.0), ('banana', None), ('', None)])
def test_words_to_number(phrase, value):
    assert words_to_number(phrase) == value


@pytest.mark.parametrize('text, degrees', [
    ('turn left', 90.0), ('turn right', -90.0), ('turn left 45 degrees', 45.0),
    ('rotate right by forty five degrees', -45.0), ('a quarter turn to the left', 90.0),
    ('turn around', 180.0), ('do half a turn to the right', -180.0),
    ('turn right a hundred and twenty degrees', -120.0), ('turn left 15 degrees', 15.0),
    ('Turn LEFT 37.5 degrees!', 37.5), ('turn right 45\u00b0', -45.0),
    ('spin to your right one hundred eighty degrees', -180.0)])
def test_turns_any_angle_digits_or_words(text, degrees):
    step = _one(text)
    assert step.kind == 'turn'
    assert step.angle_deg == pytest.approx(degrees)


@pytest.mark.parametrize('text, metres', [
    ('go forward 2 meters', 2.0), ('drive ahead 0.3 m', 0.3), ('go forward half a meter', 0.5),
    ('move forward 50 centimeters', 0.5), ('advance 125 cm', 1.25),
    ('go straight for one and a half metres', 1.5), ('go forward a meter', 1.0),
    ('drive forward five meters', 5.0), ('go 3.5 m forward', 3.5)])
def test_forward_any_distance_m_cm_words(text, metres):
    step = _one(text)
    assert step.kind == 'forward'
    assert step.distance_m == pytest.approx(metres)


@pytest.mark.parametrize('text, colour, category', [
    ('go to the red cone', 'red', 'cone'), ('approach the crimson pylon', 'red', 'cone'),
    ('drive to the chair', None, 'chair'), ('go to the purple one', 'purple', None),
    ('head over to the trash can', None, 'trash bin'), ('go to the green potted plant', 'green', 'plant'),
    ('find the person', None, 'person'), ('move to the white barrel', 'white', 'barrel')])
def test_goto_colour_category_and_synonyms(text, colour, category):
    step = _one(text)
    assert (step.kind, step.colour, step.category, step.relation) == ('goto', colour, category, None)


@pytest.mark.parametrize('text, relation, anchor', [
    ('go to the ball next to the box', 'next_to', (None, 'box')),
    ('go to the red cone beside the blue chair', 'next_to', ('blue', 'chair')),
    ('go to the cone on your left', 'left', (None, None)),
    ('go to the chair on your right', 'right', (None, None)),
    ('go to the nearest chair', 'nearest', (None, None)),
    ('drive to the farthest ball', 'farthest', (None, None))])
def test_relational_references(text, relation, anchor):
    step = _one(text)
    assert step.kind == 'goto' and step.relation == relation
    assert (step.anchor_colour, step.anchor_category) == anchor


def test_multi_step_sentences_split_in_order():
    steps = parse_instruction('go to the red cone, then turn left', STOP).steps
    assert [s.kind for s in steps] == ['goto', 'turn']
    assert steps[0].text == 'go to the red cone' and steps[1].angle_deg == 90.0
    steps = parse_instruction('turn around and go forward 2 meters', STOP).steps
    assert [(s.kind, s.angle_deg, s.distance_m) for s in steps] == [('turn', 180.0, 0.0),
                                                                   ('forward', 0.0, 2.0)]
    steps = parse_instruction('First turn right 45 degrees; after that go forward one and a half '
                              'meters and then go to the blue ball.', STOP).steps
    assert [s.kind for s in steps] == ['turn', 'forward', 'goto']
    assert steps[1].distance_m == 1.5 and steps[2].colour == 'blue'
    # a trailing stop is absorbed (every step ends stopped)
    assert [s.kind for s in parse_instruction('go to the red cone and stop', STOP).steps] == ['goto']


@pytest.mark.parametrize('text', [
    "don't go to the yellow cone", 'not the red one', 'go to any cone except the red one',
    'do not turn left', 'never drive forward 2 meters', 'go to the box, not the ball'])
def test_negation_is_refused_never_inverted(text):
    parse = parse_instruction(text, STOP)
    assert not parse.ok and parse.steps == ()
    assert 'negation' in parse.refused


@pytest.mark.parametrize('text, reason', [
    ('', 'empty'), ('   ', 'empty'), ('go to the piano', 'nothing to act on'),
    ('turn 90 degrees', 'left or right'), ('go forward', 'how far'),
    ('turn left 5 degrees', 'outside'), ('turn right 270 degrees', 'outside'),
    ('go forward 7 meters', 'outside'), ('go forward 10 cm', 'outside'),
    ('go back 2 meters', 'backwards'),
    ('turn left, go forward 1 m, turn right, turn left', 'at most 3'),
    ('go to the red and blue cone', 'steps apart'),
    ('go to the red cone and the blue ball', 'steps apart'),
    ('turn left right', 'both left and right'),
    ('go to the red blue cone', 'more than one'), ('turn toward the red cone', 'go to'),
    ('do a full turn', 'above 180'), ('turn left 45', 'without a unit'),
    ('go forward 2', 'without a unit'), ('drive 3 feet forward', 'without a unit')])
def test_refusals_say_why(text, reason):
    parse = parse_instruction(text, STOP)
    assert not parse.ok and parse.steps == ()
    assert reason in parse.refused


def test_stop_list_is_a_parameter():
    assert parse_instruction('Stop!', STOP).steps[0].kind == 'stop'
    assert parse_instruction("don't move", STOP).steps[0].kind == 'stop'  # a stop phrase, not negation
    assert not parse_instruction('cease', stop_phrases=STOP).ok
    parse = parse_instruction('cease', stop_phrases=['cease'])
    assert [s.kind for s in parse.steps] == ['stop']
    assert not parse_instruction('freeze', stop_phrases=['cease']).ok
    assert parse_instruction('wait', STOP).steps[0].kind == 'stop'   # the config's list is the one
    with pytest.raises(TypeError):   # no built-in default list: every caller passes the one list
        parse_instruction('stop')


def test_every_lexicon_word_is_read_back():
    for colour, words in COLOUR_WORDS.items():
        for word in words:
            assert _one(f'go to the {word} box').colour == colour
    for category, words in CATEGORY_WORDS.items():
        for word in words:
            assert _one(f'go to the red {word}').category == category
