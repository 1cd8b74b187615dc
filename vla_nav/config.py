"""The one place that reads config/vla_nav.yaml: `load_config()` builds the typed configs.

    from vla_nav.config import load_config
    config = load_config()              # VlaNavConfig (vla_nav.core.node_config), read once
    config.vla_node.max_image_age       # VlaNodeConfig
    config.chunk_executor.executor      # ExecutorConfig (the limits)
    config.sim_node.cmd_vel_timeout     # SimNodeConfig
    config.topics.cmd_vel               # TopicNames
    config.stop_words                   # the one stop-phrase list

Nodes declare their ROS parameters from the same file, tools (demo, replay, eval-sim, soak) read
the same values, so a topic name or a limit is written down exactly once. Everything below this
module (model/, sim/, data/, runtime/) takes the configs as arguments and never reads the YAML.
"""
from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from vla_nav.core.node_config import (
    SIM_WORLD_FROM_MODEL,
    SIM_WORLDS,
    ChunkExecutorNodeConfig,
    SimNodeConfig,
    VlaNavConfig,
    VlaNodeConfig,
)

PACKAGE = 'vla_nav'
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent  # the repo root in a checkout / --symlink-install
CONFIG_FILE_NAME = 'vla_nav.yaml'
DEFAULT_MODEL_DIR_NAME = 'models/default'


def _share_dir() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed through colcon / AMENT_PREFIX_PATH unset
        return None


def config_path() -> Path:
    """config/vla_nav.yaml from the source tree, else from the installed share directory."""
    for base in (SOURCE_ROOT, _share_dir()):
        if base is not None and (base / 'config' / CONFIG_FILE_NAME).is_file():
            return base / 'config' / CONFIG_FILE_NAME
    raise FileNotFoundError(
        f'cannot find config/{CONFIG_FILE_NAME} next to {PACKAGE_DIR} or in the {PACKAGE} share '
        'directory; is the package installed (colcon build / pip install -e .)?')


@cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding='utf-8') as stream:
        return yaml.safe_load(stream)


def node_defaults(node_name: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The `ros__parameters` of one node, as a fresh dict (safe to modify).

    Compatibility for code not yet on `load_config()`; the values are the validated ones."""
    sections = load_config(path).sections()
    if node_name not in sections:
        raise KeyError(f'{path or config_path()} has no {node_name}.ros__parameters')
    return sections[node_name]


def _section(document: dict, node_name: str, path) -> dict[str, Any]:
    try:
        return dict(document[node_name]['ros__parameters'])
    except (KeyError, TypeError) as error:
        raise KeyError(f'{path} has no {node_name}.ros__parameters') from error


@cache
def _load_config(path: str) -> VlaNavConfig:
    document = _load(path)
    try:
        return VlaNavConfig(
            vla_node=VlaNodeConfig.from_params(_section(document, 'vla_node', path)),
            chunk_executor=ChunkExecutorNodeConfig.from_params(
                _section(document, 'chunk_executor', path)),
            sim_node=SimNodeConfig.from_params(_section(document, 'sim_node', path)))
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error


def load_config(path: str | os.PathLike | None = None) -> VlaNavConfig:
    """The typed, validated config of config/vla_nav.yaml (or `path`); read once per path.

    Raises ValueError naming the file and the parameter when a value is missing or invalid."""
    return _load_config(str(path or config_path()))


def default_model_dir() -> Path:
    """models/default in the source tree, else in the share directory."""
    for base in (SOURCE_ROOT, _share_dir()):
        if base is not None and (base / DEFAULT_MODEL_DIR_NAME / 'config.json').is_file():
            return base / DEFAULT_MODEL_DIR_NAME
    return SOURCE_ROOT / DEFAULT_MODEL_DIR_NAME


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """'' or None means the default model."""
    return Path(os.path.expanduser(str(model))) if model else default_model_dir()


# --- which simulator world a model learned -----------------------------------------------------
# The fact lives with the model: `publish` writes "world" into the published eval.json; sim_node
# (world: model in config/vla_nav.yaml), the demo and test_default_model read it through
# model_world, so publishing a v2 model into models/default switches them all to the v2 world.
WORLDS = SIM_WORLDS
WORLD_FROM_MODEL = SIM_WORLD_FROM_MODEL
EVAL_FILE = 'eval.json'                    # what `publish` writes beside a published model
RECORD_SETTINGS_FILE = 'record_sim.json'   # what record-sim writes beside its bags
LEGACY_WORLD = 'v1'                        # models and recordings from before worlds were named


def recorded_world(data_dir: str | os.PathLike) -> str | None:
    """The world record-sim recorded `data_dir` in (its record_sim.json; a file without "world"
    is from before v2: v1), or None when the folder was not written by record-sim."""
    path = Path(data_dir) / RECORD_SETTINGS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding='utf-8')).get('world', LEGACY_WORLD)


def training_data_folders(document: dict) -> list[str]:
    """The data folders a checkpoint's config.json (`document`) says its training read
    (metadata.train.data: one folder or a list; [] when it says nothing)."""
    train = (document.get('metadata') or {}).get('train') or {}
    data = train.get('data') or []
    return [data] if isinstance(data, str) else list(data)


def model_world(model_dir: str | os.PathLike) -> str:
    """The simulator world the model in `model_dir` learned, from what the model folder says:
    1. "world" in its eval.json (written by `publish`),
    2. else the world of the record-sim folders its training read (config.json
       metadata.train.data, each folder's record_sim.json; folders that are gone or were not
       recorded by record-sim, e.g. a robot's own bags, say nothing),
    3. else v1 (models from before v2, the committed default, real-robot-only models).
    ValueError when the training folders disagree (mixed worlds: say the world explicitly)."""
    model_dir = Path(model_dir)
    published = model_dir / EVAL_FILE
    if published.is_file():
        world = json.loads(published.read_text(encoding='utf-8')).get('world')
        if world is not None:
            return _checked_world(world, published)
    config = model_dir / 'config.json'
    folders = []
    if config.is_file():
        folders = training_data_folders(json.loads(config.read_text(encoding='utf-8')))
    worlds = {folder: recorded_world(folder) for folder in folders}
    found = sorted({world for world in worlds.values() if world is not None})
    if len(found) > 1:
        raise ValueError(f'{model_dir} was trained on several worlds ({worlds}); name the world '
                         'explicitly (publish --world, demo --world, sim_node world)')
    return _checked_world(found[0], config) if found else LEGACY_WORLD


def resolve_sim_world(world: str, model: str | os.PathLike | None) -> str:
    """sim_node's `world` parameter: v1 | v2 as given, or 'model': the world of `model`
    (vla_node's model parameter; '' = models/default), see model_world."""
    if world == WORLD_FROM_MODEL:
        return model_world(resolve_model_dir(model))
    return _checked_world(world, 'world')


def _checked_world(world: str, source) -> str:
    if world not in WORLDS:
        raise ValueError(f'{source}: world must be one of {WORLDS}, got {world!r}')
    return world


LOOPBACK_ENV = {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'ROS_LOCALHOST_ONLY': '1'}


def loopback_ros_env(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict:
    """An environment whose DDS traffic stays on loopback (tests, demo, soak, CI).

    Default DDS discovery multicasts onto the network; every process we start ourselves gets this.
    """
    env = dict(os.environ if base is None else base)
    env.update(LOOPBACK_ENV)
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    return env


def use_loopback_ros(domain_id: int | None = None) -> None:
    """Apply loopback_ros_env to this process (call before rclpy.init)."""
    os.environ.update(LOOPBACK_ENV)
    if domain_id is not None:
        os.environ['ROS_DOMAIN_ID'] = str(domain_id)
