"""The instruction sequencer: one sentence -> a list of steps a robot can act on, or a refusal.

Design choice (issue 11, "multi-step"): multi-step goals are NOT learned end to end. This module
splits a sentence into at most MAX_STEPS steps and reads each one into a `Step`; the policy is
then given one step at a time (its text is `Step.text`, a clause of the operator's sentence) and
the sequencer advances on that step's done signal (the simulator's judge per step; on the robot,
the goal-status rule). The simulator's judge, its task generator (round trip) and, later,
vla_node all use this one parser. numpy/stdlib only; it imports nothing else of ours.

    parse_instruction(text, stop_phrases, max_steps=MAX_STEPS) -> Parse
        Parse.steps: tuple[Step, ...]     empty when refused
        Parse.refused: str                '' when understood, else the reason (never a guess)
    Step(kind='goto'|'turn'|'forward'|'stop', text, colour, category, relation, anchor_colour,
         anchor_category, angle_deg (signed, left positive), distance_m)

What it understands (ranges are refusals outside them):
  goto     a colour and/or a category ("the red cone", "the chair", "the purple one"), with an
           optional relation: 'nearest' / 'farthest' ("the nearest chair"), 'left' / 'right'
           ("the cone on your left"), 'next_to' an anchor ("the ball next to the box");
  turn     'left'/'right' + 15..180 degrees in digits or words ("45 degrees", "ninety degrees",
           "a quarter turn", "half a turn", "turn around"); no angle = 90 degrees;
  forward  0.3..5 m in m, cm or words ("2 meters", "50 centimeters", "half a meter");
  stop     any phrase of the stop list (a parameter: the one shared list from the config);
  multi    up to MAX_STEPS clauses joined by "then", "and then", "and", "after that", ";", ".".
           A trailing stop ("... and stop") is absorbed: every step ends stopped.
Refused, with the reason: empty text, negation ("don't go to the yellow cone", "not the red
one": refused, never inverted), backwards driving, a turn without a side, a forward without a
distance, numbers out of range, more than MAX_STEPS steps, a clause with no action or object.
Whether a goto's words pick exactly one object is the world's business (`resolve` in the sim).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_STEPS = 3
ANGLE_RANGE_DEG = (15.0, 180.0)
DISTANCE_RANGE_M = (0.3, 5.0)
DEFAULT_TURN_DEG = 90.0

# Canonical colour -> every word that names it (train words and test-only synonyms alike: the
# parser understands both; which words a split may generate is the generator's business).
COLOUR_WORDS = {
    'red': ('red', 'crimson', 'scarlet'),
    'orange': ('orange', 'tangerine'),
    'yellow': ('yellow', 'golden', 'gold'),
    'green': ('green', 'lime', 'emerald'),
    'cyan': ('cyan', 'teal', 'turquoise'),
    'blue': ('blue', 'navy', 'azure'),
    'purple': ('purple', 'violet', 'lilac'),
    'pink': ('pink', 'magenta', 'rose'),
    'white': ('white', 'ivory'),
    'black': ('black', 'ebony'),
}
CATEGORY_WORDS = {
    'cone': ('cone', 'traffic cone', 'pylon'),
    'box': ('box', 'cube', 'carton'),
    'ball': ('ball', 'sphere', 'orb'),
    'cylinder': ('cylinder', 'column', 'tube'),
    'chair': ('chair', 'seat'),
    'table': ('table', 'desk'),
    'trash bin': ('trash bin', 'bin', 'trash can', 'wastebasket', 'garbage can'),
    'plant': ('potted plant', 'plant', 'houseplant', 'flowerpot'),
    'barrel': ('barrel', 'drum', 'keg'),
    'person': ('person', 'figure', 'mannequin', 'human', 'dummy'),
}

_UNITS = {'zero': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7,
          'eight': 8, 'nine': 9, 'ten': 10, 'eleven': 11, 'twelve': 12, 'thirteen': 13,
          'fourteen': 14, 'fifteen': 15, 'sixteen': 16, 'seventeen': 17, 'eighteen': 18,
          'nineteen': 19}
_TENS = {'twenty': 20, 'thirty': 30, 'forty': 40, 'fifty': 50, 'sixty': 60, 'seventy': 70,
         'eighty': 80, 'ninety': 90}
_NEGATION = re.compile(r"\b(don't|dont|do not|not|never|avoid|except|but not|other than|no|"
                       r"instead of|anything but|nothing)\b")
_BACKWARD = re.compile(r'\b(back|backward|backwards|reverse)\b')
_SPLIT = re.compile(r'\s*(?:;|\.\s|,?\s*and then\s|,?\s*then\s|,?\s*after that,?\s|'
                    r',?\s*and afterwards,?\s|,?\s*afterwards,?\s|,\s*and\s|\sand\s|,\s*)\s*')
_GOTO_VERBS = re.compile(r'\b(go|drive|move|head|approach|navigate|find|get|reach|come|face|roll|make|'
                         r'travel|walk|proceed|visit|stop)\b')
_TURN_WORDS = re.compile(r'\b(turn|rotate|spin|face|pivot|swivel|around)\b')
_FORWARD_WORDS = re.compile(r'\b(forward|forwards|ahead|straight|advance|onward)\b')
_NUMBER_TOKEN = r'(?:\d+(?:\.\d+)?|[a-z]+(?:[ -][a-z]+){0,5})'
# "a hundred and twenty", "one and a half": that "and" joins a number, it does not split steps.
_NUMBER_AND = re.compile(r'\b(hundred|one|two|three|four|five|six|seven|eight|nine|ten|\d+) and '
                         r'(a half|a quarter|' + '|'.join(list(_TENS) + list(_UNITS)) + r')\b')


@dataclass(frozen=True)
class Step:
    kind: str                          # goto | turn | forward | stop
    text: str                          # the clause of the sentence this step came from
    colour: str | None = None          # canonical colour (goto)
    category: str | None = None        # canonical category (goto)
    relation: str | None = None        # None | nearest | farthest | left | right | next_to
    anchor_colour: str | None = None   # next_to: the anchor object's words
    anchor_category: str | None = None
    angle_deg: float = 0.0             # turn: signed, left (counter-clockwise) positive
    distance_m: float = 0.0            # forward

    def to_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if value not in (None, 0.0)}


@dataclass(frozen=True)
class Parse:
    steps: tuple[Step, ...] = ()
    refused: str = ''

    @property
    def ok(self) -> bool:
        return not self.refused


def clean_text(text: str) -> str:
    """Casefold, typographic apostrophes, punctuation to spaces (decimal points, commas, semicolons
    and sentence dots are kept for the step splitter), collapsed whitespace."""
    text = text.casefold().replace('\u2019', "'").replace('-', ' ').replace('\u00b0', ' degrees ')
    text = re.sub(r"[^a-z0-9.,;' ]+", ' ', text)
    text = re.sub(r'(?<!\d)\.(?!\d)', '. ', text)
    return ' '.join(text.split()).strip(' .,;')


def words_to_number(phrase: str) -> float | None:
    """'45' | '1.5' | 'forty five' | 'a hundred and twenty' | 'one and a half' | 'half a' |
    'a' | 'a quarter' -> float; None when the phrase is not a number."""
    phrase = phrase.replace('andx', 'and').strip()
    if re.fullmatch(r'\d+(?:\.\d+)?', phrase):
        return float(phrase)
    fractions = {'half a': 0.5, 'half an': 0.5, 'a half': 0.5, 'half': 0.5, 'a quarter': 0.25,
                 'quarter': 0.25, 'three quarters': 0.75, 'three quarters of a': 0.75}
    if phrase in fractions:
        return fractions[phrase]
    extra = 0.0
    for suffix, value in ((' and a half', 0.5), (' and a quarter', 0.25)):
        if phrase.endswith(suffix):
            phrase, extra = phrase[:-len(suffix)], value
    tokens = [t for t in phrase.split() if t != 'and']
    if not tokens:
        return None
    total, current = 0, 0
    for token in tokens:
        if token in ('a', 'an', 'one') and current == 0:
            current = 1
        elif token in _UNITS:
            current += _UNITS[token]
        elif token in _TENS:
            current += _TENS[token]
        elif token == 'hundred':
            current = max(current, 1) * 100
        else:
            return None
    total += current
    return float(total) + extra


def _find_words(clause: str, table: dict[str, tuple[str, ...]]) -> list[tuple[int, str]]:
    """(position, canonical) of every word of `table` in the clause, longest phrases first."""
    found, taken = [], []
    phrases = sorted(((p, canon) for canon, ps in table.items() for p in ps),
                     key=lambda item: -len(item[0]))
    for phrase, canon in phrases:
        for match in re.finditer(rf'\b{re.escape(phrase)}s?\b', clause):
            span = range(match.start(), match.end())
            if any(set(span) & set(t) for t in taken):
                continue
            taken.append(span)
            found.append((match.start(), canon))
    return sorted(found)


def _parse_angle(clause: str) -> tuple[float | None, str]:
    """(degrees, '') | (None, '') when no angle is said | (None, reason) when it is unreadable."""
    if re.search(r'\b(turn around|about face|half a turn|a half turn|half turn|u turn)\b', clause):
        return 180.0, ''
    if re.search(r'\b(a quarter turn|quarter turn|quarter of a turn)\b', clause):
        return 90.0, ''
    if re.search(r'\b(an eighth of a turn|eighth turn|an eighth turn)\b', clause):
        return 45.0, ''
    if re.search(r'\b(three quarters? of a turn|full turn|whole turn|full circle)\b', clause):
        return None, 'turns above 180 degrees are not supported (turn the other way instead)'
    match = re.search(rf'\b({_NUMBER_TOKEN})\s*(?:degrees?|deg)\b', clause)
    if match:
        words = match.group(1).split()
        for start in range(len(words)):  # the longest tail of the words that reads as a number
            value = words_to_number(' '.join(words[start:]))
            if value is not None:
                return value, ''
        return None, f'cannot read the angle in {clause!r}'
    return None, ''


def _parse_distance(clause: str) -> tuple[float | None, str]:
    match = re.search(rf'\b({_NUMBER_TOKEN})\s*(m|meters?|metres?|cm|centimeters?|centimetres?)\b',
                      clause)
    if not match:
        return None, ''
    words = match.group(1).split()
    scale = 0.01 if match.group(2).startswith(('c',)) else 1.0
    for start in range(len(words)):
        value = words_to_number(' '.join(words[start:]))
        if value is not None:
            return value * scale, ''
    return None, f'cannot read the distance in {clause!r}'


def _side(clause: str) -> str | None:
    left, right = re.search(r'\bleft\b', clause), re.search(r'\bright\b', clause)
    if left and right:
        return 'both'
    return 'left' if left else 'right' if right else None


def _parse_goto(clause: str, objects: list[tuple[int, str]], colours: list[tuple[int, str]]
                ) -> tuple[Step | None, str]:
    relation = anchor_colour = anchor_category = None
    if re.search(r'\b(turn|rotate|spin)\b', clause):
        return None, f'turning toward an object is not supported ({clause!r}): say "go to"'
    near = re.search(r'\b(next to|beside|near|by|close to)\b', clause)
    if near and not any(p < near.start() for p, _ in objects + colours):
        near = None  # "go near the red cone": a plain goto
    if near:
        split = near.start()
        head_obj = [c for p, c in objects if p < split]
        head_col = [c for p, c in colours if p < split]
        tail_obj = [c for p, c in objects if p > split]
        tail_col = [c for p, c in colours if p > split]
        if not (head_obj or head_col) or not (tail_obj or tail_col):
            return None, f'"next to" needs an object on both sides in {clause!r}'
        if len(head_obj) > 1 or len(head_col) > 1 or len(tail_obj) > 1 or len(tail_col) > 1:
            return None, f'too many objects named in {clause!r}'
        relation = 'next_to'
        anchor_colour = tail_col[0] if tail_col else None
        anchor_category = tail_obj[0] if tail_obj else None
        colour = head_col[0] if head_col else None
        category = head_obj[0] if head_obj else None
    else:
        if len({c for _, c in objects}) > 1 or len({c for _, c in colours}) > 1:
            return None, f'more than one object named in {clause!r} (say which one)'
        colour = colours[0][1] if colours else None
        category = objects[0][1] if objects else None
        if re.search(r'\b(nearest|closest)\b', clause):
            relation = 'nearest'
        elif re.search(r'\b(farthest|furthest)\b', clause):
            relation = 'farthest'
        else:
            side = _side(clause)
            if side == 'both':
                return None, f'both left and right in {clause!r}'
            if side:
                relation = side
    return Step('goto', clause, colour, category, relation, anchor_colour, anchor_category), ''


_STOP_THERE = re.compile(r'(stop|halt|wait)( (next to|near|by|beside|in front of|at) (it|them|that)'
                        r'| there| here)')


def _parse_turn(clause: str, angle: float | None) -> tuple[Step | None, str]:
    side = _side(clause)
    if side == 'both':
        return None, f'both left and right in {clause!r}'
    if side is None:
        if angle != 180.0:
            return None, f'turn which way? say left or right ({clause!r})'
        side = 'left'
    angle = DEFAULT_TURN_DEG if angle is None else angle
    low, high = ANGLE_RANGE_DEG
    if not low <= angle <= high:
        return None, f'a turn of {angle:g} degrees is outside {low:g}-{high:g} degrees'
    return Step('turn', clause, angle_deg=angle if side == 'left' else -angle), ''


def _parse_forward(clause: str, distance: float | None) -> tuple[Step | None, str]:
    if distance is None:
        return None, f'how far? say a distance such as "2 meters" ({clause!r})'
    low, high = DISTANCE_RANGE_M
    if not low - 1e-9 <= distance <= high + 1e-9:
        return None, f'a drive of {distance:g} m is outside {low:g}-{high:g} m'
    return Step('forward', clause, distance_m=round(distance, 4)), ''


def _parse_clause(clause: str, stop_phrases: set[str]) -> tuple[Step | None, str]:
    if clause in stop_phrases or _STOP_THERE.fullmatch(clause):   # "... and stop next to it"
        return Step('stop', clause), ''
    if _NEGATION.search(clause):
        return None, f'negation is not supported ({clause!r}): say what to do, not what not to do'
    if _BACKWARD.search(clause) and not re.search(r'\bturn around\b', clause):
        return None, f'driving backwards is not supported ({clause!r})'
    objects = _find_words(clause, CATEGORY_WORDS)
    colours = _find_words(clause, COLOUR_WORDS)
    if objects or colours:
        return _parse_goto(clause, objects, colours)
    angle, reason = _parse_angle(clause)
    if reason:
        return None, reason
    distance, reason = _parse_distance(clause)
    if reason:
        return None, reason
    if angle is None and distance is None and re.search(r'\d', clause):
        return None, f'a number without a unit in {clause!r}: say degrees, meters or centimeters'
    if angle is not None or _TURN_WORDS.search(clause) or (_side(clause) and distance is None):
        return _parse_turn(clause, angle)
    if distance is not None or _FORWARD_WORDS.search(clause):
        return _parse_forward(clause, distance)
    return None, f'nothing to act on in {clause!r} (no object, turn, distance or stop)'


def split_steps(clean: str) -> list[str]:
    """Clauses of a cleaned sentence ("first" and "please" dropped)."""
    clauses = [c.strip(' .,;') for c in _SPLIT.split(clean)]
    out = []
    for clause in clauses:
        clause = re.sub(r'^(first|and|please|now|next|finally|after that)\b\s*', '', clause)
        clause = re.sub(r'\s*\bplease$', '', clause).strip(' .,;')
        if clause:
            out.append(clause)
    return out


def parse_instruction(text: str, stop_phrases: Iterable[str], max_steps: int = MAX_STEPS) -> Parse:
    """Read a sentence into steps (see the module docstring), or refuse it with the reason.
    stop_phrases: the one stop list (config `vla_node.stop_words`, `load_config().stop_words`),
    passed in by every caller: a sentence or a clause equal to one of them is a stop."""
    if not isinstance(text, str):
        return Parse(refused='instruction must be text')
    stops = {clean_text(p) for p in stop_phrases}
    clean = clean_text(text)
    if not clean:
        return Parse(refused='instruction is empty')
    if clean in stops:
        return Parse((Step('stop', clean),))
    clauses = [c.replace(' andx ', ' and ') for c in split_steps(_NUMBER_AND.sub(r'\1 andx \2', clean))]
    steps: list[Step] = []
    for clause in clauses:
        step, reason = _parse_clause(clause, stops)
        if step is None:
            return Parse(refused=reason)
        steps.append(step)
    if len(steps) > 1 and any(s.kind == 'goto' and not _GOTO_VERBS.search(s.text) for s in steps):
        return Parse(refused=f'cannot tell the steps apart in {clean!r} (name one object per step, '
                     'each with its verb: "go to the red cone, then ...")')
    if len(steps) > 1 and steps[-1].kind == 'stop':
        steps.pop()  # "... and stop": every step already ends stopped
    if any(step.kind == 'stop' for step in steps) and len(steps) > 1:
        return Parse(refused='a stop in the middle of a multi-step goal')
    if len(steps) > max_steps:
        return Parse(refused=f'{len(steps)} steps; at most {max_steps} are supported')
    return Parse(tuple(steps))
