"""Run the suite's jobs: one simulator + engine per worker process, a tqdm bar, records in job
order (deterministic whatever the number of workers)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from vla_nav.tools.suite.tiers import BLIND_TEXT, BlindEngine, Job, end_object, prepare

_WORKER: dict = {}


@dataclass(frozen=True)
class SuiteSettings:
    split: str
    seed: int
    plot_episodes: int = 8     # trajectories kept per tier (for its PNG)
    camera_mount: str = ''     # rooms.parse_camera_mount: every scene seen from it ('' = drawn)


def load_model_engine(model_dir: str, backend: str, device: str):
    """The default engine factory: the published model through vla_nav.runtime.load_engine."""
    from vla_nav.runtime import load_engine
    return load_engine(model_dir, backend=backend, device=device)


def init_worker(engine_factory: Callable, factory_args: tuple, suite: SuiteSettings,
                settings) -> None:
    """Build this process's simulator (v2 world, suite split and seed) and engine. The factory
    is called with the simulator as a keyword when it accepts one (test oracles read it)."""
    import inspect

    from vla_nav.config import load_config
    from vla_nav.sim import NavSim
    from vla_nav.sim.robot import RobotLimits
    from vla_nav.sim.rooms import parse_camera_mount

    config = load_config()
    sim = NavSim(split=suite.split, seed=suite.seed, image_size=settings.image_size,
                 control_dt=1.0 / settings.control_rate,
                 limits=RobotLimits.from_executor(config.executor),
                 stop_words=config.stop_words, world='v2',
                 camera_mount=parse_camera_mount(suite.camera_mount) if suite.camera_mount else None)
    wants_sim = 'sim' in inspect.signature(engine_factory).parameters
    engine = engine_factory(*factory_args, sim=sim) if wants_sim else engine_factory(*factory_args)
    _WORKER.update(sim=sim, engine=engine, suite=suite, settings=settings,
                   executor=config.executor)


def close_worker() -> None:
    sim = _WORKER.pop('sim', None)
    if sim is not None:
        sim.close()


def run_job(job: Job, keep_trajectory: bool) -> tuple[dict, object]:
    """One episode of the suite; (record, layout when the trajectory is kept)."""
    from vla_nav.tools.eval_sim import drive

    sim, suite = _WORKER['sim'], _WORKER['suite']
    prepared = prepare(sim, job, suite.seed)
    base = {'label': job.label, 'tier': job.tier, 'mode': job.mode, 'episode': job.episode}
    if prepared is None:
        return {**base, 'outcome': 'skipped', 'reason': 'no other visible object to name'}, None
    observation, text, note = prepared
    start = _target_at_start(sim, observation.pose, job.tier)
    engine = BlindEngine(_WORKER['engine']) if job.mode == 'blind' else _WORKER['engine']
    record = drive(engine, sim, observation, text, _WORKER['settings'], _WORKER['executor'],
                   keep_trajectory)
    layout = sim.layout
    target = sim.scenario.target
    record.update(**base, **note, policy_text=BLIND_TEXT if job.mode == 'blind' else text,
                  target_index=None if target is None else _index_of(layout, target),
                  end_object=end_object(layout, sim.observation.pose), **start)
    return record, (layout if keep_trajectory else None)


def _target_at_start(sim, pose, tier: str = '') -> dict:
    """The named target as the episode starts: metres from the robot to its surface and its
    pixels in the first camera frame (report.by_target_distance bins success by the first); for
    a search scene also whether turning in place brings it into view (report.search_by_start);
    for a detour scene the side the expert's plan passes the obstacle on (report.detour_by_side)."""
    from vla_nav.sim.rooms import visible_by_turning

    target = sim.scenario.target if sim.scenario is not None else None
    if target is None:
        return {}
    index = _index_of(sim.layout, target)
    pixels = sim.world.pixel_counts().get(index, 0) if index is not None else 0
    distance = math.dist(target.position, pose[:2]) - target.radius
    start = {'start_target_m': round(distance, 3), 'start_target_pixels': int(pixels)}
    if tier == 'search':
        start['seen_by_turning'] = visible_by_turning(sim.layout, pose, target)
    if tier == 'detour':
        start['detour_side'] = sim.expert.way_round(sim.layout, target, pose,
                                                    sim.scenario.parameters['stop_distance'])
    return start


def _index_of(layout, obj) -> int | None:
    return next((i for i, o in enumerate(layout.objects) if o.position == obj.position), None)


def run_jobs(jobs: list[Job], engine_factory: Callable, factory_args: tuple,
             suite: SuiteSettings, settings, workers: int = 1, progress: bool = True
             ) -> tuple[list[dict], dict]:
    """(records in job order, {job index: layout} for the trajectories kept)."""
    from tqdm import tqdm

    keep = _kept(jobs, suite.plot_episodes)
    records: dict[int, dict] = {}
    layouts: dict[int, object] = {}
    bar = tqdm(total=len(jobs), desc='eval-sim --suite', unit='episode', disable=not progress,
               dynamic_ncols=True)
    init_args = (engine_factory, factory_args, suite, settings)

    def collect(index: int, record: dict, layout) -> None:
        records[index] = record
        if layout is not None:
            layouts[index] = layout
        bar.update(1)
        bar.set_postfix(tier=record['label'], refresh=False)

    if workers <= 1:
        init_worker(*init_args)
        try:
            for index, job in enumerate(jobs):
                collect(index, *run_job(job, index in keep))
        finally:
            close_worker()
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context('spawn'),
                                 initializer=init_worker, initargs=init_args) as pool:
            futures = {pool.submit(run_job, job, index in keep): index
                       for index, job in enumerate(jobs)}
            for future in as_completed(futures):
                collect(futures[future], *future.result())
    bar.close()
    return [records[i] for i in range(len(jobs))], layouts


def _kept(jobs: list[Job], per_label: int) -> set[int]:
    """Job indices whose trajectories are kept: the first `per_label` of each label."""
    seen: dict[str, int] = {}
    kept = set()
    for index, job in enumerate(jobs):
        if seen.get(job.label, 0) < per_label:
            kept.add(index)
            seen[job.label] = seen.get(job.label, 0) + 1
    return kept
