"""Test-wide safety: DDS on loopback, a private ROS_DOMAIN_ID, logs in a temp dir, offline hubs.
Tests marked `ros` skip (with the reason) where rclpy is not installed, e.g. in the torch-free
Python 3.10 robot venv that `make test` also runs."""
import importlib.util
import os
import tempfile

import pytest

# Set before anything imports rclpy: default discovery would multicast onto the network.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
# 100-129: the pytest process's own rclpy; test files use 130-229 (rosutil), tools 30-89 (procs)
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 30))
os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='vla_nav_roslog_')
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('MUJOCO_GL', 'egl')


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec('rclpy') is not None:
        return
    skip = pytest.mark.skip(reason='needs rclpy (ROS 2), not installed here '
                                   '(e.g. the Python 3.10 robot venv)')
    for item in items:
        if 'ros' in item.keywords:
            item.add_marker(skip)
