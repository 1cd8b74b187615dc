"""The suite's tiers and controls as episode jobs, and how each job's scene is set up.

A job is (label, episode, mode): the scene is `NavSim(world='v2').reset(episode, kind=tier)` on
the suite's split and seed; `mode` says what the policy is told:
  task      the generator's instruction (every tier but retarget)
  retarget  the distractor tier's room of the same episode (it always shows another named object;
            a goto room mostly shows only its target), another named object the camera sees in
            the first frame, named by colour + category in a test template (the judge re-targets)
  blind     the same scene as the tier's own job; the robot side (PolicyLoop, its sequencer and
            done rule) gets the real sentence, the model gets BLIND_TEXT in its place (BlindEngine):
            the robot side refuses a sentence that names nothing ("go"), so telling the loop "go"
            would only measure the refusal, never whether the model uses the words
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# suite tier -> the generator's tier (vla_nav.sim.tasks) whose scenes it drives
SCENE_TIER = {'goto': 'goto', 'distractor': 'distractor', 'retarget': 'distractor', 'search': 'search',
              'detour': 'detour', 'held_out_pair': 'held_out_pair',
              'held_out_words': 'held_out_words', 'numbers': 'numbers',
              'multi_step': 'multi_step', 'stop': 'stop', 'relational': 'relational',
              'turn': 'turn', 'forward': 'forward', 'far': 'far'}
SUITE_TIERS = ('goto', 'distractor', 'retarget', 'search', 'detour', 'held_out_pair',
               'held_out_words', 'numbers', 'multi_step', 'stop', 'relational')
EXTRA_TIERS = ('turn', 'forward', 'far')  # not in the default suite; --tiers may name them
BLIND_TEXT = 'go'                         # the language-blind control's neutral sentence
BLIND_PREFIX = 'blind:'                   # a control's label: 'blind:<tier>'
END_OBJECT_RANGE = 1.0                    # m: the nearest object this close (surface) = where it ended


class BlindEngine:
    """An engine wrapper for the language-blind control: every instruction the loop hands the
    model is replaced by BLIND_TEXT; everything else is the wrapped engine's."""

    def __init__(self, engine) -> None:
        self._engine = engine

    def set_instruction(self, text: str) -> None:
        self._engine.set_instruction(BLIND_TEXT)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


@dataclass(frozen=True)
class Job:
    label: str        # suite tier, or 'blind:<tier>'
    episode: int
    mode: str         # task | retarget | blind

    @property
    def tier(self) -> str:
        return self.label.removeprefix(BLIND_PREFIX)


def build_jobs(tiers: list[str], blind_tiers: list[str], episodes: int,
               first_episode: int = 0) -> list[Job]:
    """Every episode to run, in a fixed order. retarget needs the distractor runs of the same
    rooms for the retarget-swap control, so asking for retarget adds distractor; a language-blind
    control adds its tier (the figure it is compared with)."""
    unknown = [t for t in [*tiers, *blind_tiers] if t not in SCENE_TIER]
    if unknown:
        raise ValueError(f'unknown tier(s) {unknown}; known: {", ".join(SCENE_TIER)}')
    if episodes < 1:
        raise ValueError(f'episodes per tier must be >= 1, got {episodes}')
    if 'retarget' in blind_tiers:
        raise ValueError('no language-blind retarget: blind, a retarget room is the distractor '
                         'tier\'s scene (use --blind-tiers distractor)')
    ordered = list(dict.fromkeys(tiers))
    ordered += [t for t in dict.fromkeys(blind_tiers) if t not in ordered]   # a control's reference
    if 'retarget' in ordered and 'distractor' not in ordered:
        ordered.insert(ordered.index('retarget'), 'distractor')
    indices = range(first_episode, first_episode + episodes)
    jobs = [Job(t, e, 'retarget' if t == 'retarget' else 'task') for t in ordered for e in indices]
    jobs += [Job(BLIND_PREFIX + t, e, 'blind') for t in dict.fromkeys(blind_tiers) for e in indices]
    return jobs


def prepare(sim, job: Job, seed: int):
    """Reset `sim` to the job's scene; (first observation, the sentence the policy is told, a note
    for the record) or None when a retarget room has no other object to name."""
    observation = sim.reset(job.episode, kind=SCENE_TIER[job.tier])
    if job.mode in ('task', 'blind'):
        return observation, sim.scenario.instruction, {}
    original = sim.scenario
    chosen = retarget(sim, seed, job.episode)
    if chosen is None:
        return None
    return sim.observation, chosen, {'original_instruction': original.instruction,
                                     'original_target': original.target.name}


def retarget(sim, seed: int, episode: int) -> str | None:
    """Name another visible object of the room (not the generator's target) so that the judge
    resolves the sentence to exactly it; re-targets `sim` and returns the sentence, or None."""
    from vla_nav.sim.tasks import TEMPLATES

    target = sim.scenario.target
    seen = [o for o in sim.visible_objects(sim.min_target_pixels)
            if o.role != 'clutter' and o.position != target.position]
    rng = np.random.default_rng([seed, episode, 0x7E7A])
    templates = TEMPLATES['test']['goto']
    for index in rng.permutation(len(seen)):
        obj = seen[int(index)]
        text = templates[int(rng.integers(len(templates)))].format(t=f'{obj.colour} {obj.shape}')
        task = sim.set_instruction(text)
        if task is not None and task.target is not None and task.target.position == obj.position:
            return text
    return None


def end_object(layout, pose) -> int | None:
    """Index (in layout.objects) of the object the robot ended at: of the named objects within
    END_OBJECT_RANGE of its surface, the one the robot faces (smallest bearing off its heading:
    a goal reached is faced, while a neighbour of the target can be nearer); None when it ended
    near nothing."""
    best, best_bearing = None, math.inf
    x, y, yaw = pose[0], pose[1], pose[2]
    for index, obj in enumerate(layout.objects):
        dx, dy = obj.position[0] - x, obj.position[1] - y
        if obj.role == 'clutter' or math.hypot(dx, dy) - obj.radius > END_OBJECT_RANGE:
            continue
        bearing = abs(math.remainder(math.atan2(dy, dx) - yaw, math.tau))
        if bearing < best_bearing:
            best, best_bearing = index, bearing
    return best
