"""vla_nav: vla_node + chunk_executor (+ the built-in simulator with sim:=true).

    ros2 launch vla_nav vla_nav.launch.py model:=/path/to/checkpoint device:=cuda
    ros2 launch vla_nav vla_nav.launch.py sim:=true use_sim_time:=true
    ros2 launch vla_nav vla_nav.launch.py namespace:=robot1 params_file:=/path/robot1.yaml

Parameters come from `params_file` (default: the package's config/vla_nav.yaml). The launch
arguments model, backend, device, camera_topic, image_transport and use_sim_time override it ONLY
when given on the command line (their default, '', means "as the params file says"), so a robot's
own params_file is never silently replaced by launch defaults. The file is read here and handed to
each node as a parameter dict, so a `namespace` does not break the node-name keys of the YAML; the
default topic names are relative, so `namespace:=robot1` moves every topic (/robot1/cmd_vel, ...)
except the absolute /diagnostics. Ctrl-C (SIGINT) stops every node; each publishes its
zero/preempt before exiting. If vla_node or chunk_executor exits (e.g. the model cannot be
loaded), the whole launch shuts down rather than half-running. With sim:=true, sim_node builds the
world the model learned (`world: model` in the params file: the model's eval.json says v1 or v2).
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'vla_nav'
FROM_PARAMS = ''   # the default of every overriding argument: keep what params_file says
ARGUMENTS = {
    'sim': ('false', 'true: also start the built-in simulator (sim_node)'),
    'model': (FROM_PARAMS, "checkpoint directory (default: params_file's; '' there = models/default)"),
    'backend': (FROM_PARAMS, 'onnx | torch (or module:factory) (default: params_file)'),
    'device': (FROM_PARAMS, 'cpu | cuda | tensorrt (default: params_file)'),
    'camera_topic': (FROM_PARAMS, 'sensor_msgs/Image topic; compressed adds /compressed '
                                  '(default: params_file, camera/image_raw)'),
    'image_transport': (FROM_PARAMS, 'raw | compressed (default: params_file)'),
    'params_file': (None, 'parameter YAML (default: the package config/vla_nav.yaml)'),
    'use_sim_time': (FROM_PARAMS, 'true: follow /clock (the simulator then publishes it)'),
    'namespace': ('', 'namespace for every node and every relative topic'),
}


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _section(document: dict, node_name: str) -> dict:
    return dict((document.get(node_name) or {}).get('ros__parameters') or {})


def parameter_overrides(values: dict) -> dict:
    """node name -> the parameters the launch arguments in `values` set: only arguments the user
    gave (not FROM_PARAMS) become overrides; everything else stays as the params file says."""
    given = {name: value for name, value in values.items() if value != FROM_PARAMS}
    vla, executor, sim = {}, {}, {}
    for name in ('model', 'backend', 'device', 'image_transport'):
        if name in given:
            vla[name] = given[name]
    if 'camera_topic' in given:
        camera = given['camera_topic']
        vla.update(image_topic=camera, compressed_image_topic=camera + '/compressed')
        sim['image_topic'] = camera
    if 'use_sim_time' in given:
        use_sim_time = _is_true(given['use_sim_time'])
        vla['use_sim_time'] = executor['use_sim_time'] = sim['publish_clock'] = use_sim_time
    return {'vla_node': vla, 'chunk_executor': executor, 'sim_node': sim}


def sim_world(sim: dict, vla: dict) -> dict:
    """sim_node's `world: model` becomes the world the model vla_node runs learned (its eval.json,
    vla_nav.config.resolve_sim_world), so the simulator matches the model this launch starts."""
    if sim.get('world') != 'model':
        return sim
    from vla_nav.config import resolve_sim_world
    return {**sim, 'world': resolve_sim_world('model', vla.get('model', ''))}


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    with open(value['params_file'], encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    overrides = parameter_overrides({name: value[name] for name in ARGUMENTS
                                     if name not in ('sim', 'params_file', 'namespace')})
    common = {'namespace': value['namespace'], 'output': 'screen', 'emulate_tty': True,
              'sigterm_timeout': '5'}
    names = ['vla_node', 'chunk_executor'] + (['sim_node'] if _is_true(value['sim']) else [])
    parameters_of = {name: {**_section(document, name), **overrides[name]} for name in names}
    if 'sim_node' in parameters_of:
        parameters_of['sim_node'] = sim_world(parameters_of['sim_node'], parameters_of['vla_node'])
    actions = []
    for name in names:
        parameters = parameters_of[name]
        on_exit = {} if name == 'sim_node' else {'on_exit': Shutdown(reason=f'{name} exited')}
        actions.append(Node(package=PACKAGE, executable=name, name=name, parameters=[parameters],
                            **on_exit, **common))
    return actions


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), 'config', 'vla_nav.yaml')
    declared = [DeclareLaunchArgument(name, default_value=default_params if default is None else default,
                                      description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
