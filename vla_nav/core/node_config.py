"""Typed, validated parameters of every node, and the topic names they share.

Pure dataclasses (no YAML reading here: `vla_nav.config.load_config()` reads config/vla_nav.yaml
once and builds them; nodes build them from their declared ROS parameters with `from_params`).
Every dataclass is frozen, validated in `__post_init__` (a bad value raises ValueError naming the
parameter and why), and converts both ways with a flat parameter dict:

    VlaNodeConfig.from_params(mapping)  -> VlaNodeConfig   (missing or unknown keys: ValueError)
    config.to_params()                  -> dict             (the same names as the YAML)
    config.replace(**changes)           -> a new validated config

Field names are the ROS parameter names, so `config.max_image_age` is what
`ros2 param get /vla_node max_image_age` prints. Numbers are coerced (an int is accepted for a
float field, an integral float for an int field); bools and strings are not guessed.

`VlaNavConfig` bundles the three node configs and checks that the sections agree where they share
a fact (e.g. the chunk topic vla_node publishes is the one chunk_executor subscribes to); its
`topics` is the one view of every topic name (tools, bag reading and tests use it).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from vla_nav.core.executor import ExecutorConfig
from vla_nav.core.goal import GoalRules

_Config = TypeVar('_Config', bound='_Params')
IMAGE_TRANSPORTS = ('raw', 'compressed')
BACKENDS_BUILTIN = ('onnx', 'torch')   # 'package.module:factory' selects a custom engine
DEVICES = ('cpu', 'cuda', 'tensorrt')
SPLITS = ('train', 'test')
SIM_WORLDS = ('v1', 'v2')   # the simulator's worlds (vla_nav.sim.navsim); v1 is the default
SIM_WORLD_FROM_MODEL = 'model'   # sim_node world: the one the model learned (config.model_world)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(name: str, value: Any) -> float:
    if not _number(value):
        raise ValueError(f'parameter {name} must be float, got {value!r}')
    if not math.isfinite(value):
        raise ValueError(f'parameter {name} must be finite, got {value!r}')
    return float(value)


def _as_int(name: str, value: Any) -> int:
    if not _number(value) or not math.isfinite(value) or value != int(value):
        raise ValueError(f'parameter {name} must be int, got {value!r}')
    return int(value)


def _as_exact(kind: type) -> Any:
    def convert(name: str, value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(f'parameter {name} must be {kind.__name__}, got {value!r}')
        return value
    return convert


def _as_strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) \
            or not all(isinstance(item, str) for item in value):
        raise ValueError(f'parameter {name} must be a list of strings, got {value!r}')
    return tuple(value)


_CONVERTERS = {bool: _as_exact(bool), str: _as_exact(str), float: _as_float, int: _as_int,
               tuple[str, ...]: _as_strings}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """value as the field's type, or ValueError naming the parameter."""
    try:
        convert = _CONVERTERS[kind]
    except KeyError:
        raise TypeError(f'unsupported parameter type {kind!r} for {name}') from None
    return convert(name, value)


class _Params:
    """from_params / to_params / replace for the flat node configs below."""

    def _coerce_fields(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _coerce(field.name, hints[field.name], getattr(self, field.name))
            object.__setattr__(self, field.name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_params(cls: type[_Config], params: Mapping[str, Any],
                    strict: bool = True) -> _Config:
        """Build from a parameter dict. strict: unknown keys are an error (a typo in a params file
        must not be ignored silently); missing keys always are."""
        names = cls.names()
        missing = [name for name in names if name not in params]
        if missing:
            raise ValueError(f'{cls.__name__}: parameters missing: {", ".join(missing)}')
        unknown = sorted(set(params) - set(names))
        if strict and unknown:
            raise ValueError(f'{cls.__name__}: unknown parameters: {", ".join(unknown)}')
        return cls(**{name: params[name] for name in names})

    def to_params(self) -> dict[str, Any]:
        """Flat dict of parameter name -> value (tuples as lists, as ROS and YAML hold them)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))}

    def replace(self: _Config, **changes: Any) -> _Config:
        return dataclasses.replace(self, **changes)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        _require(getattr(config, name) > 0, f'parameter {name} must be > 0, got {getattr(config, name)}')


def _check_topics(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        _require(bool(value.strip()) and ' ' not in value,
                 f'parameter {name} must be a topic name, got {value!r}')


@dataclass(frozen=True)
class VlaNodeConfig(_Params):
    """vla_node: camera + instruction in, chunks out (config/vla_nav.yaml `vla_node`)."""

    image_topic: str
    compressed_image_topic: str
    image_transport: str             # raw | compressed
    instruction_topic: str
    chunk_topic: str
    state_topic: str                 # nav_msgs/Odometry, used when the model takes robot state
    diagnostics_topic: str
    model: str                       # checkpoint dir; '' = models/default
    backend: str                     # onnx | torch | package.module:factory
    device: str                      # cpu | cuda | tensorrt
    engine_cache_dir: str
    max_image_age: float             # s; older frames are dropped
    max_instruction_chars: int       # longer goals are rejected
    stop_words: tuple[str, ...]      # the one stop-phrase list (the simulator's judge uses it too)
    inference_rate: float            # Hz cap; 0 = every new frame
    action_limit_linear: float       # m/s; physical bound of any chunk
    action_limit_angular: float      # rad/s
    diagnostics_period: float        # s
    base_frame: str
    goal_status_topic: str           # std_msgs/String JSON, transient-local depth 1
    publish_path: bool               # the chunk as nav_msgs/Path in base_frame
    path_topic: str
    publish_annotated_image: bool    # the chunk drawn on the camera frame (costs CPU)
    annotated_image_topic: str
    annotate_camera_height: float    # m; the camera mount used to draw the chunk on the frame
    annotate_camera_forward: float   # m ahead of base_frame
    annotate_camera_fovy_deg: float
    annotate_camera_tilt_deg: float  # downward
    goal_refuse_unparsed: bool       # a sentence core.language cannot read: refused (else: to the policy)
    done_turn_tolerance_deg: float   # the robot-side done rule (vla_nav.core.goal)
    done_forward_tolerance_m: float
    done_still_linear: float         # m/s
    done_still_angular: float        # rad/s
    done_still_chunks: int
    done_min_motion_m: float
    done_min_turn_deg: float
    goal_step_timeout: float         # s a step may run before the goal fails
    goal_invalid_timeout: float      # s of failing policy output before the goal fails

    def __post_init__(self) -> None:
        self._coerce_fields()
        _check_topics(self, 'image_topic', 'compressed_image_topic', 'instruction_topic',
                      'chunk_topic', 'state_topic', 'diagnostics_topic', 'goal_status_topic',
                      'path_topic', 'annotated_image_topic')
        _ = self.goal_rules   # validates the done rule's thresholds
        _require(self.image_transport in IMAGE_TRANSPORTS,
                 f'parameter image_transport must be one of {IMAGE_TRANSPORTS}, got '
                 f'{self.image_transport!r}')
        _require(self.backend in BACKENDS_BUILTIN or ':' in self.backend,
                 f"parameter backend must be 'onnx', 'torch' or 'module:factory', got {self.backend!r}")
        _require(self.device in DEVICES,
                 f'parameter device must be one of {DEVICES}, got {self.device!r}')
        _check_positive(self, 'max_image_age', 'max_instruction_chars', 'action_limit_linear',
                        'action_limit_angular', 'diagnostics_period', 'annotate_camera_height',
                        'annotate_camera_fovy_deg')
        _require(self.inference_rate >= 0,
                 f'parameter inference_rate must be >= 0 (0 = every frame), got {self.inference_rate}')
        _require(bool(self.stop_words) and all(word.strip() for word in self.stop_words),
                 'parameter stop_words must list at least one non-empty phrase ("stop" must stop)')

    @property
    def action_limits(self) -> tuple[float, float]:
        """(|linear.x| m/s, |angular.z| rad/s): the physical bounds of any chunk."""
        return self.action_limit_linear, self.action_limit_angular

    @property
    def annotate_camera(self) -> dict:
        """The pinhole mount for vla_nav.core.chunk_geometry.project_floor_points."""
        return {'height': self.annotate_camera_height, 'forward': self.annotate_camera_forward,
                'fovy_deg': self.annotate_camera_fovy_deg,
                'tilt': math.radians(self.annotate_camera_tilt_deg)}

    @property
    def goal_rules(self) -> GoalRules:
        """The goal sequencer's done/fail rule (vla_nav.core.goal.GoalRules)."""
        try:
            return GoalRules(
                refuse_unparsed=self.goal_refuse_unparsed,
                turn_tolerance_deg=self.done_turn_tolerance_deg,
                forward_tolerance_m=self.done_forward_tolerance_m,
                still_linear=self.done_still_linear, still_angular=self.done_still_angular,
                still_chunks=self.done_still_chunks, min_motion_m=self.done_min_motion_m,
                min_turn_deg=self.done_min_turn_deg, step_timeout=self.goal_step_timeout,
                invalid_timeout=self.goal_invalid_timeout)
        except ValueError as error:
            raise ValueError(f'vla_node done_*/goal_* parameters: {error}') from None


@dataclass(frozen=True)
class ChunkExecutorNodeConfig(_Params):
    """chunk_executor (config/vla_nav.yaml `chunk_executor`): the node's wiring plus the
    executor limits (`executor`, an ExecutorConfig). `from_params` / `to_params` are flat like
    the YAML: the limit keys go into `executor`."""

    executor: ExecutorConfig
    chunk_topic: str
    cmd_vel_topic: str
    estop_topic: str
    diagnostics_topic: str
    stamped: bool                    # publish TwistStamped
    base_frame: str
    clock_mismatch_threshold: float  # s
    diagnostics_period: float        # s

    def __post_init__(self) -> None:
        if not isinstance(self.executor, ExecutorConfig):
            raise TypeError(f'executor must be an ExecutorConfig, got {type(self.executor).__name__}')
        hints = typing.get_type_hints(type(self))
        for name in self._own_names():
            object.__setattr__(self, name, _coerce(name, hints[name], getattr(self, name)))
        _check_topics(self, 'chunk_topic', 'cmd_vel_topic', 'estop_topic', 'diagnostics_topic')
        _check_positive(self, 'clock_mismatch_threshold', 'diagnostics_period')

    @classmethod
    def _own_names(cls) -> tuple[str, ...]:
        return tuple(name for name in super().names() if name != 'executor')

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The flat parameter names (the executor's limits included)."""
        return cls._own_names() + tuple(f.name for f in dataclasses.fields(ExecutorConfig))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], strict: bool = True) -> ChunkExecutorNodeConfig:
        names = cls.names()
        missing = [name for name in names if name not in params]
        if missing:
            raise ValueError(f'{cls.__name__}: parameters missing: {", ".join(missing)}')
        unknown = sorted(set(params) - set(names))
        if strict and unknown:
            raise ValueError(f'{cls.__name__}: unknown parameters: {", ".join(unknown)}')
        return cls(executor=ExecutorConfig.from_params(params),
                   **{name: params[name] for name in cls._own_names()})

    def to_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in self._own_names()}
        params.update(dataclasses.asdict(self.executor))
        return params


@dataclass(frozen=True)
class SimNodeConfig(_Params):
    """sim_node: the built-in simulated robot (config/vla_nav.yaml `sim_node`)."""

    image_topic: str
    cmd_vel_topic: str
    odom_topic: str
    instruction_topic: str
    status_topic: str
    scene_topic: str
    odom_frame: str
    base_frame: str
    camera_frame: str
    camera_rate: float               # Hz
    odom_rate: float                 # Hz
    physics_rate: float              # Hz
    real_time_factor: float
    publish_clock: bool
    status_period: float             # s
    image_width: int
    image_height: int
    seed: int
    episode: int
    split: str                       # train | test
    world: str                       # v1 | v2 (SIM_WORLDS) | model (SIM_WORLD_FROM_MODEL)
    cmd_vel_timeout: float           # s; the simulated base stops without commands

    def __post_init__(self) -> None:
        self._coerce_fields()
        _check_topics(self, 'image_topic', 'cmd_vel_topic', 'odom_topic', 'instruction_topic',
                      'status_topic', 'scene_topic')
        _check_positive(self, 'camera_rate', 'odom_rate', 'physics_rate', 'real_time_factor',
                        'status_period', 'image_width', 'image_height', 'cmd_vel_timeout')
        _require(self.split in SPLITS, f'parameter split must be one of {SPLITS}, got {self.split!r}')
        _require(self.episode >= 0, f'parameter episode must be >= 0, got {self.episode}')
        worlds = (*SIM_WORLDS, SIM_WORLD_FROM_MODEL)
        _require(self.world in worlds, f'parameter world must be one of {worlds}, got {self.world!r}')


@dataclass(frozen=True)
class TopicNames:
    """Every topic the package uses, once (as written in config/vla_nav.yaml)."""

    image: str
    compressed_image: str
    instruction: str
    chunk: str
    odom: str
    cmd_vel: str
    estop: str
    diagnostics: str
    sim_status: str
    sim_scene: str


@dataclass(frozen=True)
class VlaNavConfig:
    """The whole config/vla_nav.yaml: one config per node, checked against each other."""

    vla_node: VlaNodeConfig
    chunk_executor: ChunkExecutorNodeConfig
    sim_node: SimNodeConfig

    def __post_init__(self) -> None:
        vla, executor, sim = self.vla_node, self.chunk_executor, self.sim_node
        shared = (
            ('vla_node.chunk_topic', vla.chunk_topic,
             'chunk_executor.chunk_topic', executor.chunk_topic),
            ('chunk_executor.cmd_vel_topic', executor.cmd_vel_topic,
             'sim_node.cmd_vel_topic', sim.cmd_vel_topic),
            ('vla_node.image_topic', vla.image_topic, 'sim_node.image_topic', sim.image_topic),
            ('vla_node.instruction_topic', vla.instruction_topic,
             'sim_node.instruction_topic', sim.instruction_topic),
            ('vla_node.state_topic', vla.state_topic, 'sim_node.odom_topic', sim.odom_topic),
            ('vla_node.diagnostics_topic', vla.diagnostics_topic,
             'chunk_executor.diagnostics_topic', executor.diagnostics_topic))
        for name_a, value_a, name_b, value_b in shared:
            _require(value_a == value_b, f'{name_a} ({value_a!r}) and {name_b} ({value_b!r}) must be '
                     'the same topic')

    @property
    def topics(self) -> TopicNames:
        vla, executor, sim = self.vla_node, self.chunk_executor, self.sim_node
        return TopicNames(image=vla.image_topic, compressed_image=vla.compressed_image_topic,
                          instruction=vla.instruction_topic, chunk=vla.chunk_topic,
                          odom=vla.state_topic, cmd_vel=executor.cmd_vel_topic,
                          estop=executor.estop_topic, diagnostics=vla.diagnostics_topic,
                          sim_status=sim.status_topic, sim_scene=sim.scene_topic)

    @property
    def executor(self) -> ExecutorConfig:
        """The executor limits (chunk_executor section)."""
        return self.chunk_executor.executor

    @property
    def stop_words(self) -> tuple[str, ...]:
        """The one stop-phrase list: vla_node stops on these, the simulator's judge reads them as
        a stop task."""
        return self.vla_node.stop_words

    def sections(self) -> dict[str, dict[str, Any]]:
        """node name -> flat parameters (the YAML's `ros__parameters`)."""
        return {'vla_node': self.vla_node.to_params(),
                'chunk_executor': self.chunk_executor.to_params(),
                'sim_node': self.sim_node.to_params()}
