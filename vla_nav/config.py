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

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from vla_nav.core.node_config import (
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
