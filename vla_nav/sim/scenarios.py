"""Episodes with language: seeded rooms, tasks, instructions, and the parser that reads them back.

Tasks (`Scenario.kind`):
  goto    "go to the red cone"         stop within `success_radius` of the target's centre
  turn    "turn left"                  turn 90 degrees in place (±15 degrees), then stop
  forward "go forward 2 meters"        drive straight N m (±0.25 m), then stop
  stop    "stop"                       stay still for `time_limit` seconds

Train/test disjointness, whatever the seed:
  * phrasings: TEMPLATES['train'] and TEMPLATES['test'] never produce the same sentence (the test
    checks every expansion); the vocabulary (colours, shapes, distances) is shared, the wording is
    not;
  * layouts: every random number comes from an RNG stream keyed by
    SeedSequence([split salt, seed, episode, attempt]), and, structurally, room sizes are whole
    decimetres with (width_dm + depth_dm) even for train and odd for test. The room size is part of
    `Layout.fingerprint()`, so no train episode can ever be a test layout.

Design rules that keep the tasks learnable from the forward camera (+ optional GoalProgress state):
the goto target starts inside the camera's field of view (bearing within ±28°, 1.4-3.5 m) and is
never hidden behind a tall object; the straight path to it is free except, sometimes, for one low
box the camera sees over (the expert drives around it); distractors share the target's colour or
shape; clutter stands near the walls.
"""
from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from vla_nav.sim.layout import (
    CLUTTER_COLOURS,
    COLOURS,
    CONE_SIZES,
    ROBOT_RADIUS,
    SHAPES,
    Appearance,
    Layout,
    SceneObject,
    point_segment_distance,
    wall_clearance,
)

SPLITS = ('train', 'test')
KINDS = ('goto', 'turn', 'forward', 'stop')
KIND_WEIGHTS = {'goto': 0.5, 'turn': 0.2, 'forward': 0.2, 'stop': 0.1}

STOP_GAP = 0.2             # m between robot and target surfaces where the expert stops
SUCCESS_GAP = 0.45         # m; goto succeeds when stopped with at most this gap
TURN_ANGLE = math.pi / 2
TURN_TOLERANCE = math.radians(15.0)
FORWARD_DISTANCES = (1.0, 1.5, 2.0, 2.5, 3.0)
FORWARD_TOLERANCE = 0.25   # m
STOP_DURATION = 3.0        # s a stop episode lasts
NOMINAL_SPEED = 0.4        # m/s, the expert's cruise speed (time limits scale with it)
NOMINAL_TURN_RATE = 0.8    # rad/s

ROOM_DM_RANGE = (45, 70)   # room side in decimetres
TARGET_DISTANCE = (1.4, 3.5)
TARGET_BEARING = math.radians(28.0)

TEMPLATES = {
    'train': {
        'goto': ('go to the {target}', 'drive to the {target}', 'move to the {target}',
                 'get close to the {target}', 'go over to the {target}', 'drive up to the {target}',
                 'move toward the {target}', 'find the {target} and stop next to it'),
        'turn': ('turn {direction}', 'turn to the {direction}', 'rotate {direction}',
                 'turn {direction} ninety degrees', 'turn {direction} by 90 degrees',
                 'take a {direction} turn', 'rotate to your {direction}', 'spin {direction}',
                 'turn in place to the {direction}', 'please turn {direction}',
                 'face {direction}'),
        'forward': ('go forward {distance}', 'drive forward {distance}', 'move ahead {distance}',
                    'move forward {distance}', 'drive ahead {distance}', 'go {distance} forward',
                    'roll forward {distance}', 'continue forward for {distance}',
                    'head forward {distance}'),
        'stop': ('stop', 'halt', 'stop now'),
    },
    'test': {
        'goto': ('head over to the {target}', 'navigate toward the {target}', 'approach the {target}',
                 'make your way to the {target}'),
        'turn': ('make a {direction} turn', 'rotate 90 degrees to the {direction}',
                 'do a quarter turn to the {direction}'),
        'forward': ('advance {distance}', 'go straight for {distance}',
                    'drive {distance} straight ahead'),
        'stop': ('freeze', 'stand still', 'stay'),
    },
}


@dataclass(frozen=True)
class Scenario:
    """A task in a room. parameters: goto {colour, shape, success_radius, stop_distance};
    turn {direction, angle (rad, left positive), tolerance}; forward {distance, tolerance};
    stop {duration}."""

    instruction: str
    kind: str
    target: SceneObject | None = None
    parameters: dict = field(default_factory=dict)
    time_limit: float = 30.0

    def to_dict(self) -> dict:
        return {'instruction': self.instruction, 'kind': self.kind,
                'target': None if self.target is None else self.target.to_dict(),
                'parameters': dict(self.parameters), 'time_limit': self.time_limit}


# ---------------------------------------------------------------------------------------------
# Scenario construction (shared by the generator and the parser).

def goto_scenario(instruction: str, target: SceneObject,
                  start: tuple[float, float] | None = None, room_diagonal: float = 8.0) -> Scenario:
    stop_distance = target.radius + ROBOT_RADIUS + STOP_GAP
    travel = room_diagonal if start is None else max(
        0.0, math.hypot(target.position[0] - start[0], target.position[1] - start[1]) - stop_distance)
    return Scenario(instruction, 'goto', target,
                    {'colour': target.colour, 'shape': target.shape,
                     'success_radius': target.radius + ROBOT_RADIUS + SUCCESS_GAP,
                     'stop_distance': stop_distance},
                    time_limit=round(8.0 + 2.0 * travel / NOMINAL_SPEED, 2))


def turn_scenario(instruction: str, direction: str, angle: float = TURN_ANGLE) -> Scenario:
    signed = abs(angle) if direction == 'left' else -abs(angle)
    return Scenario(instruction, 'turn', None,
                    {'direction': direction, 'angle': signed, 'tolerance': TURN_TOLERANCE},
                    time_limit=round(6.0 + 2.0 * abs(angle) / NOMINAL_TURN_RATE, 2))


def forward_scenario(instruction: str, distance: float) -> Scenario:
    return Scenario(instruction, 'forward', None,
                    {'distance': distance, 'tolerance': FORWARD_TOLERANCE},
                    time_limit=round(6.0 + 2.0 * distance / NOMINAL_SPEED, 2))


def stop_scenario(instruction: str) -> Scenario:
    return Scenario(instruction, 'stop', None, {'duration': STOP_DURATION}, time_limit=STOP_DURATION)


def format_distance(distance: float) -> str:
    number = f'{distance:g}'
    return f'{number} meter' if distance == 1.0 else f'{number} meters'


def instruction_for(split: str, kind: str, template_index: int, *, target: str = '',
                    direction: str = '', distance: float = 0.0) -> str:
    template = TEMPLATES[split][kind][template_index]
    return template.format(target=target, direction=direction, distance=format_distance(distance))


@functools.cache
def _sentences_by_task(split: str) -> dict[tuple, tuple[str, ...]]:
    """Every sentence a split can generate, grouped by the task it asks for (kind + slot)."""
    groups: dict[tuple, list[str]] = {}
    for kind, templates in TEMPLATES[split].items():
        if kind == 'goto':
            slots = [('target', f'{colour} {shape}') for colour in COLOURS for shape in SHAPES]
        elif kind == 'turn':
            slots = [('direction', d) for d in ('left', 'right')]
        elif kind == 'forward':
            slots = [('distance', d) for d in FORWARD_DISTANCES]
        else:
            slots = [(None, None)]
        for name, value in slots:
            group = groups.setdefault((kind, value), [])
            for index in range(len(templates)):
                slot = {name: value} if name else {}
                sentence = instruction_for(split, kind, index, **slot)
                if sentence not in group:
                    group.append(sentence)
    return {task: tuple(sentences) for task, sentences in groups.items()}


def all_instructions(split: str) -> set[str]:
    """Every sentence a split can generate (the disjointness test compares the two sets)."""
    return {sentence for group in _sentences_by_task(split).values() for sentence in group}


def paraphrases(instruction: str, split: str = 'train') -> tuple[str, ...]:
    """Every `split` sentence that asks for the same task as `instruction` (itself included), or ()
    when `instruction` is not one of the split's generated sentences. Training uses it to show each
    recording under all the split's wordings (`train --paraphrases sim`)."""
    for group in _sentences_by_task(split).values():
        if instruction in group:
            return group
    return ()


# ---------------------------------------------------------------------------------------------
# The generator.

def split_salt(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    return zlib.crc32(f'vla_nav.sim/{split}'.encode())


def episode_rng(split: str, seed: int, episode: int, attempt: int = 0) -> np.random.Generator:
    """The split-salted stream every random choice of one episode comes from."""
    if seed < 0 or episode < 0 or attempt < 0:
        raise ValueError(f'seed, episode and attempt must be >= 0 (got {seed}, {episode}, {attempt})')
    return np.random.default_rng(np.random.SeedSequence([split_salt(split), seed, episode, attempt]))


def room_size(rng: np.random.Generator, split: str) -> tuple[float, float]:
    """Whole-decimetre room sides with the split's parity: (w + d) even for train, odd for test."""
    low, high = ROOM_DM_RANGE
    width_dm, depth_dm = (int(v) for v in rng.integers(low, high + 1, size=2))
    if (width_dm + depth_dm) % 2 != SPLITS.index(split):
        depth_dm += 1 if depth_dm < high else -1
    return width_dm / 10.0, depth_dm / 10.0


def split_of_room(width: float, depth: float) -> str:
    """Which split a room size belongs to (the structural guarantee, usable on any layout)."""
    return SPLITS[(round(width * 10) + round(depth * 10)) % 2]


def _jitter(rgb, rng: np.random.Generator, amount: float = 0.06) -> tuple[float, float, float]:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb)


def _hsv_rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    i = int(hue * 6.0) % 6
    f = hue * 6.0 - int(hue * 6.0)
    p, q, t = value * (1 - saturation), value * (1 - f * saturation), value * (1 - (1 - f) * saturation)
    return [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)][i]


def _appearance(rng: np.random.Generator) -> Appearance:
    elevation = rng.uniform(math.radians(40), math.radians(80))
    azimuth = rng.uniform(0, 2 * math.pi)
    direction = (-math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth),
                 -math.sin(elevation))
    return Appearance(
        wall_rgb=_hsv_rgb(rng.uniform(), rng.uniform(0.0, 0.2), rng.uniform(0.55, 0.9)),
        floor_rgb=_hsv_rgb(rng.uniform(), rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.65)),
        light_dir=tuple(round(v, 4) for v in direction),
        light_diffuse=float(rng.uniform(0.45, 0.85)),
        ambient=float(rng.uniform(0.15, 0.35)))


def _named_object(rng: np.random.Generator, colour: str, shape: str, position, role: str
                  ) -> SceneObject:
    if shape == 'cone':
        radius, height = CONE_SIZES[int(rng.integers(len(CONE_SIZES)))]
        size = (radius, height)
    elif shape == 'box':
        half = float(rng.uniform(0.12, 0.2))
        radius, height, size = half * math.sqrt(2), 2 * half, (half, half, half)
    elif shape == 'ball':
        radius = float(rng.uniform(0.12, 0.2))
        height, size = 2 * radius, (radius,)
    else:  # cylinder
        radius, half_height = float(rng.uniform(0.1, 0.16)), float(rng.uniform(0.18, 0.3))
        height, size = 2 * half_height, (radius, half_height)
    return SceneObject(colour, shape, (float(position[0]), float(position[1])), radius, height, size,
                       float(rng.uniform(-math.pi, math.pi)), role, _jitter(COLOURS[colour], rng))


def _clutter_object(rng: np.random.Generator, position, low: bool = False) -> SceneObject:
    colour = str(rng.choice(list(CLUTTER_COLOURS)))
    if low or rng.uniform() < 0.6:  # a low crate
        half_x, half_y = rng.uniform(0.12, 0.22, size=2)
        half_z = rng.uniform(0.05, 0.08) if low else rng.uniform(0.05, 0.15)
        shape, size = 'box', (float(half_x), float(half_y), float(half_z))
        radius, height = float(math.hypot(half_x, half_y)), float(2 * half_z)
    else:  # a bin
        radius, half_z = float(rng.uniform(0.12, 0.2)), float(rng.uniform(0.15, 0.3))
        shape, size, height = 'cylinder', (radius, half_z), 2 * half_z
    return SceneObject(colour, shape, (float(position[0]), float(position[1])), radius, height, size,
                       float(rng.uniform(-math.pi, math.pi)), 'clutter',
                       _jitter(CLUTTER_COLOURS[colour], rng, 0.04))


class _Placer:
    """Rejection sampling of object positions under the room's spacing rules."""

    def __init__(self, rng, width, depth, start_pose, corridors):
        self.rng, self.width, self.depth = rng, width, depth
        self.start_pose = start_pose
        self.corridors = corridors  # [(start_xy, end_xy)] the robot must be able to drive along
        self.objects: list[SceneObject] = []

    def _layout(self) -> Layout:
        return Layout(self.width, self.depth, tuple(self.objects), self.start_pose)

    def fits(self, obj: SceneObject) -> bool:
        x, y = obj.position
        if wall_clearance(self._layout(), x, y) < obj.radius + 0.05:
            return False
        if math.hypot(x - self.start_pose[0], y - self.start_pose[1]) < obj.radius + ROBOT_RADIUS + 0.5:
            return False
        for other in self.objects:
            gap = 0.6 if 'target' in (obj.role, other.role) else 0.35
            if math.hypot(x - other.position[0], y - other.position[1]) < obj.radius + other.radius + gap:
                return False
        return all(point_segment_distance(x, y, *a, *b)[0] >= obj.radius + ROBOT_RADIUS + 0.25
                   for a, b in self.corridors)

    def random_point(self, margin: float = 0.2) -> tuple[float, float]:
        return (self.rng.uniform(-self.width / 2 + margin, self.width / 2 - margin),
                self.rng.uniform(-self.depth / 2 + margin, self.depth / 2 - margin))

    def in_view_point(self) -> tuple[float, float]:
        x, y, yaw = self.start_pose
        bearing, distance = self.rng.uniform(-0.6, 0.6), self.rng.uniform(1.0, 4.0)
        return x + distance * math.cos(yaw + bearing), y + distance * math.sin(yaw + bearing)

    def near_wall_point(self) -> tuple[float, float]:
        x, y = self.random_point()
        offset = self.rng.uniform(0.25, 0.5)
        side = int(self.rng.integers(4))
        if side == 0:
            x = -self.width / 2 + offset
        elif side == 1:
            x = self.width / 2 - offset
        elif side == 2:
            y = -self.depth / 2 + offset
        else:
            y = self.depth / 2 - offset
        return x, y

    def place(self, make, where, tries: int = 60) -> SceneObject | None:
        for _ in range(tries):
            obj = make(where())
            if self.fits(obj):
                self.objects.append(obj)
                return obj
        return None


def _distractor_combos(rng, target: tuple[str, str] | None, count: int) -> list[tuple[str, str]]:
    combos = [(c, s) for c in COLOURS for s in SHAPES if (c, s) != target]
    order = list(rng.permutation(len(combos)))
    chosen = [combos[i] for i in order[:count]]
    if target is not None and rng.uniform() < 0.7:  # a hard distractor: same colour or same shape
        hard = [combo for combo in combos if combo[0] == target[0] or combo[1] == target[1]]
        pick = hard[int(rng.integers(len(hard)))]
        if pick not in chosen:
            chosen[0] = pick
    return chosen


def _start_pose(rng, width, depth) -> tuple[float, float, float]:
    margin = 0.6
    return (float(rng.uniform(-width / 2 + margin, width / 2 - margin)),
            float(rng.uniform(-depth / 2 + margin, depth / 2 - margin)),
            float(rng.uniform(-math.pi, math.pi)))


def _wall_distance_ahead(width, depth, x, y, yaw) -> float:
    """Distance along yaw to the inner wall face, for the robot centre."""
    distances = []
    for position, direction, half in ((x, math.cos(yaw), width / 2), (y, math.sin(yaw), depth / 2)):
        if abs(direction) > 1e-9:
            limit = half if direction > 0 else -half
            distances.append((limit - position) / direction)
    return min(distances)


def generate_episode(split: str, seed: int, episode: int, attempt: int = 0,
                     kind: str | None = None) -> tuple[Layout, Scenario]:
    """The room and task of (split, seed, episode); deterministic. `attempt` re-draws a rejected
    episode (the simulator bumps it when the target is not visible in the first frame); `kind`
    forces a task kind (tests, demos)."""
    rng = episode_rng(split, seed, episode, attempt)
    width, depth = room_size(rng, split)
    appearance = _appearance(rng)
    kinds = list(KIND_WEIGHTS)
    drawn = kinds[int(rng.choice(len(kinds), p=[KIND_WEIGHTS[k] for k in kinds]))]
    kind = kind or drawn
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    templates = TEMPLATES[split][kind]
    template_index = int(rng.integers(len(templates)))

    for _ in range(500):
        start = _start_pose(rng, width, depth)
        x, y, yaw = start
        corridors, target, scenario_args = [], None, {}
        if kind == 'goto':
            colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
            distance = rng.uniform(*TARGET_DISTANCE)
            bearing = yaw + rng.uniform(-TARGET_BEARING, TARGET_BEARING)
            target = _named_object(rng, colour, shape, (x + distance * math.cos(bearing),
                                                        y + distance * math.sin(bearing)), 'target')
            probe = Layout(width, depth, (), start)
            stop_distance = target.radius + ROBOT_RADIUS + STOP_GAP
            stop_xy = (target.position[0] - stop_distance * math.cos(bearing),
                       target.position[1] - stop_distance * math.sin(bearing))
            if (wall_clearance(probe, *target.position) < target.radius + 0.25
                    or wall_clearance(probe, *stop_xy) < ROBOT_RADIUS + 0.15):
                continue
            corridors.append(((x, y), target.position))
        elif kind == 'forward':
            distance = float(rng.choice(FORWARD_DISTANCES))
            if _wall_distance_ahead(width, depth, x, y, yaw) < distance + ROBOT_RADIUS + 0.7:
                continue
            end = (x + (distance + 0.5) * math.cos(yaw), y + (distance + 0.5) * math.sin(yaw))
            corridors.append(((x, y), end))
            scenario_args['distance'] = distance
        elif kind == 'turn':
            scenario_args['direction'] = str(rng.choice(['left', 'right']))
        break
    else:  # pragma: no cover - the room is always big enough; guard against an endless loop
        raise RuntimeError(f'could not place a {kind} task in a {width}x{depth} room')

    placer = _Placer(rng, width, depth, start, corridors)
    if target is not None:
        placer.objects.append(target)
        # Sometimes one low box on the way: visible over, must be driven around.
        path_length = math.hypot(target.position[0] - x, target.position[1] - y)
        if path_length >= 2.2 and rng.uniform() < 0.3:
            fraction, lateral = rng.uniform(0.4, 0.6), rng.uniform(-0.15, 0.15)
            heading = math.atan2(target.position[1] - y, target.position[0] - x)
            bx = x + fraction * path_length * math.cos(heading) - lateral * math.sin(heading)
            by = y + fraction * path_length * math.sin(heading) + lateral * math.cos(heading)
            blocker = _clutter_object(rng, (bx, by), low=True)
            if _detour_possible(placer, blocker, heading):
                placer.corridors = []  # the blocker sits on the corridor on purpose
                ok = placer.fits(blocker)
                placer.corridors = corridors
                if ok:
                    placer.objects.append(blocker)

    n_distractors = int(rng.integers(2, 6))
    combos = _distractor_combos(rng, None if target is None else (target.colour, target.shape),
                                n_distractors)
    for index, (colour, shape) in enumerate(combos):
        where = placer.in_view_point if (index == 0 and rng.uniform() < 0.6) else placer.random_point
        placer.place(lambda p, c=colour, s=shape: _named_object(rng, c, s, p, 'distractor'), where)
    for _ in range(int(rng.integers(1, 4))):
        placer.place(lambda p: _clutter_object(rng, p), placer.near_wall_point)

    layout = Layout(width, depth, tuple(placer.objects), start, appearance, split, seed, episode)
    if kind == 'goto':
        text = instruction_for(split, kind, template_index, target=target.name)
        scenario = goto_scenario(text, target, start[:2])
    elif kind == 'turn':
        text = instruction_for(split, kind, template_index, direction=scenario_args['direction'])
        scenario = turn_scenario(text, scenario_args['direction'])
    elif kind == 'forward':
        text = instruction_for(split, kind, template_index, distance=scenario_args['distance'])
        scenario = forward_scenario(text, scenario_args['distance'])
    else:
        scenario = stop_scenario(instruction_for(split, kind, template_index))
    return layout, scenario


def _detour_possible(placer: _Placer, blocker: SceneObject, heading: float) -> bool:
    """One side of the blocker leaves room for the robot (walls and placed objects)."""
    layout = placer._layout()
    pass_offset = blocker.radius + ROBOT_RADIUS + 0.3
    for side in (1.0, -1.0):
        px = blocker.position[0] - side * pass_offset * math.sin(heading)
        py = blocker.position[1] + side * pass_offset * math.cos(heading)
        if wall_clearance(layout, px, py) >= ROBOT_RADIUS + 0.15:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The parser.

_NUMBER_WORDS = {'one': 1.0, 'two': 2.0, 'three': 3.0, 'four': 4.0, 'five': 5.0, 'six': 6.0,
                 'a': 1.0, 'half a': 0.5, 'one and a half': 1.5, 'two and a half': 2.5}
_SHAPE_WORDS = {'cone': 'cone', 'cones': 'cone', 'traffic cone': 'cone', 'box': 'box',
                'cube': 'box', 'crate': 'box', 'ball': 'ball', 'sphere': 'ball', 'cylinder': 'cylinder',
                'pillar': 'cylinder', 'can': 'cylinder', 'barrel': 'cylinder'}
_FORWARD_WORDS = ('forward', 'ahead', 'straight', 'advance')
_DISTANCE = re.compile(r'\b(\d+(?:\.\d+)?|one and a half|two and a half|half a|one|two|three|four|five|six|a)'
                       r'\s*(?:m|meters?|metres?)\b')
_DEGREES = re.compile(r'(\d+(?:\.\d+)?|ninety|ninty|forty five|a hundred and eighty)\s*degrees?\b')
_DEGREE_WORDS = {'ninety': 90.0, 'ninty': 90.0, 'forty five': 45.0, 'a hundred and eighty': 180.0}


def _clean(text: str) -> str:
    text = text.casefold().replace('’', "'")
    text = re.sub(r"[^a-z0-9.' ]+", ' ', text)
    text = re.sub(r'(?<!\d)\.|\.(?!\d)', ' ', text)  # keep decimal points only
    return ' '.join(text.split())


def parse_instruction(text: str, layout: Layout,
                      start_pose: tuple[float, float, float] | None = None, *,
                      stop_words: Iterable[str]) -> Scenario | None:
    """Read a free-text instruction (either split's phrasings, and common variants) against a room.

    goto needs a colour and/or shape that picks exactly one named object of the room (colour and
    shape both given: that object; one given: it must be unique). Returns None when the text is not
    understood or names nothing in the room. `start_pose` (the robot's pose now) sets goto's time
    limit; without it the room diagonal is used. stop_words: the one stop-phrase list vla_node uses
    (config/vla_nav.yaml vla_node.stop_words, `load_config().stop_words`), so a phrase that stops
    the robot is judged as a stop task.
    """
    clean = _clean(text)
    if not clean:
        return None
    if clean in {_clean(word) for word in stop_words}:
        return stop_scenario(text)
    words = clean.split()
    colours = [word for word in words if word in COLOURS]
    mentioned = sorted((match.start(), shape) for phrase, shape in _SHAPE_WORDS.items()
                       for match in re.finditer(rf'\b{phrase}\b', clean))
    shape = mentioned[-1][1] if mentioned else None  # "can you go to the red cone" -> cone
    if colours or shape:
        candidates = [obj for obj in layout.named_objects
                      if (not colours or obj.colour == colours[-1])
                      and (shape is None or obj.shape == shape)]
        if len(candidates) != 1:
            return None
        diagonal = math.hypot(layout.width, layout.depth)
        return goto_scenario(text, candidates[0], None if start_pose is None else start_pose[:2],
                             diagonal)
    distance = _DISTANCE.search(clean)
    if distance and any(word in clean for word in _FORWARD_WORDS):
        value = distance.group(1)
        metres = _NUMBER_WORDS[value] if value in _NUMBER_WORDS else float(value)
        return forward_scenario(text, metres) if metres > 0 else None
    direction = 'left' if 'left' in words else 'right' if 'right' in words else None
    if direction and any(word in clean for word in ('turn', 'rotate', 'spin', 'face', 'left', 'right')):
        degrees = _DEGREES.search(clean)
        angle = TURN_ANGLE
        if degrees:
            value = degrees.group(1)
            angle = math.radians(_DEGREE_WORDS.get(value) or float(value))
        elif 'around' in words:
            angle = math.pi
        return turn_scenario(text, direction, angle) if angle > 0 else None
    if 'turn around' in clean:
        return turn_scenario(text, 'left', math.pi)
    return None
