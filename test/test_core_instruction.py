"""Instruction rules: normalisation, stop words, rejections with reasons."""
import pytest

from vla_nav.core.instruction import classify_instruction

STOP_WORDS = ['stop', 'halt', 'stop now', 'stand still']


def classify(text, max_chars=40):
    return classify_instruction(text, STOP_WORDS, max_chars)


def test_goal_is_normalised():
    result = classify('  go to\tthe \n red\x07 door  ')
    assert (result.kind, result.text, result.reason) == ('goal', 'go to the red door', '')


@pytest.mark.parametrize('text', ['stop', 'STOP', 'Stop!', ' halt. ', 'stop  now!!', 'Stand Still?'])
def test_stop_words_any_case_and_trailing_punctuation(text):
    assert classify(text).kind == 'stop'


@pytest.mark.parametrize('text', ['stop at the door', 'don\'t stop', 'halting problem'])
def test_stop_word_inside_a_goal_is_a_goal(text):
    assert classify(text).kind == 'goal'


@pytest.mark.parametrize('text, reason', [
    ('', 'empty'), ('   \t\n', 'empty'), ('\x00\x01', 'empty'), ('x' * 41, 'limit of 40'),
    ('go \ud800 left', 'surrogate'), (b'\xff\xfe go', 'UTF-8'), ('?!.', 'no words'),
])
def test_rejections_say_why(text, reason):
    result = classify(text)
    assert result.kind == 'rejected'
    assert reason in result.reason


def test_bytes_goal_is_decoded():
    assert classify(b'turn left').text == 'turn left'
