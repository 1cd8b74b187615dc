"""PolicyConfig: every number that shapes a VLA policy, stored in the checkpoint's config.json.

A checkpoint rebuilds its model from this dataclass alone (plus the frozen pretrained weights it
references by package + sha256), so anything that changes tensor shapes or the meaning of the
inputs/outputs lives here and nowhere else.

Fields (validated in `__post_init__`; `to_dict()` / `from_dict()` round-trip through JSON):
  backbone       'edge' (EfficientNet-Lite0 trunk + FiLM neck, MiniLM instruction; default) or
                 'kosmos2' (Kosmos-2 from a local folder, RoboVLMs-style [ACT] token)
  head           'lstm' (default) | 'fc' | 'gpt' | 'discrete' | 'flow' (see heads.py)
  image_size     square input resolution in pixels; callers resize frames to it
  fovea_rows     edge: 0 (off) or the rows of a zoomed strip appended under the full view (the
                 input image is then (image_size + fovea_rows) x image_size): the middle
                 1/fovea_zoom of the frame's width around the horizon (fovea_centre: fraction of
                 the frame height from the top), fovea_zoom times larger than the full view, so
                 a far target covers more than a few pixels (core.image_decode.model_view). The
                 frozen trunk encodes the two parts separately; their maps are stacked.
  trunk_blocks   edge: EfficientNet-Lite0 MBConv blocks kept in the frozen trunk (of 16)
  neck_channels  edge: channels after the trainable 1x1 reduction of the trunk feature map
  neck_layers    edge: 1 = reduce + FiLM; each extra layer adds a residual 1x1 conv + FiLM + ReLU,
                 which can combine channels per position after the instruction has scaled them
                 (binding: "green AND ball at the same place", not just "green" and "ball")
  feature_dim    length of one per-frame feature (what the runtime caches per frame)
  window, chunk  8 frames of history in, 10 actions out
  history_stride frames between two window positions (1: the last 8 frames, 0.8 s at 10 Hz; 3: every
                 third frame, a 2.1 s memory for the same head cost: the runtime ring keeps
                 (window - 1) * stride + 1 features, training builds its windows alike)
  memory_slots   0 (off) or how many of the window's OLDEST positions are a slow memory, memory_stride
  memory_stride  frames apart before the dense part (core.feature_ring.history_back): window 14,
                 memory_slots 6, memory_stride 12 = the last 8 frames + six frames 1.9 .. 7.9 s old
                 (a full search turn). The head reads them with their robot states (the yaw since
                 the goal began says where each looked); they are never supervised themselves
  action_dim, dt 2 = (linear.x m/s, angular.z rad/s); seconds between actions of a chunk
  state_dim      0 (images + instruction only) or 4 = vla_nav.core.robot_state.STATE_DIM:
                 (v, w, distance since goal start, yaw change since goal start), or 8 =
                 GOAL_STATE_DIM: those 4 + the step's goal features (the parsed number of a turn /
                 forward step minus the progress so far: robot_state.goal_features)
  state_scale    per-component factor applied to the raw state so each term is O(1)
  action_low/high physical bounds per action dimension; actions are clipped to them and mapped
                 linearly to [-1, 1] (defaults DEFAULT_ACTION_LOW/HIGH: fixed here, part of the
                 checkpoint; NOT read from the executor limits in config/vla_nav.yaml, so editing
                 the robot's limits never changes the normalisation of the next checkpoint)
  loss           'huber' (default; Huber with delta `huber_delta` in the normalised space) or
                 'l1'; the discrete head always uses cross-entropy over `discrete_bins` bins and
                 the flow head the flow-matching MSE on the velocity
  flow_steps     flow head: Euler steps from its fixed starting sample to the chunk (each one
                 pass of the velocity MLP; unrolled in the ONNX graph). The flow head is an LSTM
                 window summary + a velocity field over the flattened normalised 10x2 chunk,
                 trained by rectified flow, integrated deterministically (heads.FlowHead)
  head_*         head sizes; text_head_dim: the instruction embedding is projected to this and
                 concatenated to every window position's input (0 disables it)
  text_model     sentence encoder of the edge backbone (all-MiniLM-L6-v2, frozen)
  kosmos2_path   kosmos2: local folder with a transformers Kosmos-2 model + tokenizer.json
  kosmos2_max_text_tokens  kosmos2: instruction token budget (the instruction "embedding" of a
                 kosmos2 policy is its padded token ids, see policy.py)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FORMAT_VERSION = 1
BACKBONES = ('edge', 'kosmos2')
HEADS = ('lstm', 'fc', 'gpt', 'discrete', 'flow')
LOSSES = ('huber', 'l1')
STATE_DIMS = (0, 4, 8)   # none | vla_nav.core.robot_state STATE_DIM | GOAL_STATE_DIM
EDGE_TRUNK_BLOCKS = 16           # MBConv blocks in EfficientNet-Lite0
MINILM_DIM = 384                 # all-MiniLM-L6-v2 hidden size
# (v m/s, w rad/s, distance m, yaw change rad) -> O(1); state_dim 8 adds the goal features
# (turn step, turn left rad, forward step, forward left m)
DEFAULT_STATE_SCALE = (2.0, 0.6667, 0.5, 0.3183)
GOAL_STATE_SCALE = (1.0, 0.3183, 1.0, 0.5)


# (linear.x m/s, angular.z rad/s) normalisation range of a new checkpoint: the span the
# shipped robot's executor allows (test_model_policy checks it still covers the YAML limits).
DEFAULT_ACTION_LOW = (-0.2, -1.5)
DEFAULT_ACTION_HIGH = (0.5, 1.5)


# Fields that change no tensor shape and no weight's meaning enough to refuse a fine-tune: `train
# --init MODEL --set history_stride=3` re-times MODEL's memory and trains it to the new spacing.
# Adding a fovea (fovea_*) widens only the neck's projection, whose new columns start at zero:
# `--init MODEL --set fovea_rows=40` starts from MODEL's exact outputs and learns to use the strip.
# `--set window=14 --set memory_slots=6` adds memory slots before an lstm/fc/flow head's window (their
# weights do not depend on its length; the gpt head's learned positions do, and refuse).
FINE_TUNABLE_FIELDS = ('history_stride', 'fovea_rows', 'fovea_zoom', 'fovea_centre', 'window',
                       'memory_slots', 'memory_stride')


@dataclass
class PolicyConfig:
    backbone: str = 'edge'
    head: str = 'lstm'
    image_size: int = 80
    fovea_rows: int = 0
    fovea_zoom: float = 2.0
    fovea_centre: float = 0.44
    trunk_blocks: int = 8
    neck_channels: int = 32
    neck_layers: int = 1
    feature_dim: int = 256
    window: int = 8
    history_stride: int = 1
    memory_slots: int = 0
    memory_stride: int = 12
    chunk: int = 10
    action_dim: int = 2
    dt: float = 0.1
    state_dim: int = 0
    state_scale: tuple = DEFAULT_STATE_SCALE
    action_low: tuple = DEFAULT_ACTION_LOW
    action_high: tuple = DEFAULT_ACTION_HIGH
    loss: str = 'huber'
    huber_delta: float = 0.1
    head_hidden: int = 128
    head_layers: int = 1
    head_attention_heads: int = 4
    text_head_dim: int = 64
    discrete_bins: int = 256
    flow_steps: int = 5
    dropout: float = 0.1
    text_model: str = 'all-MiniLM-L6-v2'
    text_max_tokens: int = 64
    kosmos2_path: str = ''
    kosmos2_max_text_tokens: int = 24
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.state_dim == 8 and tuple(self.state_scale) == DEFAULT_STATE_SCALE:
            self.state_scale = DEFAULT_STATE_SCALE + GOAL_STATE_SCALE
        self.state_scale = tuple(float(v) for v in self.state_scale)
        self.action_low = tuple(float(v) for v in self.action_low)
        self.action_high = tuple(float(v) for v in self.action_high)
        problems = self._choice_problems() + self._size_problems() + self._value_problems()
        if problems:
            raise ValueError('invalid PolicyConfig: ' + '; '.join(problems))

    def _choice_problems(self) -> list[str]:
        checks = ((self.backbone in BACKBONES, f'backbone {self.backbone!r} not in {BACKBONES}'),
                  (self.head in HEADS, f'head {self.head!r} not in {HEADS}'),
                  (self.loss in LOSSES, f'loss {self.loss!r} not in {LOSSES}'),
                  (self.state_dim in STATE_DIMS, f'state_dim {self.state_dim} not in {STATE_DIMS}'),
                  (not self.state_dim or len(self.state_scale) == self.state_dim,
                   f'state_scale needs {self.state_dim} values, got {len(self.state_scale)}'),
                  (self.backbone != 'kosmos2' or bool(self.kosmos2_path),
                   'backbone kosmos2 needs kosmos2_path (a local Kosmos-2 folder)'),
                  (self.format_version == FORMAT_VERSION,
                   f'format_version {self.format_version} is not {FORMAT_VERSION} '
                   '(this vla_nav reads only its own format)'))
        return [message for ok, message in checks if not ok]

    def _size_problems(self) -> list[str]:
        problems = [f'{name} must be >= 1, got {getattr(self, name)}'
                    for name in ('neck_channels', 'neck_layers', 'feature_dim', 'window', 'history_stride',
                                 'memory_stride',
                                 'chunk', 'action_dim', 'head_hidden', 'head_layers', 'head_attention_heads',
                                 'flow_steps', 'text_max_tokens', 'kosmos2_max_text_tokens')
                    if int(getattr(self, name)) < 1]
        checks = ((32 <= self.image_size <= 1024, f'image_size {self.image_size} outside [32, 1024]'),
                  (0 <= self.fovea_rows <= self.image_size,
                   f'fovea_rows {self.fovea_rows} outside [0, image_size {self.image_size}]'),
                  (not self.fovea_rows or self.backbone == 'edge', 'fovea_rows needs backbone edge'),
                  (1.0 <= self.fovea_zoom <= 8.0, f'fovea_zoom {self.fovea_zoom} outside [1, 8]'),
                  (0.0 <= self.fovea_centre <= 1.0, f'fovea_centre {self.fovea_centre} outside [0, 1]'),
                  (1 <= self.trunk_blocks <= EDGE_TRUNK_BLOCKS,
                   f'trunk_blocks {self.trunk_blocks} outside [1, {EDGE_TRUNK_BLOCKS}]'),
                  (self.text_head_dim >= 0, f'text_head_dim must be >= 0, got {self.text_head_dim}'),
                  (self.head != 'gpt' or not self.head_hidden % max(self.head_attention_heads, 1),
                   f'head_hidden {self.head_hidden} not divisible by head_attention_heads '
                   f'{self.head_attention_heads}'),
                  (self.discrete_bins >= 2, f'discrete_bins must be >= 2, got {self.discrete_bins}'),
                  (0 <= self.memory_slots < self.window,
                   f'memory_slots {self.memory_slots} outside [0, window {self.window})'))
        return problems + [message for ok, message in checks if not ok]

    def _value_problems(self) -> list[str]:
        checks = [(0.0 <= self.dropout < 1.0, f'dropout {self.dropout} outside [0, 1)'),
                  (self.dt > 0, f'dt must be > 0, got {self.dt}'),
                  (self.huber_delta > 0, f'huber_delta must be > 0, got {self.huber_delta}')]
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            checks.append((False, f'action_low/action_high need {self.action_dim} values each'))
        else:
            checks.append((all(lo < hi for lo, hi in zip(self.action_low, self.action_high, strict=True)),
                           f'action_low {self.action_low} must be < action_high {self.action_high}'))
        return [message for ok, message in checks if not ok]

    @property
    def text_dim(self) -> int:
        """Length of the instruction vector that embed_instructions returns."""
        return MINILM_DIM if self.backbone == 'edge' else self.kosmos2_max_text_tokens

    def engine_spec(self):
        """The runtime's EngineSpec of a model with this config (both engines build it here)."""
        from vla_nav.core.engine import EngineSpec
        from vla_nav.core.image_decode import Fovea
        return EngineSpec(image_height=self.image_size + self.fovea_rows, image_width=self.image_size,
                          fovea=Fovea(self.fovea_rows, self.fovea_zoom, self.fovea_centre),
                          feature_dim=self.feature_dim, window=self.window,
                          history_stride=self.history_stride, memory_slots=self.memory_slots,
                          memory_stride=self.memory_stride, chunk=self.chunk,
                          action_dim=self.action_dim, dt=self.dt, state_dim=self.state_dim)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Rebuild from to_dict() output; unknown keys are an error (a newer/foreign format)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown PolicyConfig keys {unknown}')
        return cls(**data)

    def replace(self, **changes: Any) -> PolicyConfig:
        return dataclasses.replace(self, **changes)


# --- the checkpoint directory's config.json (read without torch: the ONNX runtime uses it) -----
CHECKPOINT_FORMAT = 'vla_nav.policy'
CONFIG_FILE = 'config.json'
WEIGHTS_FILE = 'model.safetensors'


def installed_versions(packages, missing: str = '') -> dict[str, str]:
    """{package: installed version} (`missing` for one that is not installed): the library versions
    a checkpoint or a published figure was made with. Torch-free, so the robot's install has it."""
    from importlib import metadata

    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions


def read_checkpoint_config(directory) -> tuple[PolicyConfig, dict[str, Any]]:
    """config.json of a checkpoint directory -> (PolicyConfig, the whole document).

    Raises ModelLoadError naming the file for a missing directory/file, bad JSON, a foreign
    format, a different format version or invalid values.
    """
    import json
    from pathlib import Path

    from vla_nav.core.engine import ModelLoadError

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(directory, 'checkpoint directory does not exist')
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(path, f'missing: a checkpoint directory needs {CONFIG_FILE} and {WEIGHTS_FILE}')
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelLoadError(path, f'not valid JSON ({error})') from error
    if not isinstance(document, dict) or document.get('format') != CHECKPOINT_FORMAT:
        raise ModelLoadError(path, f'not a vla_nav policy config (expected "format": "{CHECKPOINT_FORMAT}")')
    version = document.get('format_version')
    if version != FORMAT_VERSION:
        raise ModelLoadError(path, f'format version {version!r}, but this vla_nav reads version '
                                   f'{FORMAT_VERSION}: re-export or retrain the checkpoint')
    if not isinstance(document.get('policy'), dict):
        raise ModelLoadError(path, 'no "policy" section (the PolicyConfig)')
    try:
        config = PolicyConfig.from_dict(dict(document['policy']))
    except (TypeError, ValueError) as error:
        raise ModelLoadError(path, f'bad "policy" section: {error}') from error
    return config, document
