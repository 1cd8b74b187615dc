"""`python -m vla_nav record-sim`: expert episodes from the built-in simulator as rosbag2 files.

One bag per episode, named `<split>_s<seed>_e<episode>`: the instruction once at the start, then
per control step the camera frame (rgb8) and odom at the observation time and the expert's cmd_vel
at the same stamp (the command issued for that frame; the final frame gets a zero command at the
goal, the expert's action anywhere else: a kept collision or timeout).
Stamps are the sim clock plus BAG_START_S. The bag's custom_data holds split, seed, episode, kind,
outcome and noise.

--noise SCALE (DART-style recovery data, default 0 = clean): the EXECUTED command is the expert's
action plus a seeded perturbation (`CommandNoise`: Ornstein-Uhlenbeck offsets in bursts, scaled to
the expert's cruise speed and turn rate, clamped to the robot limits, and short pauses that stop
the base, more often while the expert brakes so "stopped short" states occur), but /cmd_vel
always carries the clean `expert_action()` of the state actually reached, so a policy trained on
it learns to recover from states the clean expert never visits. The executed command goes to
EXECUTED_TOPIC (the dataset reader ignores it); odom reflects the executed motion.

--driver MODEL (DAgger data): the trained policy drives, through the real PolicyLoop and
ChunkExecutor as in eval-sim, and /cmd_vel carries the expert's label of every state the policy
reached; so the data shows what to do in the states the policy's own mistakes lead to (heading for
a distractor, stopping short, brushing an obstacle). When the policy keeps the base at rest for
STALL_S while the expert wants to move, the expert takes over for the rest of the episode and the
recording goes on to the goal. Every outcome is kept: the labels are right whatever happened.
--rescue adds near-miss takeovers: when the policy's command, held RESCUE_LOOKAHEAD_S, would touch
an object or wall (`NavSim.would_collide`), the expert drives for RESCUE_S, then the policy again;
the episode goes on past the obstacle instead of ending at it (`rescues` in the metadata).

Resumable: a bag is written under a hidden `.partial-<pid>/` folder and moved when complete, so an
interrupted run leaves no half bag under its final name; the next run removes stale partial
folders and skips finished episodes. Failed expert episodes (collision/timeout) are dropped unless
--keep-failures; a small marker in `.failed/` records them so a resumed run does not redo them.
`record_sim.json` pins the recording settings: resuming with other settings is refused.

--world v2 records the v2 world (vla_nav/sim/tasks.py); /instruction then carries the running
step's clause, written again at each step change (the dataset starts a segment there), and the
metadata adds world, tier, the step clauses and the times each step was done.

--camera-mount low|high|HEIGHT,PITCH,FOV (v2 only) replaces every episode's drawn camera mount
with this one (vla_nav.sim.rooms.CAMERA_PRESETS: outside the training jitter CAMERA_RANGES), the
rooms and tasks unchanged: data from "another robot" that no record-sim training run has seen
(scripts/finetune_example.sh fine-tunes on it). The metadata adds the mount.

--augment records every camera frame through the training image augmentation
(vla_nav.sim.augment): one look per episode (colour gains, contrast, brightness, blur, noise level,
as a camera keeps them) and fresh sensor noise per frame, seeded by seed and episode. The labels,
odometry and motion are those of the clean run (a --driver policy sees the clean frames), so a
recording with and without it differs in the images only. Training encodes each recorded frame
once (the trunk cache), so this is where the augmentation happens.

Modules: noise.py (the --noise command perturbation), driver.py (the --driver PolicyDriver: a
ClosedLoop), this file (settings, the episode recorder, resume and the worker pool).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from vla_nav.config import RECORD_SETTINGS_FILE, load_config
from vla_nav.tools.record_sim.driver import RESCUE_LOOKAHEAD_S, RESCUE_S, PolicyDriver
from vla_nav.tools.record_sim.noise import CommandNoise, NoiseConfig

SETTINGS_FILE = RECORD_SETTINGS_FILE   # the recording's settings (world included: config.recorded_world)
BAG_START_S = 1.0   # stamps = this + sim time: a zero stamp reads as "unset" to ROS tools
PARTIAL_PREFIX = '.partial-'
FAILED_DIR = '.failed'
EXECUTED_TOPIC = '/record_sim/executed_cmd_vel'   # what drove the base (--noise > 0 or --driver)
AUGMENT_SALT = 0x61756720   # --augment's random stream, apart from the scene's and the noise's


@dataclass(frozen=True)
class RecordSettings:
    """What every bag of one output folder shares (pinned in record_sim.json)."""

    split: str
    seed: int
    image_size: int
    control_dt: float
    storage: str
    compress: bool
    noise: float = 0.0
    driver: str = ''               # model dir of the policy that drives (DAgger); '' = the expert
    driver_backend: str = 'onnx'
    world: str = 'v1'
    camera_mount: str = ''         # v2: forced mount (rooms.parse_camera_mount); '' = drawn per episode
    augment: bool = False          # frames through sim.augment (one look per episode, noise per frame)
    tiers: str = ''                # v2: 'detour,search' = episode e is tier e % 2 ...; '' = drawn
    hidden_targets: bool = False   # v2 search only: skip scenes where a turn in place shows the target
    rescue: bool = False           # --driver: the expert takes the near misses (driver.RESCUE_S)

    def tier_of(self, episode: int) -> str | None:
        """The tier `episode` is forced to (`tiers` in turn), or None: drawn as the split draws it."""
        names = self.tiers.split(',') if self.tiers else []
        return names[episode % len(names)] if names else None

    def __post_init__(self) -> None:
        if self.world not in ('v1', 'v2'):
            raise ValueError(f'world must be v1 or v2, got {self.world!r}')
        if self.camera_mount:
            from vla_nav.sim.rooms import parse_camera_mount
            parse_camera_mount(self.camera_mount)
            if self.world != 'v2':
                raise ValueError('--camera-mount needs --world v2 (the v1 world has one fixed mount)')
        self._check_tiers()
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f'noise scale must be in [0, 1], got {self.noise}')
        if self.noise and self.driver:
            raise ValueError('--noise and --driver exclude each other: the policy drives or the '
                             'noisy expert does')
        if self.rescue and not self.driver:
            raise ValueError('--rescue needs --driver: the expert rescues a driving policy')
        if self.split not in ('train', 'test'):
            raise ValueError(f'split must be train or test, got {self.split!r}')
        if self.image_size < 8:
            raise ValueError(f'image size must be >= 8 px, got {self.image_size}')
        if self.control_dt <= 0:
            raise ValueError(f'control dt must be > 0, got {self.control_dt}')
        if self.storage not in ('mcap', 'sqlite3'):
            raise ValueError(f'format must be mcap or sqlite3, got {self.storage!r}')

    def _check_tiers(self) -> None:
        if self.tiers:
            from vla_nav.sim.tasks import TEST_TIERS, TIERS
            known = TIERS + (TEST_TIERS if self.split == 'test' else ())
            unknown = [name for name in self.tiers.split(',') if name not in known]
            if self.world != 'v2' or unknown:
                raise ValueError(f'--tiers needs --world v2 and tiers of {known}; got {self.tiers!r}')
        if self.hidden_targets and self.tiers != 'search':
            raise ValueError('--hidden-targets needs --world v2 --tiers search')


def episode_name(settings: RecordSettings, episode: int) -> str:
    return f'{settings.split}_s{settings.seed}_e{episode:06d}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sim = load_config().sim_node
    parser.add_argument('--episodes', type=int, required=True,
                        help='episode indices 0..N-1 are recorded (deterministic per split+seed)')
    parser.add_argument('--out', required=True, help='output folder (one bag folder per episode)')
    parser.add_argument('--split', choices=('train', 'test'), default='train')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, default=sim.image_width,
                        help='square camera resolution in px (default: sim_node image_width)')
    parser.add_argument('--control-dt', type=float, default=1.0 / sim.camera_rate,
                        help='s per control step = camera period (default: 1 / sim_node camera_rate)')
    parser.add_argument('--format', dest='storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--no-compress', dest='compress', action='store_false',
                        help='mcap: do not zstd-compress chunks (compression is on by default)')
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                        help='recording processes (rendering is the bottleneck)')
    parser.add_argument('--keep-failures', action='store_true',
                        help='also write expert episodes that ended in collision/timeout')
    parser.add_argument('--noise', type=float, default=0.0, metavar='SCALE',
                        help='DART-style recovery data: drive the base with the expert action plus '
                             'seeded correlated noise (std SCALE x the expert cruise speed and turn '
                             'rate, with pauses); /cmd_vel still records the clean expert label '
                             '(0: clean, default)')
    parser.add_argument('--driver', default='', metavar='MODEL',
                        help='DAgger data: this trained policy drives (PolicyLoop + ChunkExecutor), '
                             '/cmd_vel records the expert label of every state it reaches; the '
                             'expert takes over when the policy stalls; every outcome is kept')
    parser.add_argument('--driver-backend', default='onnx', help='onnx | torch | module:factory')
    parser.add_argument('--rescue', action='store_true',
                        help='with --driver: when the policy is about to touch an object or wall '
                             f'(its command held {RESCUE_LOOKAHEAD_S:g} s), the expert drives for '
                             f'{RESCUE_S:g} s, then the policy again; the episode goes on past the '
                             'near miss')
    parser.add_argument('--world', choices=('v1', 'v2'), default='v1',
                        help='v1: the world models/default was trained on; v2: rooms that need '
                             'planning, 10 categories, search / relational / multi-step tasks')
    parser.add_argument('--camera-mount', default='', metavar='low|high|HEIGHT,PITCH,FOV',
                        help='v2: every episode seen from this camera mount (m, deg down, deg fov) '
                             'instead of the drawn one; the presets lie outside the training jitter')
    parser.add_argument('--augment', action='store_true',
                        help='record the frames through the training image augmentation: one look '
                             '(colour, contrast, brightness, blur) per episode, noise per frame')
    parser.add_argument('--tiers', default='', metavar='T1,T2,...',
                        help='v2: record only these tiers, in turn (episode e is tier e mod N: '
                             'a balanced or targeted recording); default: drawn as the split draws')
    parser.add_argument('--hidden-targets', action='store_true',
                        help='with --tiers search: record only the scenes where no turn in place '
                             'shows the target (the robot must drive to look; about 1 in 6), '
                             'skip the rest')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


# --------------------------------------------------------------------------------------------
# One episode (runs in a worker process)

_SIMS: dict = {}


def _sim_for(settings: RecordSettings):
    """One NavSim per process and settings: its compiled model is reused across episodes."""
    key = (settings.split, settings.seed, settings.image_size, settings.control_dt, settings.world,
           settings.camera_mount)
    if key not in _SIMS:
        from vla_nav.sim import NavSim
        from vla_nav.sim.robot import RobotLimits
        from vla_nav.sim.rooms import parse_camera_mount
        _SIMS.clear()
        config = load_config()
        _SIMS[key] = NavSim(split=settings.split, seed=settings.seed,
                            image_size=(settings.image_size, settings.image_size),
                            control_dt=settings.control_dt,
                            limits=RobotLimits.from_executor(config.executor),
                            stop_words=config.stop_words, world=settings.world,
                            camera_mount=(parse_camera_mount(settings.camera_mount)
                                          if settings.camera_mount else None))
    return _SIMS[key]


_DRIVERS: dict = {}


def _driver_for(settings: RecordSettings) -> PolicyDriver | None:
    """One loaded policy per process and model (None when the expert drives)."""
    if not settings.driver:
        return None
    key = (settings.driver, settings.driver_backend, settings.control_dt, settings.rescue)
    if key not in _DRIVERS:
        from vla_nav.runtime import load_engine
        _DRIVERS.clear()
        engine = load_engine(settings.driver, backend=settings.driver_backend)
        _DRIVERS[key] = PolicyDriver(engine, load_config().executor, settings.control_dt,
                                     rescue=settings.rescue)
    return _DRIVERS[key]


def _ns(sim_time: float) -> int:
    return int(round((BAG_START_S + sim_time) * 1e9))


def record_episode(settings: RecordSettings, episode: int, out_dir: str, keep_failures: bool
                   ) -> dict:
    """Run the expert on one episode and write its bag; returns a summary dict."""
    from vla_nav.data.bags import EpisodeBagWriter

    name = episode_name(settings, episode)
    final = Path(out_dir) / name
    # written under a hidden per-process folder with its final name (rosbag2 names its data file
    # after the folder), then moved into place: a bag under its final name is always complete
    partial = Path(out_dir) / f'{PARTIAL_PREFIX}{os.getpid()}' / name
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(exist_ok=True)
    sim = _sim_for(settings)
    observation = sim.reset(episode, kind=settings.tier_of(episode))
    scenario = sim.scenario
    if settings.hidden_targets and _seen_by_turning(sim, observation.pose):
        summary = {'name': name, 'episode': episode, 'split': settings.split, 'seed': settings.seed,
                   'instruction': scenario.instruction, 'kind': scenario.kind, 'outcome': 'skipped',
                   'frames': 0, 'driver': settings.driver, 'takeover_s': None}
        _write_marker(out_dir, name, summary)
        return {**summary, 'written': False, 'bytes': 0}
    # a stop task is judged on not moving at all: perturbing it would only produce failures
    scale = 0.0 if scenario.kind == 'stop' else settings.noise
    nominal = (sim.expert.config.cruise_speed, sim.expert.config.turn_rate)
    noise = CommandNoise(NoiseConfig(scale), nominal, sim.limits, settings.seed, episode)
    driver = _driver_for(settings) if scenario.kind != 'stop' else None
    if driver is not None:
        driver.start(scenario.instruction, _ns(observation.time) * 1e-9)
    with EpisodeBagWriter(partial, storage=settings.storage, compress=settings.compress) as writer:
        observation, frames, perturbed, outcome = _drive_episode(
            sim, writer, observation, driver, noise, settings, _camera_augment(settings, episode))
        summary = {'name': name, 'episode': episode, 'split': settings.split,
                   'seed': settings.seed, 'instruction': scenario.instruction,
                   'kind': scenario.kind, 'outcome': outcome, 'frames': frames,
                   'duration_s': round(observation.time, 3), 'noise': settings.noise,
                   'perturbed_frames': perturbed, 'driver': settings.driver,
                   'takeover_s': (None if driver is None or driver.takeover_at is None
                                  else round(driver.takeover_at - BAG_START_S, 3))}
        if settings.rescue:
            summary['rescues'] = 0 if driver is None else driver.rescues
        if settings.augment:
            summary['augment'] = True
        if settings.world != 'v1':
            summary.update(world=settings.world, tier=scenario.tier,
                           steps=json.dumps([s.instruction for s in scenario.steps]),
                           step_times=json.dumps([round(t, 3) for t in sim.judge.step_times]),
                           camera=json.dumps(asdict(sim.layout.camera)))
        writer.set_metadata(**summary)
    if outcome != 'success' and not keep_failures:
        shutil.rmtree(partial)
        _write_marker(out_dir, name, summary)
        return {**summary, 'written': False, 'bytes': 0}
    size = sum(f.stat().st_size for f in partial.iterdir())
    if final.exists():   # a stale copy from an older run with --keep-failures
        shutil.rmtree(final)
    partial.rename(final)
    (Path(out_dir) / FAILED_DIR / f'{name}.json').unlink(missing_ok=True)
    return {**summary, 'written': True, 'bytes': size}


def _camera_augment(settings: RecordSettings, episode: int):
    """--augment: the episode's look, applied to each frame with fresh noise; else the identity."""
    if not settings.augment:
        return lambda rgb: rgb
    import numpy as np

    from vla_nav.sim.augment import apply_look, draw_look

    rng = np.random.default_rng((AUGMENT_SALT, settings.seed, episode))
    look = draw_look(rng)
    return lambda rgb: apply_look(rgb, look, rng)


def _drive_episode(sim, writer, observation, driver, noise, settings: RecordSettings, augment):
    """Write the frames (through `augment`), odometry and expert labels of one episode until it is
    done (and the frame after it); the expert, the noisy expert or the policy (driver) drives.
    Returns the last observation, the frame count, the count of perturbed frames and the outcome."""
    from vla_nav.data.bags import humble_typestore

    types = humble_typestore().types
    frames = perturbed = 0
    outcome = None
    writer.write_instruction(_ns(observation.time), sim.step_text)
    step = observation.step
    while True:
        stamp = _ns(observation.time)
        if observation.step != step:   # v2 multi-step: the next clause starts a new segment
            step = observation.step
            writer.write_instruction(stamp, sim.step_text)
        writer.write_image(stamp, augment(observation.rgb))
        x, y, yaw = observation.pose
        writer.write_odom(stamp, x, y, yaw, *observation.twist)
        frames += 1
        if outcome is not None:   # at the goal: stay stopped; anywhere else: the expert's way
            writer.write_cmd_vel(stamp, *((0.0, 0.0) if outcome == 'success'
                                          else sim.expert_action()))
            return observation, frames, perturbed, outcome
        linear, angular = sim.expert_action()        # the label, from the state reached
        writer.write_cmd_vel(stamp, linear, angular)
        if driver is not None:
            executed = driver.command(observation, (linear, angular), stamp * 1e-9,
                                      would_collide=sim.would_collide)
        else:
            executed = noise.perturb((linear, angular), observation.twist, settings.control_dt)
        if settings.noise > 0.0 or settings.driver:
            writer.write_message(EXECUTED_TOPIC, _twist_msg(types, *executed), stamp)
            perturbed += executed != (linear, angular)
        result = sim.step(*executed)
        observation = result.observation
        if result.done:
            outcome = result.outcome or 'failure'


def _twist_msg(types, linear: float, angular: float):
    vector = types['geometry_msgs/msg/Vector3']
    return types['geometry_msgs/msg/Twist'](linear=vector(x=float(linear), y=0.0, z=0.0),
                                            angular=vector(x=0.0, y=0.0, z=float(angular)))


def _seen_by_turning(sim, pose) -> bool:
    """--hidden-targets: does a turn in place at the start show the target (rooms.visible_by_turning)?"""
    from vla_nav.sim.rooms import visible_by_turning
    return visible_by_turning(sim.layout, pose, sim.scenario.target)


def _write_marker(out_dir: str, name: str, summary: dict) -> None:
    """An episode that wrote no bag (dropped failure, skipped scene): done for a resumed run."""
    marker = Path(out_dir) / FAILED_DIR / f'{name}.json'
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps(summary))


def _record_job(job: tuple) -> dict:
    return record_episode(*job)


# --------------------------------------------------------------------------------------------
# The run: settings check, resume, worker pool, summary


def _check_settings(out_dir: Path, settings: RecordSettings) -> None:
    path = out_dir / SETTINGS_FILE
    pinned = {key: value for key, value in asdict(settings).items() if key not in ('split', 'seed')}
    if path.exists():
        existing = json.loads(path.read_text())
        existing.setdefault('noise', 0.0)   # folders recorded before --noise existed are clean
        existing.setdefault('driver', '')
        existing.setdefault('driver_backend', 'onnx')
        existing.setdefault('world', 'v1')
        existing.setdefault('camera_mount', '')
        existing.setdefault('augment', False)
        existing.setdefault('tiers', '')
        existing.setdefault('hidden_targets', False)
        existing.setdefault('rescue', False)
        if existing != pinned:
            raise SystemExit(f'record-sim: {path} was recorded with {existing}; these settings '
                             f'{pinned} differ. Use another --out folder.')
    else:
        path.write_text(json.dumps(pinned, indent=1) + '\n')


def _pending_episodes(out_dir: Path, settings: RecordSettings, episodes: int,
                      keep_failures: bool) -> tuple[list[int], int]:
    """(episodes still to record, episodes already done) after removing stale partial folders."""
    for stale in out_dir.glob(f'{PARTIAL_PREFIX}*'):
        shutil.rmtree(stale, ignore_errors=True)
    pending = []
    for episode in range(episodes):
        name = episode_name(settings, episode)
        done = (out_dir / name / 'metadata.yaml').is_file() or (
            not keep_failures and (out_dir / FAILED_DIR / f'{name}.json').is_file())
        if not done:
            pending.append(episode)
    return pending, episodes - len(pending)


def _format_bytes(size: float) -> str:
    for unit in ('B', 'KB', 'MB', 'GB'):
        if size < 1024 or unit == 'GB':
            return f'{size:.1f} {unit}'
        size /= 1024
    return f'{size:.1f} GB'


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.episodes < 0 or args.workers < 1:
        print('record-sim: --episodes must be >= 0 and --workers >= 1', file=sys.stderr)
        return 2
    try:
        settings = RecordSettings(split=args.split, seed=args.seed, image_size=args.image_size,
                                  control_dt=args.control_dt, storage=args.storage,
                                  compress=args.compress and args.storage == 'mcap',
                                  noise=args.noise, driver=args.driver,
                                  driver_backend=args.driver_backend,
                                  world=getattr(args, 'world', 'v1'),
                                  camera_mount=getattr(args, 'camera_mount', ''),
                                  augment=getattr(args, 'augment', False),
                                  tiers=getattr(args, 'tiers', ''),
                                  hidden_targets=getattr(args, 'hidden_targets', False),
                                  rescue=getattr(args, 'rescue', False))
        if settings.driver:   # a clear error now, not one per worker; exports the ONNX graphs once
            from vla_nav.runtime import ModelLoadError, load_engine
            try:
                load_engine(settings.driver, backend=settings.driver_backend)
            except ModelLoadError as error:
                raise ValueError(f'--driver: {error}') from error
    except ValueError as error:
        print(f'record-sim: {error}', file=sys.stderr)
        return 2
    # with a driver every outcome is kept: the expert's labels are right wherever the policy went
    keep_failures = args.keep_failures or bool(settings.driver)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, settings)
    pending, already = _pending_episodes(out_dir, settings, args.episodes, keep_failures)
    jobs = [(settings, episode, str(out_dir), keep_failures) for episode in pending]
    started = time.monotonic()
    results: list[dict] = []
    progress = tqdm(total=len(jobs), unit='ep', desc='record-sim', disable=args.quiet,
                    dynamic_ncols=True)
    workers = min(args.workers, max(len(jobs), 1))
    if workers == 1:
        mapped = map(_record_job, jobs)
        pool = None
    else:  # spawn: a forked MuJoCo/EGL context is not safe, and workers build their own sims
        pool = ProcessPoolExecutor(workers, mp_context=get_context('spawn'))
        mapped = pool.map(_record_job, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))
    try:
        for result in mapped:
            results.append(result)
            progress.update()
            progress.set_postfix(frames=sum(r['frames'] for r in results), refresh=False)
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        for folder in out_dir.glob(f'{PARTIAL_PREFIX}*'):   # empty unless interrupted
            if not any(folder.iterdir()):
                folder.rmdir()
    elapsed = time.monotonic() - started
    outcomes = Counter(r['outcome'] for r in results)
    written = [r for r in results if r['written']]
    skipped = outcomes.pop('skipped', 0)
    frames = sum(r['frames'] for r in results)
    disk = sum(f.stat().st_size for f in out_dir.rglob('*') if f.is_file())
    outcome_text = ', '.join(f'{count} {name}' for name, count in sorted(outcomes.items()))
    print(f'record-sim: {len(results)} episodes recorded ({outcome_text or "none"}), '
          f'{len(written)} bags written, {len(results) - len(written) - skipped} failures dropped, '
          f'{skipped} scenes skipped (--hidden-targets), '
          f'{already} already done; {frames} frames in {elapsed:.1f} s '
          f'({frames / max(elapsed, 1e-9):.0f} frames/s); {out_dir}: {_format_bytes(disk)}')
    if settings.driver:
        takeovers = sum(r['takeover_s'] is not None for r in results)
        print(f'record-sim: driven by {settings.driver}; the expert took over in {takeovers} '
              'episodes where the policy stalled')
    if settings.rescue:
        rescued = [r.get('rescues', 0) for r in results]
        print(f'record-sim: --rescue: the expert took {sum(rescued)} near misses, in '
              f'{sum(n > 0 for n in rescued)} episodes')
    return 0
