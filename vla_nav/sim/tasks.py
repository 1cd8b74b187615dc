"""The v2 world's tasks: seeded rooms that need planning, tasks in language, and the held-out
splits. numpy only (MuJoCo renders these layouts in world2.py).

    generate_task(split, seed, episode, attempt=0, tier=None) -> (RoomLayout, Task)
    task_from_text(text, layout, pose, stop_phrases) -> (Task | None, reason)   (core.language +
        `resolve`: the judge for free text, e.g. sim_node / set_instruction)
    resolve(step: core.language.Step, layout, pose) -> (SceneObject | None, reason)

A `Task` is the instruction plus 1-3 `steps` (each a v1 `Scenario`: kind goto|turn|forward|stop,
its own clause `text`, target, parameters, time limit). NavSim(world='v2') judges one step at a
time (GoalProgress restarts at each step) and reports the step index in every Observation: the
per-step labels (step index, step text, step done) a sequencer-driven policy trains on.

Tiers (`Task.tier`; `generate_task(tier=...)` forces one; eval-sim --suite names them):
  goto          target in view, named by colour + category, or by one of them when unique
  distractor    a same-colour or same-category distractor nearer or more central than the target
  search        the target starts out of view (behind the robot, behind a wall, another room)
  detour        an obstacle between the robot and the target
  relational    "the nearest chair", "the cone on your left", "the ball next to the box"
  turn, forward, stop, multi_step (2-3 steps)
  held_out_pair, held_out_words, numbers   test split only (the held-out material below)
  far           (EVAL_TIERS: only when forced, never drawn, so never in recorded data) a goto
                scene whose target is in view FAR_DISTANCE away: the far-target block

Held-out splits: what the TRAIN generator never emits, whatever the seed (test_sim_tasks.py
checks each structurally and over many seeds):
  | held out                | test only                                                        |
  | colour x category pairs | HELD_OUT_PAIRS: one colour per category (never in a train scene,  |
  |                         | as target, distractor or anywhere)                               |
  | words                   | TEST_ONLY_WORDS: colour synonyms (crimson, violet, ...) and       |
  |                         | category synonyms (pylon, sphere, desk, ...)                     |
  | numbers                 | TEST_ANGLES (degrees) and TEST_DISTANCES (m) in any wording       |
  | sentence templates      | TEMPLATES['test'] (and its step connectors)                      |
  | textures / room styles  | TEST_ONLY_MATERIALS: floor 'marble', walls 'noise'               |
The test split uses test templates only; its other material (words, numbers, pairs, materials)
comes from both pools, and its held-out tiers force the held-out material. Layouts of the two
splits come from split-salted RNG streams.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from vla_nav.core import language
from vla_nav.sim import catalog
from vla_nav.sim.layout import ROBOT_RADIUS, SceneObject
from vla_nav.sim.rooms import (
    CAMERA_RANGES,
    FLOOR_MATERIALS,
    ROOM_SHAPES,
    WALL_MATERIALS,
    CameraMount,
    GridPlanner,
    RoomLayout,
    Style,
    build_room,
    inside_floor,
    line_is_free,
    visible,
    wall_distance,
)
from vla_nav.sim.scenarios import (
    NOMINAL_SPEED,
    NOMINAL_TURN_RATE,
    SPLITS,
    STOP_GAP,
    SUCCESS_GAP,
    Scenario,
    forward_scenario,
    stop_scenario,
    turn_scenario,
)

TIERS = ('goto', 'distractor', 'search', 'detour', 'relational', 'turn', 'forward', 'stop',
         'multi_step')
TEST_TIERS = ('held_out_pair', 'held_out_words', 'numbers')
EVAL_TIERS = ('far',)   # either split, only when forced (eval-sim --suite --tiers far)
TIER_WEIGHTS = {'goto': 0.16, 'distractor': 0.1, 'search': 0.14, 'detour': 0.12, 'relational': 0.1,
                'turn': 0.1, 'forward': 0.1, 'stop': 0.04, 'multi_step': 0.14}
TEST_TIER_WEIGHT = 0.05   # each held-out tier's share of a test stream (the rest as TIER_WEIGHTS)

# --- held-out material ------------------------------------------------------------------------
HELD_OUT_PAIRS = frozenset({('purple', 'cone'), ('yellow', 'box'), ('green', 'ball'),
                            ('red', 'cylinder'), ('blue', 'chair'), ('white', 'table'),
                            ('orange', 'trash bin'), ('pink', 'plant'), ('cyan', 'barrel'),
                            ('black', 'person')})
TRAIN_COLOUR_WORDS = {colour: (colour,) for colour in catalog.COLOURS}
TRAIN_CATEGORY_WORDS = {
    'cone': ('cone', 'traffic cone'), 'box': ('box',), 'ball': ('ball',), 'cylinder': ('cylinder',),
    'chair': ('chair',), 'table': ('table',), 'trash bin': ('trash bin', 'bin', 'trash can'),
    'plant': ('plant', 'potted plant'), 'barrel': ('barrel',), 'person': ('person', 'figure'),
}
TEST_ONLY_WORDS = frozenset(
    {w for c, words in language.COLOUR_WORDS.items() for w in words if w not in TRAIN_COLOUR_WORDS[c]}
    | {w for c, words in language.CATEGORY_WORDS.items() for w in words
       if w not in TRAIN_CATEGORY_WORDS[c]})
TEST_ANGLES = (20, 65, 105, 135, 170)                       # degrees
TEST_DISTANCES = (0.4, 0.75, 1.2, 1.25, 1.75, 2.25, 2.7, 3.5)  # m
TRAIN_ANGLES = tuple(a for a in range(15, 181, 5) if a not in TEST_ANGLES)
TRAIN_DISTANCES = tuple(round(0.1 * d, 1) for d in range(3, 51) if round(0.1 * d, 1) not in TEST_DISTANCES)
TEST_ONLY_MATERIALS = frozenset({('floor', 'marble'), ('wall', 'noise')})

TEMPLATES = {
    'train': {
        'goto': ('go to the {t}', 'drive to the {t}', 'move to the {t}', 'get close to the {t}',
                 'go over to the {t}', 'drive up to the {t}', 'find the {t}', 'go find the {t}'),
        'turn': ('turn {d} {a}', 'rotate {d} by {a}', 'turn {a} to the {d}', 'spin {d} {a}',
                 'turn {d} [90]', 'a quarter turn to the {d} [90]', 'turn around [180]'),
        'forward': ('go forward {m}', 'drive forward {m}', 'move ahead {m}', 'go {m} forward',
                    'drive ahead {m}', 'move forward {m}', 'roll forward {m}'),
        'stop': ('stop', 'halt', 'stop now'),
        'then': (', then ', ' and then ', ', and then ', ' and '),
    },
    'test': {
        'goto': ('head over to the {t}', 'navigate toward the {t}', 'approach the {t}',
                 'make your way to the {t}'),
        'turn': ('pivot {d} {a}', 'swivel {a} to your {d}', 'make a turn of {a} to the {d}',
                 'do half a turn [180]'),
        'forward': ('advance {m}', 'go straight for {m}', 'drive {m} straight ahead',
                    'proceed forward {m}'),
        'stop': ('freeze', 'stand still', 'stay'),
        'then': ('; after that ', ', afterwards ', '; then '),
    },
}

# The stop sentences the generator writes, and so the ones its round trip must read back as a stop.
# Each is also in the one stop list of the robot (config `vla_node.stop_words`; a test checks it).
WRITTEN_STOP_PHRASES = TEMPLATES['train']['stop'] + TEMPLATES['test']['stop']

ROOM_WIDTH, ROOM_DEPTH = (5.0, 9.0), (4.0, 7.0)
MAX_PER_CATEGORY = 4
MAX_TARGET_DISTANCE = 6.0
FAR_DISTANCE = (3.5, MAX_TARGET_DISTANCE)   # m to the target's centre: the `far` tier
SEARCH_TIME = 2 * math.pi / NOMINAL_TURN_RATE + 4.0


@dataclass(frozen=True)
class Task:
    """An instruction and its 1-3 steps (v1 Scenarios, one per clause)."""

    instruction: str
    steps: tuple[Scenario, ...]
    tier: str = 'free'
    template: str = ''          # '<split>:<kind>:<index>' ids of the templates used, '+'-joined

    @property
    def kind(self) -> str:
        return self.steps[0].kind if len(self.steps) == 1 else 'multi_step'

    @property
    def target(self) -> SceneObject | None:
        return next((s.target for s in self.steps if s.target is not None), None)

    @property
    def time_limit(self) -> float:
        return round(sum(s.time_limit for s in self.steps), 2)

    @property
    def parameters(self) -> dict:
        return dict(self.steps[0].parameters) if len(self.steps) == 1 else {}

    def to_dict(self) -> dict:
        return {'instruction': self.instruction, 'kind': self.kind, 'tier': self.tier,
                'template': self.template, 'time_limit': self.time_limit,
                'target': None if self.target is None else self.target.to_dict(),
                'steps': [s.to_dict() for s in self.steps]}


# ---------------------------------------------------------------------------------------------
# Step scenarios (v1's, with tolerances that suit any angle / distance).

def goto_step(text: str, target: SceneObject, path_length: float, search: bool = False) -> Scenario:
    """path_length: the drive to the stop ring (m), for the time limit."""
    stop_distance = target.radius + ROBOT_RADIUS + STOP_GAP
    limit = 8.0 + 2.0 * path_length / NOMINAL_SPEED
    return Scenario(text, 'goto', target,
                    {'colour': target.colour, 'shape': target.shape,
                     'success_radius': target.radius + ROBOT_RADIUS + SUCCESS_GAP,
                     'stop_distance': stop_distance},
                    time_limit=round(limit + (SEARCH_TIME if search else 0.0), 2))


def turn_step(text: str, degrees: float) -> Scenario:
    scenario = turn_scenario(text, 'left' if degrees > 0 else 'right', math.radians(abs(degrees)))
    tolerance = min(math.radians(15.0), 0.4 * math.radians(abs(degrees)))
    params = dict(scenario.parameters, tolerance=tolerance, either_way=abs(degrees) >= 179.9)
    return replace(scenario, parameters=params)


def forward_step(text: str, metres: float) -> Scenario:
    scenario = forward_scenario(text, metres)
    return replace(scenario, parameters=dict(scenario.parameters,
                                             tolerance=max(0.1, min(0.25, 0.2 * metres))))


# ---------------------------------------------------------------------------------------------
# Words.

_ONES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
         'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen',
         'nineteen')
_TENS_WORDS = ('', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety')


def number_words(n: int) -> str:
    """0..999 in words ('a hundred and twenty')."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS_WORDS[n // 10] + ('' if n % 10 == 0 else ' ' + _ONES[n % 10])
    rest = n % 100
    return 'a hundred' + ('' if rest == 0 else ' and ' + number_words(rest))


def angle_phrase(degrees: int, rng: np.random.Generator) -> str:
    return f'{degrees} degrees' if rng.uniform() < 0.6 else f'{number_words(degrees)} degrees'


def distance_phrase(metres: float, rng: np.random.Generator) -> str:
    options = [f'{metres:g} meters' if metres != 1 else '1 meter', f'{metres:g} m']
    if metres < 1.0:
        options.append(f'{round(metres * 100)} centimeters')
    whole, frac = int(metres), round(metres - int(metres), 2)
    fraction_words = {0.5: 'a half', 0.25: 'a quarter'}
    if frac == 0 and whole >= 1:
        options.append('one meter' if whole == 1 else f'{number_words(whole)} meters')
    elif whole == 0 and frac == 0.5:
        options.append('half a meter')
    elif whole == 0 and frac == 0.75:
        options.append('three quarters of a meter')
    elif whole >= 1 and frac in fraction_words:
        options.append(f'{number_words(whole)} and {fraction_words[frac]} meters')
    return options[int(rng.integers(len(options)))]


def _colour_word(colour: str, rng, test_words: bool) -> str:
    pool = language.COLOUR_WORDS[colour] if test_words else TRAIN_COLOUR_WORDS[colour]
    if test_words:
        pool = tuple(w for w in pool if w in TEST_ONLY_WORDS) or pool
    return pool[int(rng.integers(len(pool)))]


def _category_word(category: str, rng, test_words: bool) -> str:
    pool = language.CATEGORY_WORDS[category] if test_words else TRAIN_CATEGORY_WORDS[category]
    if test_words:
        pool = tuple(w for w in pool if w in TEST_ONLY_WORDS) or pool
    return pool[int(rng.integers(len(pool)))]


# ---------------------------------------------------------------------------------------------
# Resolution: which object words pick (the judge of free text and the generator's round trip).

def _matches(obj: SceneObject, colour, category) -> bool:
    return (colour is None or obj.colour == colour) and (category is None or obj.shape == category)


def _bearing(pose, obj) -> float:
    angle = math.atan2(obj.position[1] - pose[1], obj.position[0] - pose[0]) - pose[2]
    return math.atan2(math.sin(angle), math.cos(angle))


def resolve(step: language.Step, layout, pose) -> tuple[SceneObject | None, str]:
    """The one object a goto step names in this room seen from `pose`, or (None, reason)."""
    named = layout.named_objects
    candidates = [o for o in named if _matches(o, step.colour, step.category)]
    words = ' '.join(w for w in (step.colour, step.category) if w) or 'object'
    if not candidates:
        return None, f'no {words} in this room'
    distance = {id(o): math.hypot(o.position[0] - pose[0], o.position[1] - pose[1]) for o in candidates}
    if step.relation is None:
        if len(candidates) > 1:
            return None, f'{len(candidates)} objects match "{words}" (say which one)'
        return candidates[0], ''
    if step.relation in ('nearest', 'farthest'):
        order = sorted(candidates, key=lambda o: distance[id(o)],
                       reverse=step.relation == 'farthest')
        if len(order) > 1 and abs(distance[id(order[0])] - distance[id(order[1])]) < 0.5:
            return None, f'two {words}s are about as far; say which one'
        return order[0], ''
    if step.relation in ('left', 'right'):
        ahead = [o for o in candidates if abs(_bearing(pose, o)) < math.radians(100)]
        sign = 1.0 if step.relation == 'left' else -1.0
        side = [o for o in ahead if sign * _bearing(pose, o) > math.radians(5)]
        if len(side) != 1:
            return None, f'{len(side)} {words}s on your {step.relation}; say which one'
        return side[0], ''
    if step.relation == 'next_to':
        anchors = [o for o in named if _matches(o, step.anchor_colour, step.anchor_category)]
        if len(anchors) != 1:
            return None, f'{len(anchors)} objects match the "next to" object'
        anchor = anchors[0]
        gaps = sorted(((math.hypot(o.position[0] - anchor.position[0], o.position[1] - anchor.position[1])
                        - o.radius - anchor.radius, o) for o in candidates if o is not anchor),
                      key=lambda item: item[0])
        if not gaps or gaps[0][0] > 1.0 or (len(gaps) > 1 and gaps[1][0] - gaps[0][0] < 0.7):
            return None, f'no single {words} next to that object'
        return gaps[0][1], ''
    return None, f'unknown relation {step.relation!r}'


def task_from_text(text: str, layout: RoomLayout, pose, stop_phrases: Iterable[str]
                   ) -> tuple[Task | None, str]:
    """Parse and resolve free text against a room (the same parser the robot side uses);
    stop_phrases: the one stop list (config `vla_node.stop_words`, NavSim passes its stop_words)."""
    parse = language.parse_instruction(text, stop_phrases)
    if not parse.ok:
        return None, parse.refused
    steps = []
    for step in parse.steps:
        if step.kind == 'goto':
            target, reason = resolve(step, layout, pose)
            if target is None:
                return None, reason
            length = math.hypot(target.position[0] - pose[0], target.position[1] - pose[1])
            steps.append(goto_step(step.text, target, 1.5 * length, search=True))
        elif step.kind == 'turn':
            steps.append(turn_step(step.text, step.angle_deg))
        elif step.kind == 'forward':
            steps.append(forward_step(step.text, step.distance_m))
        else:
            steps.append(stop_scenario(step.text))
    return Task(text, tuple(steps)), ''


# ---------------------------------------------------------------------------------------------
# The generator.

def _salt(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    return zlib.crc32(f'vla_nav.sim.v2/{split}'.encode())


def task_rng(split: str, seed: int, episode: int, attempt: int = 0) -> np.random.Generator:
    if min(seed, episode, attempt) < 0:
        raise ValueError(f'seed, episode and attempt must be >= 0 (got {seed}, {episode}, {attempt})')
    return np.random.default_rng(np.random.SeedSequence([_salt(split), seed, episode, attempt]))


def _pick(rng, items):
    items = list(items)
    return items[int(rng.integers(len(items)))]


def _hsv(h, s, v):
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _style(rng, split: str) -> Style:
    floors = [m for m in FLOOR_MATERIALS if split == 'test' or ('floor', m) not in TEST_ONLY_MATERIALS]
    walls = [m for m in WALL_MATERIALS if split == 'test' or ('wall', m) not in TEST_ONLY_MATERIALS]
    elevation, azimuth = rng.uniform(math.radians(35), math.radians(80)), rng.uniform(0, 2 * math.pi)
    direction = (-math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth),
                 -math.sin(elevation))
    return Style(
        floor_material=_pick(rng, floors), wall_material=_pick(rng, walls),
        floor_rgb=tuple(round(v, 3) for v in _hsv(rng.uniform(), rng.uniform(0.0, 0.25),
                                                  rng.uniform(0.3, 0.7))),
        wall_rgb=tuple(round(v, 3) for v in _hsv(rng.uniform(), rng.uniform(0.0, 0.2),
                                                 rng.uniform(0.55, 0.95))),
        light_dir=tuple(round(v, 4) for v in direction),
        light_diffuse=round(float(rng.uniform(0.35, 0.85)), 3),
        ambient=round(float(rng.uniform(0.12, 0.38)), 3),
        lamp_pos=(round(float(rng.uniform(-3, 3)), 2), round(float(rng.uniform(-3, 3)), 2), 2.4),
        lamp_diffuse=round(float(rng.uniform(0.15, 0.5)), 3) if rng.uniform() < 0.5 else 0.0)


def _camera(rng) -> CameraMount:
    return CameraMount(*(round(float(rng.uniform(*CAMERA_RANGES[k])), 3)
                         for k in ('height', 'pitch_deg', 'fovy_deg')))


def allowed_pairs(split: str) -> list[tuple[str, str]]:
    return [(c, k) for k in catalog.CATEGORIES for c in catalog.CATEGORY_COLOURS[k]
            if split == 'test' or (c, k) not in HELD_OUT_PAIRS]


def _make_object(rng, colour: str, category: str, position, role: str) -> SceneObject:
    scale = float(_pick(rng, catalog.SIZES[category]))
    size = catalog.dimensions(category, scale)
    base = catalog.COLOURS[colour]
    rgb = tuple(float(np.clip(v + rng.uniform(-0.05, 0.05), 0.0, 1.0)) for v in base)
    return SceneObject(colour, category, (float(position[0]), float(position[1])),
                       catalog.footprint_radius(category, size), size[2], size,
                       float(rng.uniform(-math.pi, math.pi)), role, rgb)


def _clutter(rng, position, long_side: float | None = None, yaw: float | None = None,
             tall: bool = False) -> SceneObject:
    hx = long_side if long_side is not None else float(rng.uniform(0.12, 0.3))
    hy = float(rng.uniform(0.12, 0.22))
    height = float(rng.uniform(0.6, 1.2) if tall else rng.uniform(0.1, 0.3))
    rgb = catalog.CLUTTER_RGB[int(rng.integers(len(catalog.CLUTTER_RGB)))]
    return SceneObject('grey', 'crate', (float(position[0]), float(position[1])), math.hypot(hx, hy),
                       height, (hx, hy, height), float(rng.uniform(-math.pi, math.pi)) if yaw is None
                       else yaw, 'clutter', rgb)


class _Scene:
    """A room being filled: rejection sampling of free positions."""

    def __init__(self, rng, layout_args: dict):
        self.rng, self.args = rng, layout_args
        self.objects: list[SceneObject] = []

    def layout(self, objects=None) -> RoomLayout:
        return RoomLayout(objects=tuple(self.objects if objects is None else objects), **self.args)

    def fits(self, obj: SceneObject, gap: float = 0.35) -> bool:
        probe = self.layout(())
        x, y = obj.position
        if not inside_floor(probe, x, y, obj.radius + 0.08):
            return False
        sx, sy, _ = self.args['start_pose']
        if math.hypot(x - sx, y - sy) < obj.radius + ROBOT_RADIUS + 0.45:
            return False
        if sum(o.shape == obj.shape for o in self.objects) >= MAX_PER_CATEGORY:
            return False  # the renderer's pools hold this many per category
        return all(math.hypot(x - o.position[0], y - o.position[1]) >= obj.radius + o.radius + gap
                   for o in self.objects)

    def free_point(self) -> tuple[float, float]:
        rects = self.args['free_rects']
        areas = np.array([(r[2] - r[0]) * (r[3] - r[1]) for r in rects])
        x0, y0, x1, y1 = rects[int(self.rng.choice(len(rects), p=areas / areas.sum()))]
        return float(self.rng.uniform(x0, x1)), float(self.rng.uniform(y0, y1))

    def view_point(self, distance=(1.2, MAX_TARGET_DISTANCE), spread: float = 0.75):
        x, y, yaw = self.args['start_pose']
        half = math.radians(self.args['camera'].fovy_deg / 2 - 8.0) * spread
        bearing, dist = yaw + self.rng.uniform(-half, half), self.rng.uniform(*distance)
        return x + dist * math.cos(bearing), y + dist * math.sin(bearing)

    def place(self, make, where, tries: int = 80, check=None, gap: float = 0.35):
        for _ in range(tries):
            obj = make(where())
            if self.fits(obj, gap) and (check is None or check(obj)):
                self.objects.append(obj)
                return obj
        return None


def _reachable(layout: RoomLayout, target: SceneObject) -> float | None:
    """Path length from the start to the target's stop ring, or None."""
    planner = GridPlanner(layout, ROBOT_RADIUS + 0.1, ignore=(target,))
    path = planner.plan(layout.start_pose[:2], target.position,
                        goal_radius=target.radius + ROBOT_RADIUS + STOP_GAP)
    if path is None:
        return None
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:], strict=False))


def _target_phrase(rng, scene: _Scene, target: SceneObject, test_words: bool) -> str:
    named = [o for o in scene.objects if o.role != 'clutter']
    colour = _colour_word(target.colour, rng, test_words)
    category = _category_word(target.shape, rng, test_words)
    unique_category = sum(o.shape == target.shape for o in named) == 1
    unique_colour = sum(o.colour == target.colour for o in named) == 1
    draw = rng.uniform()
    if unique_category and draw < 0.2:
        return category
    if unique_colour and 0.2 <= draw < 0.35:
        return f'{colour} one'
    return f'{colour} {category}'


def generate_task(split: str, seed: int, episode: int, attempt: int = 0, tier: str | None = None
                  ) -> tuple[RoomLayout, Task]:
    """The room and task of (split, seed, episode) in the v2 world; deterministic. `tier` forces a
    tier (TIERS, or TEST_TIERS on the test split)."""
    rng = task_rng(split, seed, episode, attempt)
    names = list(TIER_WEIGHTS)
    weights = np.array([TIER_WEIGHTS[n] for n in names])
    if split == 'test':
        names += list(TEST_TIERS)
        weights = np.concatenate([weights * (1 - TEST_TIER_WEIGHT * len(TEST_TIERS)),
                                  [TEST_TIER_WEIGHT] * len(TEST_TIERS)])
    drawn = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    tier = tier or drawn
    if tier not in TIERS + EVAL_TIERS + (TEST_TIERS if split == 'test' else ()):
        raise ValueError(f'tier must be one of {TIERS + EVAL_TIERS} (+ {TEST_TIERS} on the test split), '
                         f'got {tier!r}')
    for _retry in range(200):
        result = _try_generate(rng, split, tier, seed, episode)
        if result is not None:
            return result
    raise RuntimeError(f'could not generate a {tier} task ({split}, {seed}, {episode})')


def _room_args(rng, split: str, seed: int, episode: int, tier: str) -> dict:
    shape = _pick(rng, ROOM_SHAPES) if tier in ('search', 'detour') else \
        ROOM_SHAPES[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    width = round(float(rng.uniform(*ROOM_WIDTH)), 1)
    depth = round(float(rng.uniform(*ROOM_DEPTH)), 1)
    free_rects, wall_boxes = build_room(shape, width, depth, rng)
    style = _style(rng, split)
    args = dict(width=width, depth=depth, start_pose=(0.0, 0.0, 0.0), split=split, seed=seed,
                episode=episode, shape=shape, wall_boxes=wall_boxes, free_rects=free_rects,
                style=style, camera=_camera(rng))
    probe = RoomLayout(objects=(), **args)
    for _ in range(200):
        scene = _Scene(rng, args)
        x, y = scene.free_point()
        if wall_distance(probe, x, y) >= 0.6:
            args['start_pose'] = (round(x, 3), round(y, 3), round(float(rng.uniform(-math.pi, math.pi)), 4))
            return args
    raise RuntimeError('no start pose')  # pragma: no cover - rooms are >= 4 m


class _Draft:
    """One attempt at a task: the room being filled and what the tier draws into it."""

    def __init__(self, rng, split: str, tier: str, args: dict):
        self.rng, self.split, self.tier = rng, split, tier
        self.scene = _Scene(rng, args)
        self.pose = args['start_pose']
        self.test_words = tier == 'held_out_words'
        self.pairs = allowed_pairs(split)
        self.target_pairs = self.pairs
        if tier == 'held_out_pair':
            self.target_pairs = sorted(HELD_OUT_PAIRS)
            self.pairs = [p for p in self.pairs if p not in HELD_OUT_PAIRS]  # distractors: ordinary
        self.template_ids: list[str] = []
        self.empty = self.scene.layout(())

    def template(self, kind: str) -> str:
        """A template of this split for `kind`, its id noted."""
        templates = TEMPLATES[self.split][kind]
        index = int(self.rng.integers(len(templates)))
        self.template_ids.append(f'{self.split}:{kind}:{index}')
        return templates[index]

    def place_target(self, where, check=None) -> SceneObject | None:
        colour, category = _pick(self.rng, self.target_pairs)
        return self.scene.place(lambda p: _make_object(self.rng, colour, category, p, 'target'), where,
                                check=check, gap=0.6)

    def in_view(self, obj: SceneObject) -> bool:
        return visible(self.empty, self.pose, obj) and line_is_free(
            self.empty, self.pose[:2], obj.position, ROBOT_RADIUS + 0.05, ())


_GOTO_TIERS = ('goto', 'held_out_pair', 'held_out_words', 'distractor', 'relational', 'far')


def _place_goal(draft: _Draft) -> tuple[SceneObject | None, str | None] | None:
    """The tier's target and relation phrase ((None, None) for a tier without one); None when
    this room does not work out."""
    rng, scene, pose, tier = draft.rng, draft.scene, draft.pose, draft.tier
    if tier == 'relational':
        return _relational(rng, scene, draft.pairs, pose, draft.test_words)
    if tier in _GOTO_TIERS:
        where = (lambda: scene.view_point(FAR_DISTANCE)) if tier == 'far' else scene.view_point
        target = draft.place_target(where, draft.in_view)
        if target is None or (tier == 'distractor' and
                              _hard_distractor(rng, scene, target, draft.pairs, pose) is None):
            return None
    elif tier == 'search':
        target = draft.place_target(
            scene.free_point, lambda o: not visible(draft.empty, pose, o, margin_deg=-6.0))
    elif tier == 'detour':
        target = draft.place_target(lambda: scene.view_point((2.6, MAX_TARGET_DISTANCE), 0.5),
                                    draft.in_view)
        if target is not None and not _place_blocker(rng, scene, target, pose):
            return None
    else:
        return None, None
    return None if target is None else (target, None)


def _furnish(draft: _Draft, target: SceneObject | None) -> None:
    """Distractors (never the target's words; on a relational task, not its category) and clutter."""
    rng, scene = draft.rng, draft.scene
    for _ in range(int(rng.integers(2, 6))):
        colour, category = _pick(rng, draft.pairs)
        if target is not None and (colour, category) == (target.colour, target.shape):
            continue
        if draft.tier == 'relational' and target is not None and category == target.shape:
            continue
        scene.place(lambda p, c=colour, k=category: _make_object(rng, c, k, p, 'distractor'),
                    scene.free_point)
    for _ in range(int(rng.integers(1, 4))):
        scene.place(lambda p: _clutter(rng, p), scene.free_point)


def _goal_step(draft: _Draft, layout: RoomLayout, target: SceneObject, phrase: str | None
               ) -> Scenario | None:
    length = _reachable(layout, target)
    if length is None:
        return None
    if phrase is None:
        phrase = _target_phrase(draft.rng, draft.scene, target, draft.test_words)
    text = draft.template('goto').format(t=phrase)
    return goto_step(text, target, length, search=draft.tier in ('search', 'detour'))


def _tier_steps(draft: _Draft, layout: RoomLayout) -> tuple[list[Scenario], RoomLayout] | None:
    """The steps of a tier without a placed target (turn, forward, numbers, stop, multi_step)."""
    rng, split, tier = draft.rng, draft.split, draft.tier
    if tier in ('turn', 'numbers') and rng.uniform() < (0.5 if tier == 'numbers' else 1.0):
        return [_turn(rng, split, draft.template_ids, tier == 'numbers')], layout
    if tier in ('forward', 'numbers'):
        step = _forward(rng, split, draft.template_ids, tier == 'numbers', layout, draft.pose)
        return None if step is None else ([step], layout)
    if tier == 'stop':
        return [stop_scenario(draft.template('stop'))], layout
    if tier == 'multi_step':
        return _multi_step(rng, split, draft.scene, draft.template_ids, draft.pairs, draft.pose)
    return [], layout


def _reads_back(text: str, layout: RoomLayout, pose, steps) -> bool:
    """The round trip: the one parser reads the instruction back into these steps."""
    read, _reason = task_from_text(text, layout, pose, WRITTEN_STOP_PHRASES)
    return read is not None and len(read.steps) == len(steps) and all(
        a.kind == b.kind and a.target is b.target for a, b in zip(read.steps, steps, strict=False))


def _try_generate(rng, split, tier, seed, episode):
    draft = _Draft(rng, split, tier, _room_args(rng, split, seed, episode, tier))
    goal = _place_goal(draft)
    if goal is None:
        return None
    target, relation_phrase = goal
    _furnish(draft, target)
    layout = draft.scene.layout()
    if target is not None:
        step = _goal_step(draft, layout, target, relation_phrase)
        made = None if step is None else ([step], layout)
    else:
        made = _tier_steps(draft, layout)
    if made is None:
        return None
    steps, layout = made
    text = _join(rng, split, steps, draft.template_ids)
    task = Task(text, tuple(steps), tier, '+'.join(draft.template_ids))
    if not _reads_back(text, layout, draft.pose, steps):
        return None
    return layout, task


def _join(rng, split, steps, template_ids) -> str:
    if len(steps) == 1:
        return steps[0].instruction
    connectors = TEMPLATES[split]['then']
    text = steps[0].instruction
    for step in steps[1:]:
        index = int(rng.integers(len(connectors)))
        template_ids.append(f'{split}:then:{index}')
        text += connectors[index] + step.instruction
    return text


def _turn(rng, split, template_ids, test_numbers: bool) -> Scenario:
    templates = TEMPLATES[split]['turn']
    index = int(rng.integers(len(templates)))
    template = templates[index]
    if test_numbers:  # a template with a number slot
        numbered = [i for i, t in enumerate(templates) if '{a}' in t]
        index = numbered[int(rng.integers(len(numbered)))]
        template = templates[index]
    template_ids.append(f'{split}:turn:{index}')
    side = 'left' if rng.uniform() < 0.5 else 'right'
    if template.endswith('[90]'):
        degrees, text = 90, template[:-5].format(d=side)
    elif template.endswith('[180]'):
        degrees, side, text = 180, 'left', template[:-6]
    else:
        pool = TEST_ANGLES if test_numbers else TRAIN_ANGLES
        degrees = int(_pick(rng, pool))
        text = template.format(d=side, a=angle_phrase(degrees, rng))
    return turn_step(text, degrees if side == 'left' else -degrees)


def _forward(rng, split, template_ids, test_numbers: bool, layout, pose, max_len: float = 5.0):
    templates = TEMPLATES[split]['forward']
    index = int(rng.integers(len(templates)))
    template_ids.append(f'{split}:forward:{index}')
    pool = [d for d in (TEST_DISTANCES if test_numbers else TRAIN_DISTANCES) if d <= max_len]
    for _ in range(12):
        metres = float(_pick(rng, pool))
        x, y, yaw = pose
        end = (x + (metres + 0.45) * math.cos(yaw), y + (metres + 0.45) * math.sin(yaw))
        if line_is_free(layout, (x, y), end, ROBOT_RADIUS + 0.1):
            return forward_step(templates[index].format(m=distance_phrase(metres, rng)), metres)
    return None


def _hard_distractor(rng, scene, target, pairs, pose):
    """A same-colour or same-category object nearer or more central than the target."""
    same = [p for p in pairs if (p[0] == target.colour) != (p[1] == target.shape)]
    colour, category = _pick(rng, same)
    t_dist = math.hypot(target.position[0] - pose[0], target.position[1] - pose[1])
    t_bear = abs(_bearing(pose, target))

    def harder(o):
        return (math.hypot(o.position[0] - pose[0], o.position[1] - pose[1]) < t_dist - 0.2
                or abs(_bearing(pose, o)) < t_bear - math.radians(3))

    return scene.place(lambda p: _make_object(rng, colour, category, p, 'distractor'),
                       lambda: scene.view_point((1.2, max(1.3, t_dist)), 1.0), check=harder)


def _relational(rng, scene, pairs, pose, test_words):
    kind = _pick(rng, ('nearest', 'left', 'next_to'))
    categories = sorted({k for _, k in pairs})
    category = _pick(rng, categories)
    colours = [c for c, k in pairs if k == category]
    layout0 = scene.layout(())

    def make(role, colour=None):
        colour = colour or _pick(rng, colours)
        return lambda p: _make_object(rng, colour, category, p, role)

    def seen(o):
        return (visible(layout0, pose, o) and line_is_free(layout0, pose[:2], o.position,
                                                                     ROBOT_RADIUS + 0.05))
    word = _category_word(category, rng, test_words)
    if kind == 'nearest':
        near = scene.place(make('target'), lambda: scene.view_point((1.2, 3.0)), check=seen, gap=0.6)
        if near is None:
            return None
        d0 = math.hypot(near.position[0] - pose[0], near.position[1] - pose[1])
        far = scene.place(make('distractor'), lambda: scene.view_point((d0 + 1.0, d0 + 3.0), 1.2))
        if far is None:
            return None
        return near, f'nearest {word}' if rng.uniform() < 0.7 else f'closest {word}'
    if kind == 'left':
        side = 'left' if rng.uniform() < 0.5 else 'right'
        sign = 1.0 if side == 'left' else -1.0
        target = scene.place(make('target'), scene.view_point,
                             check=lambda o: seen(o) and sign * _bearing(pose, o) > math.radians(8), gap=0.6)
        if target is None:
            return None
        other = scene.place(make('distractor'), scene.view_point,
                            check=lambda o: -sign * _bearing(pose, o) > math.radians(8))
        if other is None:
            return None
        return target, f'{word} on your {side}'
    return _next_to(rng, scene, pairs, pose, test_words, category, word, make, seen)


def _next_to(rng, scene, pairs, pose, test_words, category, word, make, seen):
    """The target beside a unique anchor of another category; its twin far from the anchor."""
    anchor_pairs = [p for p in pairs if p[1] != category]
    a_colour, a_category = _pick(rng, anchor_pairs)
    anchor = scene.place(lambda p: _make_object(rng, a_colour, a_category, p, 'distractor'),
                         lambda: scene.view_point((1.8, 4.5)), check=seen)
    if anchor is None:
        return None

    def beside():
        angle, gap = rng.uniform(0, 2 * math.pi), anchor.radius + rng.uniform(0.45, 0.65) + 0.2
        return anchor.position[0] + gap * math.cos(angle), anchor.position[1] + gap * math.sin(angle)

    target = scene.place(make('target'), beside, gap=0.3, check=lambda o: line_is_free(
        scene.layout(()), pose[:2], o.position, ROBOT_RADIUS + 0.05))
    if target is None:
        return None
    twin = scene.place(make('distractor'), scene.free_point, check=lambda o: math.hypot(
        o.position[0] - anchor.position[0], o.position[1] - anchor.position[1]) > 2.0)
    if twin is None:
        return None
    a_word = _category_word(a_category, rng, test_words)
    return target, f'{word} next to the {a_word}'


def _place_blocker(rng, scene, target, pose) -> bool:
    """An obstacle across the straight way to the target (low or tall), with a way around."""
    x, y, _ = pose
    tx, ty = target.position
    heading = math.atan2(ty - y, tx - x)
    length = math.hypot(tx - x, ty - y)
    for _ in range(20):
        f = rng.uniform(0.4, 0.6)
        bx, by = x + f * length * math.cos(heading), y + f * length * math.sin(heading)
        blocker = _clutter(rng, (bx, by), long_side=float(rng.uniform(0.4, 0.8)),
                           yaw=heading + math.pi / 2, tall=rng.uniform() < 0.5)
        # the footprint circle over-covers a long crate; that is what planning avoids
        if math.hypot(bx - tx, by - ty) < blocker.radius + target.radius + 0.5:
            continue
        if math.hypot(bx - x, by - y) < blocker.radius + ROBOT_RADIUS + 0.5:
            continue
        if not inside_floor(scene.layout(()), bx, by, blocker.radius * 0.5):
            continue
        scene.objects.append(blocker)
        if _reachable(scene.layout(), target) is not None:
            return True
        scene.objects.pop()
    return False


_SEQUENCES = (('goto', 'turn'), ('turn', 'goto'), ('turn', 'forward'), ('forward', 'turn'),
              ('goto', 'goto'), ('forward', 'goto'), ('turn', 'forward', 'turn'),
              ('forward', 'turn', 'goto'), ('goto', 'turn', 'goto'))


def _multi_step(rng, split, scene, template_ids, pairs, pose):
    planned = _plan_steps(rng, split, scene, template_ids, pairs, pose)
    if planned is None:
        return None
    steps, targets = planned
    # fill the room, then write the words (targets must be unique by their words)
    for _ in range(int(rng.integers(1, 4))):
        colour, category = _pick(rng, pairs)
        if any((colour, category) == (t.colour, t.shape) for t in targets):
            continue
        scene.place(lambda p, c=colour, k=category: _make_object(rng, c, k, p, 'distractor'),
                    scene.free_point)
    layout = scene.layout()
    out = _write_steps(rng, split, template_ids, layout, pose, steps)
    # turns are in place; a goto step's phrase must be unique in the room (checked by the round trip)
    return None if out is None else (out, layout)


def _plan_steps(rng, split, scene, template_ids, pairs, pose):
    """A sequence's steps: ('goto', target placed), ('turn', its step) or ('forward', heading),
    and the targets; None when a target does not fit or a forward's start is unknown."""
    kinds = _SEQUENCES[int(rng.integers(len(_SEQUENCES)))]
    steps, heading, known_pose = [], pose[2], True
    targets = []
    for kind in kinds:
        if kind == 'goto':
            colour, category = _pick(rng, pairs)
            if any((colour, category) == (t.colour, t.shape) for t in targets):
                return None
            target = scene.place(lambda p, c=colour, k=category: _make_object(rng, c, k, p, 'target'),
                                 scene.free_point, gap=0.6)
            if target is None:
                return None
            targets.append(target)
            steps.append(('goto', target))
            known_pose = False
        elif kind == 'turn':
            steps.append(('turn', _turn(rng, split, template_ids, False)))
            heading += steps[-1][1].parameters['angle']
        else:
            if not known_pose:
                return None
            steps.append(('forward', heading))
    return steps, targets


def _write_steps(rng, split, template_ids, layout, pose, steps):
    """The planned steps as scenarios with their words; None when a goal or a drive does not fit."""
    out, x, y = [], pose[0], pose[1]
    for kind, value in steps:
        if kind == 'goto':
            length = _reachable(layout, value)
            if length is None:
                return None
            index = int(rng.integers(len(TEMPLATES[split]['goto'])))
            template_ids.append(f'{split}:goto:{index}')
            text = TEMPLATES[split]['goto'][index].format(t=f'{value.colour} {value.shape}')
            out.append(goto_step(text, value, length + 4.0, search=True))
        elif kind == 'turn':
            out.append(value)
        else:
            step = _forward(rng, split, template_ids, False, layout, (x, y, value), max_len=3.0)
            if step is None:
                return None
            x += step.parameters['distance'] * math.cos(value)
            y += step.parameters['distance'] * math.sin(value)
            out.append(step)
    return out
