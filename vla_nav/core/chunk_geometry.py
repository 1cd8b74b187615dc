"""Where a chunk would take the robot: the 10 (v, w) steps integrated on the floor, and that path
projected through a forward pinhole camera. numpy/stdlib only: vla_node's nav_msgs/Path and
annotated image, and the demo's GIF (vla_nav.tools.overlay) all use these.

    integrate_chunk_poses(actions, dt, substeps=4) -> (N + 1, 3) x fwd, y left, yaw; from (0, 0, 0)
    integrate_chunk(actions, dt, substeps=4)       -> (N + 1, 2) the floor points only
    project_floor_points(points, height, width, camera) -> (N, 2) pixel (u, v), NaN behind
    camera: {'forward': m ahead of the base, 'height': m above the floor, 'fovy_deg', 'tilt': rad down}
"""
from __future__ import annotations

import math

import numpy as np


def integrate_chunk_poses(actions: np.ndarray, dt: float, substeps: int = 4) -> np.ndarray:
    """(N, 2) (v, w) -> (N + 1, 3) poses (x forward, y left, yaw) in the base frame, from 0
    (unicycle model, `substeps` Euler steps per action)."""
    x = y = yaw = 0.0
    poses = [(0.0, 0.0, 0.0)]
    step = dt / substeps
    for linear, angular in np.asarray(actions, dtype=np.float64).reshape(-1, 2):
        for _ in range(substeps):
            x += linear * math.cos(yaw) * step
            y += linear * math.sin(yaw) * step
            yaw += angular * step
        poses.append((x, y, yaw))
    return np.array(poses)


def integrate_chunk(actions: np.ndarray, dt: float, substeps: int = 4) -> np.ndarray:
    """(N, 2) (v, w) -> (N + 1, 2) floor points (x forward, y left) in the robot frame, from 0."""
    return integrate_chunk_poses(actions, dt, substeps)[:, :2]


def project_floor_points(points: np.ndarray, image_height: int, image_width: int,
                         camera: dict) -> np.ndarray:
    """Robot-frame floor points (x fwd, y left) -> (N, 2) pixel (u, v); NaN for points behind."""
    focal = (image_height / 2.0) / math.tan(math.radians(camera['fovy_deg']) / 2.0)
    tilt = camera['tilt']
    dx = points[:, 0] - camera['forward']
    dz = -camera['height']
    depth = dx * math.cos(tilt) - dz * math.sin(tilt)
    right = -points[:, 1]
    down = -(dx * math.sin(tilt) + dz * math.cos(tilt))
    with np.errstate(divide='ignore', invalid='ignore'):
        u = image_width / 2.0 + focal * right / depth
        v = image_height / 2.0 + focal * down / depth
    behind = depth < 0.05
    u[behind], v[behind] = np.nan, np.nan
    return np.stack([u, v], axis=1)
