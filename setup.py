"""ament_python build for vla_nav (colcon on Humble, or `pip install -e .` in the dev venv)."""
import sys
from glob import glob

from setuptools import Distribution, find_packages, setup

PACKAGE = 'vla_nav'
NODES = ('vla_node', 'chunk_executor', 'sim_node')
# colcon runs `setup.py install|develop` and puts console scripts in lib/<pkg> through setup.cfg;
# pip (PEP 517 wheels) puts them in bin/, so for pip we also ship thin wrappers to lib/<pkg>,
# which is where `ros2 run` and launch look.
BUILT_BY_COLCON = any(command in sys.argv for command in ('install', 'develop'))
LIB_WRAPPERS = [] if BUILT_BY_COLCON else [(f'lib/{PACKAGE}', [f'scripts/{node}' for node in NODES])]


class DataFilesInEditableInstalls(Distribution):
    """setuptools' editable_wheel asks `has_data()` (which Distribution lacks) before installing
    data_files, so `pip install -e .` would silently skip share/ and lib/; answer it."""

    def has_data(self):
        return self.has_data_files()


setup(
    distclass=DataFilesInEditableInstalls,
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        # the small default checkpoint (trained weights + config + figures) and its fp32 ONNX graphs
        # (the text graph's weights come from the MiniLM package), so the robot needs no export
        (f'share/{PACKAGE}/models/default', [path for path in glob('models/default/*')
                                              if path.endswith(('.json', '.safetensors', '.md'))]),
        (f'share/{PACKAGE}/models/default/onnx', [path for path in glob('models/default/onnx/*')
                                                   if path.endswith(('.json', '.onnx'))
                                                   and not path.endswith('.fp16.onnx')]),
    ] + LIB_WRAPPERS,
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vla_nav maintainers',
    maintainer_email='maintainers@vla-nav.dev',
    description='Vision-language-action navigation nodes for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [f'{node} = {PACKAGE}.nodes.{node}:main' for node in NODES]
        + [f'{PACKAGE} = {PACKAGE}.cli:main'],
    },
)
