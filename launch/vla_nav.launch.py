"""vla_nav: vla_node + chunk_executor (+ the built-in simulator with sim:=true).

    ros2 launch vla_nav vla_nav.launch.py model:=/path/to/checkpoint device:=cuda
    ros2 launch vla_nav vla_nav.launch.py sim:=true use_sim_time:=true

Parameters come from `params_file` (default: the package's config/vla_nav.yaml); launch arguments
override the few that change per robot. The file is read here and handed to each node as a
parameter dict, so a `namespace` does not break the node-name keys of the YAML. Ctrl-C (SIGINT)
stops every node; each publishes its zero/preempt before exiting. If vla_node or chunk_executor
exits (e.g. the model cannot be loaded), the whole launch shuts down rather than half-running.
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'vla_nav'
ARGUMENTS = {
    'sim': ('false', 'true: also start the built-in simulator (sim_node)'),
    'model': ('', "checkpoint directory; '' = the package's models/default"),
    'backend': ('onnx', 'onnx | torch (or module:factory for a custom engine)'),
    'device': ('cpu', 'cpu | cuda | tensorrt'),
    'camera_topic': ('/camera/image_raw', 'sensor_msgs/Image topic; compressed adds /compressed'),
    'image_transport': ('raw', 'raw | compressed'),
    'params_file': (None, 'parameter YAML (default: the package config/vla_nav.yaml)'),
    'use_sim_time': ('false', 'true: follow /clock (the simulator publishes it)'),
    'namespace': ('', 'namespace for every node'),
}


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _section(document: dict, node_name: str) -> dict:
    return dict((document.get(node_name) or {}).get('ros__parameters') or {})


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    with open(value['params_file'], encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    use_sim_time = _is_true(value['use_sim_time'])
    common = {'namespace': value['namespace'], 'output': 'screen', 'emulate_tty': True,
              'sigterm_timeout': '5'}
    vla_parameters = {**_section(document, 'vla_node'),
                      'model': value['model'], 'backend': value['backend'],
                      'device': value['device'], 'image_topic': value['camera_topic'],
                      'compressed_image_topic': value['camera_topic'] + '/compressed',
                      'image_transport': value['image_transport'], 'use_sim_time': use_sim_time}
    executor_parameters = {**_section(document, 'chunk_executor'), 'use_sim_time': use_sim_time}
    actions = [
        Node(package=PACKAGE, executable='vla_node', name='vla_node',
             parameters=[vla_parameters], on_exit=Shutdown(reason='vla_node exited'), **common),
        Node(package=PACKAGE, executable='chunk_executor', name='chunk_executor',
             parameters=[executor_parameters], on_exit=Shutdown(reason='chunk_executor exited'),
             **common),
    ]
    if _is_true(value['sim']):
        sim_parameters = {**_section(document, 'sim_node'), 'image_topic': value['camera_topic'],
                          'publish_clock': use_sim_time}
        actions.append(Node(package=PACKAGE, executable='sim_node', name='sim_node',
                            parameters=[sim_parameters], **common))
    return actions


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), 'config', 'vla_nav.yaml')
    declared = [DeclareLaunchArgument(name, default_value=default_params if default is None else default,
                                      description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
