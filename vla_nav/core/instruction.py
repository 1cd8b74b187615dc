"""Rules for the natural-language goal: what is a goal, what means "stop now", what is junk.

Operators type goals by hand (`ros2 topic pub /instruction ...`), so the text is normalised before
anything else sees it, and a stop word must work whatever the case or trailing punctuation.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

GOAL = 'goal'
STOP = 'stop'
REJECTED = 'rejected'
REFUSED = 'refused'   # read, but nothing can act on it (vla_nav.core.goal): the robot stops

_WHITESPACE = re.compile(r'\s+')
_TRAILING_PUNCTUATION = '.!?,;:…。！？'
_REPLACEMENT_CHARACTER = '\ufffd'
_RAW_LENGTH_FACTOR = 4   # raw text longer than this x max_chars is rejected unread


@dataclass(frozen=True)
class InstructionResult:
    kind: str       # 'goal' | 'stop' | 'rejected' | 'refused' (PolicyLoop only)
    text: str       # normalised instruction ('' when it could not be read)
    reason: str = ''  # why it was rejected (empty for goals and stops)


def normalise_instruction(text: str) -> str:
    """NFC, whitespace collapsed to single spaces, other control characters removed, stripped."""
    text = unicodedata.normalize('NFC', text)
    text = _WHITESPACE.sub(' ', text)
    text = ''.join(char for char in text if unicodedata.category(char) != 'Cc')
    return text.strip()


def _stop_key(text: str) -> str:
    return normalise_instruction(text).rstrip(_TRAILING_PUNCTUATION).strip().casefold()


def classify_instruction(text: str | bytes, stop_words: Iterable[str],
                         max_chars: int) -> InstructionResult:
    """Decide whether `text` is a new goal, a stop, or rejected (with the reason)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as error:
            return InstructionResult(REJECTED, '', f'instruction is not valid UTF-8 ({error.reason})')
    if not isinstance(text, str):
        return InstructionResult(REJECTED, '', f'instruction must be text, got {type(text).__name__}')
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return InstructionResult(REJECTED, '', 'instruction contains undecodable characters '
                                 '(lone surrogates)')
    if _REPLACEMENT_CHARACTER in text:   # rclpy decodes invalid UTF-8 on the wire to U+FFFD
        return InstructionResult(REJECTED, '', 'instruction is not valid UTF-8 (it arrived with '
                                 'U+FFFD replacement characters)')
    if len(text) > _RAW_LENGTH_FACTOR * max_chars:   # junk: refuse before the O(n) normalisation
        return InstructionResult(REJECTED, '', f'instruction has {len(text)} characters, more than '
                                 f'the limit of {max_chars}')
    normalised = normalise_instruction(text)
    if not normalised:
        return InstructionResult(REJECTED, '', 'instruction is empty or whitespace only')
    if len(normalised) > max_chars:
        return InstructionResult(REJECTED, normalised[:max_chars],
                                 f'instruction has {len(normalised)} characters, more than the '
                                 f'limit of {max_chars}')
    key = _stop_key(normalised)
    if key and key in {_stop_key(word) for word in stop_words}:
        return InstructionResult(STOP, normalised)
    if not key:  # only punctuation, e.g. "..."
        return InstructionResult(REJECTED, normalised, 'instruction has no words')
    return InstructionResult(GOAL, normalised)
