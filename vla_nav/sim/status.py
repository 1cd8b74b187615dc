"""The simulator's episode report as sim_node publishes it on `sim/status` (JSON), without ROS."""
from __future__ import annotations

from typing import Any


def episode_outcome(sim, instruction: str) -> str:
    """running | success | collision | timeout | failure; an instruction the room's parser did
    not understand is a 'failure' at once."""
    if sim.scenario is None and instruction.strip():
        return sim.outcome or 'failure'
    return sim.outcome or 'running'


def episode_status(sim, instruction: str, sim_time: float) -> dict[str, Any]:
    """instruction, kind, target, outcome, time, time_limit, sim_time, pose, twist, metrics."""
    scenario, obs = sim.scenario, sim.observation
    return {'instruction': instruction, 'kind': None if scenario is None else scenario.kind,
            'target': None if scenario is None or scenario.target is None else scenario.target.name,
            'outcome': episode_outcome(sim, instruction), 'time': round(obs.time, 3),
            'time_limit': None if scenario is None else scenario.time_limit,
            'sim_time': round(sim_time, 3), 'pose': [round(v, 4) for v in obs.pose],
            'twist': [round(v, 4) for v in obs.twist], 'metrics': sim.metrics()}
