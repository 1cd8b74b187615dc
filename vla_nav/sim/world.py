"""The MuJoCo side of the simulator: one compiled model reused for every room, offscreen rendering
and contact-based collision checks.

Rebuilding and recompiling a model per episode would also mean a new GL context per episode
(~0.2-0.5 s here), so the model holds pools of static bodies per shape (walls, cones, boxes,
balls, cylinders); `apply_layout` moves the used ones into the room and parks the rest far below
the floor, and sets colours, sizes and the light. The robot is a body with planar joints whose
pose is written directly (kinematic base); `mj_forward` then runs MuJoCo's collision detection.

Rendering: `MUJOCO_GL=egl` (Mesa llvmpipe on a CPU, the GPU on a Jetson), `osmesa` when EGL is
missing; shadows, reflections and multisampling are off (they cost 3-10x the frame time).
"""
from __future__ import annotations

import math

import mujoco  # vla_nav.sim (the package) has chosen MUJOCO_GL before this import
import numpy as np

from vla_nav.sim.layout import (
    CONE_SIZES,
    ROBOT_RADIUS,
    WALL_HEIGHT,
    WALL_THICKNESS,
    Layout,
    SceneObject,
)

CAMERA_HEIGHT = 0.3        # m above the floor
CAMERA_FORWARD = 0.12      # m ahead of the robot centre
CAMERA_FOVY = 80.0         # degrees (square images: the horizontal field of view is the same)
CAMERA_TILT = math.radians(10.0)  # looking slightly down, so the floor in front is in view
HULL_HEIGHT = 0.26
POOL_SIZE = 10             # bodies per shape kind; more objects of one kind than this are dropped
PARKED_Z = -20.0
_HIDDEN_GROUP = 5

_OBSTACLE_CONTYPE, _ROBOT_CONTYPE = 2, 1
_POOL_KINDS = ('box', 'ball', 'cylinder') + tuple(f'cone{i}' for i in range(len(CONE_SIZES)))


def _cone_vertices(radius: float, height: float, segments: int = 24) -> str:
    points = [(radius * math.cos(2 * math.pi * i / segments),
               radius * math.sin(2 * math.pi * i / segments), 0.0) for i in range(segments)]
    points.append((0.0, 0.0, height))
    return ' '.join(f'{v:.5f}' for point in points for v in point)


def _model_xml(height: int, width: int) -> str:
    obstacle = f'contype="{_OBSTACLE_CONTYPE}" conaffinity="{_ROBOT_CONTYPE}"'
    meshes = '\n'.join(f'<mesh name="cone{i}" vertex="{_cone_vertices(r, h)}"/>'
                       for i, (r, h) in enumerate(CONE_SIZES))
    bodies = []
    for side in range(4):
        bodies.append(f'<body name="wall{side}" pos="0 0 {PARKED_Z}"><geom name="wall{side}" '
                      f'type="box" size="1 {WALL_THICKNESS / 2} {WALL_HEIGHT / 2}" '
                      f'pos="0 0 {WALL_HEIGHT / 2}" material="matte" {obstacle}/></body>')
    for kind in _POOL_KINDS:
        for i in range(POOL_SIZE):
            if kind.startswith('cone'):
                geom = f'type="mesh" mesh="{kind}"'
            else:
                geom = {'box': 'type="box" size=".1 .1 .1"', 'ball': 'type="sphere" size=".1"',
                        'cylinder': 'type="cylinder" size=".1 .1"'}[kind]
            bodies.append(f'<body name="{kind}_{i}" pos="0 0 {PARKED_Z}"><geom name="{kind}_{i}" '
                          f'{geom} material="matte" {obstacle}/></body>')
    pitch_up = (math.sin(CAMERA_TILT), 0.0, math.cos(CAMERA_TILT))
    return f"""
<mujoco model="vla_nav_room">
  <compiler angle="radian"/>
  <option timestep="0.01"/>
  <visual>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight active="1" ambient="0 0 0" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
    <map znear="0.02" zfar="60"/>
  </visual>
  <asset>
    <texture name="checker" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0.78 0.78 0.78"
             width="256" height="256"/>
    <material name="floor" texture="checker" texrepeat="2 2" texuniform="true" rgba="1 1 1 1"/>
    <material name="matte" specular="0.15" shininess="0.2"/>
    {meshes}
  </asset>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" dir="0.3 0.2 -1"
           diffuse="0.7 0.7 0.7" ambient="0.3 0.3 0.3" specular="0.1 0.1 0.1"/>
    <geom name="floor" type="plane" size="40 40 0.1" material="floor" contype="0" conaffinity="0"/>
    {''.join(bodies)}
    <body name="robot">
      <joint name="robot_x" type="slide" axis="1 0 0"/>
      <joint name="robot_y" type="slide" axis="0 1 0"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1"/>
      <geom name="hull" type="cylinder" size="{ROBOT_RADIUS} {HULL_HEIGHT / 2}"
            pos="0 0 {HULL_HEIGHT / 2 + 0.02}" rgba="0.2 0.2 0.22 1" mass="5"
            contype="{_ROBOT_CONTYPE}" conaffinity="{_OBSTACLE_CONTYPE}"/>
      <geom name="mast" type="box" size="0.03 0.03 0.03" pos="{CAMERA_FORWARD} 0 {CAMERA_HEIGHT - 0.02}"
            rgba="0.1 0.1 0.1 1" contype="0" conaffinity="0" mass="0.1"/>
      <camera name="front" pos="{CAMERA_FORWARD} 0 {CAMERA_HEIGHT}" fovy="{CAMERA_FOVY}"
              xyaxes="0 -1 0 {pitch_up[0]:.5f} 0 {pitch_up[2]:.5f}"/>
      <camera name="chase" pos="-1.6 0 1.1" xyaxes="0 -1 0 0.5 0 0.866" fovy="60"/>
    </body>
  </worldbody>
</mujoco>
"""


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class SceneBase:
    """What both worlds do the same way on their MuJoCo model: resize a pooled geom (and its
    bounding volumes), park it out of sight, place the robot, render and count pixels per geom.
    Subclasses set model, data, _hull, _geom_owner, _renderer and _scene_option."""

    def _resize_geom(self, geom: int, size, z: float) -> None:
        """Give a pooled geom its size and height, and update its bounding volumes (MuJoCo's
        broad/mid phase read them)."""
        model = self.model
        padded = np.zeros(3)
        padded[:len(size)] = size
        model.geom_size[geom] = padded
        model.geom_pos[geom] = (0.0, 0.0, z)
        kind = model.geom_type[geom]
        if kind == mujoco.mjtGeom.mjGEOM_BOX:
            half = padded
        elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            half = np.full(3, padded[0])
        elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            half = np.array([padded[0], padded[0], padded[1] + padded[0]])
        else:  # cylinder
            half = np.array([padded[0], padded[0], padded[1]])
        model.geom_rbound[geom] = float(np.linalg.norm(half))
        model.geom_aabb[geom] = (0.0, 0.0, 0.0, *half)
        node = model.body_bvhadr[model.geom_bodyid[geom]]
        if node >= 0:
            model.bvh_aabb[node] = (0.0, 0.0, z, *half)

    def _park(self, geom: int) -> None:
        body = self.model.geom_bodyid[geom]
        self.model.body_pos[body] = (100.0 + 3.0 * geom, 0.0, PARKED_Z)
        self.model.geom_group[geom] = _HIDDEN_GROUP

    def set_robot_pose(self, x: float, y: float, yaw: float) -> int | str | None:
        """Place the robot; returns what it touches (object index, 'wall') or None."""
        self.data.qpos[:3] = (x, y, yaw)
        mujoco.mj_forward(self.model, self.data)
        count = self.data.ncon
        if count == 0:
            return None
        contacts = self.data.contact
        for first, second in zip(contacts.geom1[:count].tolist(), contacts.geom2[:count].tolist(),
                                 strict=True):
            other = second if first == self._hull else first if second == self._hull else None
            if other in self._geom_owner:
                return self._geom_owner[other]
        return None

    def render(self, camera: str = 'front') -> np.ndarray:
        """RGB uint8 (H, W, 3) from the robot's camera at the current pose."""
        self._renderer.update_scene(self.data, camera=camera, scene_option=self._scene_option)
        return self._renderer.render()

    def _geom_pixels(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(geom ids, visible pixel counts) from a segmentation render."""
        self._renderer.enable_segmentation_rendering()
        try:
            self._renderer.update_scene(self.data, camera=camera, scene_option=self._scene_option)
            segmentation = self._renderer.render()
        finally:
            self._renderer.disable_segmentation_rendering()
        ids = segmentation[..., 0][segmentation[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)]
        return np.unique(ids, return_counts=True)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class World(SceneBase):
    """A room for the robot: `apply_layout`, `set_robot_pose` (-> colliding object or None),
    `render`, `pixel_counts` (object visibility from a segmentation render)."""

    def __init__(self, image_size: tuple[int, int] = (128, 128)):
        self.height, self.width = (int(v) for v in image_size)
        self.model = mujoco.MjModel.from_xml_string(_model_xml(self.height, self.width))
        self.data = mujoco.MjData(self.model)
        self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        flags = self._renderer.scene.flags
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_HAZE):
            flags[flag] = False
        # Parked pool geoms go to a hidden geom group, so the renderer does not even draw them.
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[:] = 1
        self._scene_option.geomgroup[_HIDDEN_GROUP] = 0
        model = self.model
        self._hull = model.geom('hull').id
        self._floor_material = model.material('floor').id
        self._light = model.light('sun').id
        self._walls = [model.geom(f'wall{i}').id for i in range(4)]
        self._pools = {kind: [model.geom(f'{kind}_{i}').id for i in range(POOL_SIZE)]
                       for kind in _POOL_KINDS}
        # Compiled with pos 0, the pool geoms are flagged "same frame as the body" and MuJoCo would
        # ignore the heights written later.
        for geoms in self._pools.values():
            model.geom_sameframe[geoms] = 0
        self._geom_owner: dict[int, int | str] = {}   # geom id -> object index | 'wall'
        self._object_geoms: dict[int, int] = {}        # object index -> geom id
        self.layout: Layout | None = None

    # -- room -------------------------------------------------------------------------------
    def apply_layout(self, layout: Layout) -> None:
        model = self.model
        for geoms in self._pools.values():
            for geom in geoms:
                self._park(geom)
        self._geom_owner.clear()
        self._object_geoms.clear()
        wall_rgba = (*layout.appearance.wall_rgb, 1.0)
        hx, hy, half_t = layout.width / 2, layout.depth / 2, WALL_THICKNESS / 2
        wall_specs = (((0.0, -hy - half_t), (hx + WALL_THICKNESS, half_t)),
                      ((0.0, hy + half_t), (hx + WALL_THICKNESS, half_t)),
                      ((-hx - half_t, 0.0), (half_t, hy + WALL_THICKNESS)),
                      ((hx + half_t, 0.0), (half_t, hy + WALL_THICKNESS)))
        for geom, ((x, y), (sx, sy)) in zip(self._walls, wall_specs, strict=True):
            self._place(geom, x, y, 0.0, (sx, sy, WALL_HEIGHT / 2), WALL_HEIGHT / 2, wall_rgba)
            self._geom_owner[geom] = 'wall'
        used = {kind: 0 for kind in _POOL_KINDS}
        for index, obj in enumerate(layout.objects):
            kind = self._pool_kind(obj)
            if used[kind] >= POOL_SIZE:
                continue  # the generator never places this many; a hand-made layout might
            geom = self._pools[kind][used[kind]]
            used[kind] += 1
            size, z = self._geom_size(obj)
            self._place(geom, obj.position[0], obj.position[1], obj.yaw, size, z, (*obj.rgb, 1.0))
            self._geom_owner[geom] = index
            self._object_geoms[index] = geom
        look = layout.appearance
        model.mat_rgba[self._floor_material] = (*look.floor_rgb, 1.0)
        model.light_dir[self._light] = look.light_dir
        model.light_diffuse[self._light] = (look.light_diffuse,) * 3
        model.light_ambient[self._light] = (look.ambient,) * 3
        self.layout = layout

    @staticmethod
    def _pool_kind(obj: SceneObject) -> str:
        if obj.shape == 'cone':
            nearest = min(range(len(CONE_SIZES)), key=lambda i: abs(CONE_SIZES[i][0] - obj.size[0])
                          + abs(CONE_SIZES[i][1] - obj.size[1]))
            return f'cone{nearest}'
        return obj.shape

    @staticmethod
    def _geom_size(obj: SceneObject) -> tuple[tuple[float, ...] | None, float]:
        """(MuJoCo size or None for meshes, geom centre height)."""
        if obj.shape == 'box':
            return tuple(obj.size), obj.size[2]
        if obj.shape == 'ball':
            return (obj.size[0],), obj.size[0]
        if obj.shape == 'cylinder':
            return tuple(obj.size), obj.size[1]
        return None, 0.0

    def _place(self, geom: int, x: float, y: float, yaw: float, size, z: float, rgba) -> None:
        """Move a pool body into the room; for primitives also resize the geom and refresh its
        bounding volumes (MuJoCo's broad/mid phase read them)."""
        model = self.model
        body = model.geom_bodyid[geom]
        model.body_pos[body] = (x, y, 0.0)
        model.body_quat[body] = _yaw_quat(yaw)
        model.geom_rgba[geom] = rgba
        model.geom_group[geom] = 0
        if size is None:
            return
        self._resize_geom(geom, size, z)

    # -- camera -------------------------------------------------------------------------------
    def pixel_counts(self, camera: str = 'front') -> dict[int, int]:
        """Visible pixels per layout object index (segmentation render)."""
        geoms, counts = self._geom_pixels(camera)
        return {self._geom_owner[int(g)]: int(c) for g, c in zip(geoms, counts, strict=True)
                if isinstance(self._geom_owner.get(int(g)), int)}
