"""The MuJoCo side of the v2 world: composite objects from primitives, textured rooms of any shape,
two lights and a per-episode camera mount. Same interface as world.World (NavSim uses either).

As in v1, one model is compiled once and reused: pools of one-geom bodies (every part of every
object is its own body, so a moved part keeps a correct bounding volume), moved into the room by
`apply_layout` and parked below the floor otherwise. Materials: MuJoCo builtin textures only
(checker, gradient, flat with random marks, edge marks), tinted per episode. Uses only APIs that
MuJoCo 3.x and 4.0 both have (mju_mat2Quat, model arrays, Renderer, segmentation rendering).
"""
from __future__ import annotations

import math

import mujoco  # vla_nav.sim (the package) has chosen MUJOCO_GL before this import
import numpy as np

from vla_nav.sim import catalog
from vla_nav.sim.layout import ROBOT_RADIUS, WALL_HEIGHT
from vla_nav.sim.rooms import FLOOR_MATERIALS, WALL_MATERIALS, RoomLayout
from vla_nav.sim.world import HULL_HEIGHT, PARKED_Z, SceneBase, _cone_vertices, _yaw_quat

OBJECTS_PER_CATEGORY = 4     # the generator never places more of one category
CAMERA_FORWARD_V2 = 0.18     # m ahead of the robot centre: at the hull's front, little hull in view
CRATES = 8
WALLS = 12
_HIDDEN_GROUP = 5
_OBSTACLE, _ROBOT = 2, 1

_TEXTURES = """
    <texture name="t_checker" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0.78 0.78 0.78"
             width="256" height="256"/>
    <texture name="t_tiles" type="2d" builtin="checker" rgb1="0.95 0.95 0.95" rgb2="0.88 0.88 0.88"
             mark="edge" markrgb="0.35 0.35 0.35" width="256" height="256"/>
    <texture name="t_marble" type="2d" builtin="flat" rgb1="0.92 0.92 0.92" mark="random"
             random="0.08" markrgb="0.55 0.55 0.6" width="256" height="256"/>
    <texture name="t_gradient" type="2d" builtin="gradient" rgb1="1 1 1" rgb2="0.6 0.6 0.6"
             width="256" height="256"/>
    <texture name="t_speckle" type="2d" builtin="flat" rgb1="1 1 1" mark="random" random="0.03"
             markrgb="0.4 0.4 0.4" width="256" height="256"/>
    <texture name="t_panels" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0.93 0.93 0.93"
             mark="edge" markrgb="0.5 0.5 0.5" width="256" height="256"/>
    <texture name="t_noise" type="2d" builtin="flat" rgb1="0.85 0.85 0.85" mark="random"
             random="0.35" markrgb="1 1 1" width="128" height="128"/>
"""
_FLOOR_MATERIAL_XML = {
    'checker': 'texture="t_checker" texrepeat="2 2"', 'checker_fine': 'texture="t_checker" texrepeat="6 6"',
    'tiles': 'texture="t_tiles" texrepeat="3 3"', 'flat': '', 'marble': 'texture="t_marble" texrepeat="1 1"',
    'gradient': 'texture="t_gradient" texrepeat="0.5 0.5"',
}
_WALL_MATERIAL_XML = {
    'plain': '', 'gradient': 'texture="t_gradient" texrepeat="0.5 0.5"',
    'speckle': 'texture="t_speckle" texrepeat="1 1"', 'panels': 'texture="t_panels" texrepeat="1 0.5"',
    'noise': 'texture="t_noise" texrepeat="2 2"',
}
_PRIMITIVE = {'box': 'box', 'sphere': 'sphere', 'cylinder': 'cylinder', 'capsule': 'capsule'}


def _pool_keys() -> list[tuple[str, tuple[str, ...]]]:
    """(pool key, part types) per object pool: one per category, cones one per mesh size."""
    keys = []
    for category in catalog.CATEGORIES:
        if category == 'cone':
            keys += [(f'cone{i}', ('cone', 'box')) for i in range(len(catalog.CONE_MESHES))]
        else:
            keys.append((category, catalog.PART_TYPES[category]))
    return keys + [('crate', ('box',))]


def _model_xml(height: int, width: int) -> str:
    obstacle = f'contype="{_OBSTACLE}" conaffinity="{_ROBOT}"'
    meshes = '\n'.join(f'<mesh name="cone{i}" vertex="{_cone_vertices(r, h)}"/>'
                       for i, (r, h) in enumerate(catalog.CONE_MESHES))
    materials = '\n'.join(f'<material name="floor_{n}" {_FLOOR_MATERIAL_XML[n]} texuniform="true"/>'
                          for n in FLOOR_MATERIALS)
    materials += '\n'.join(f'<material name="wall_{n}" {_WALL_MATERIAL_XML[n]} texuniform="true" '
                           f'specular="0.1"/>' for n in WALL_MATERIALS)
    bodies = [f'<body name="wall{i}" pos="0 0 {PARKED_Z}"><geom name="wall{i}" type="box" '
              f'size="1 0.05 {WALL_HEIGHT / 2}" material="wall_plain" {obstacle}/></body>'
              for i in range(WALLS)]
    for key, types in _pool_keys():
        count = CRATES if key == 'crate' else OBJECTS_PER_CATEGORY
        for i in range(count):
            for p, kind in enumerate(types):
                geom = (f'type="mesh" mesh="{key}"' if kind == 'cone'
                        else f'type="{_PRIMITIVE[kind]}" size=".1 .1 .1"')
                name = f'{key}_{i}_{p}'
                bodies.append(f'<body name="{name}" pos="0 0 {PARKED_Z}"><geom name="{name}" {geom} '
                              f'material="matte" {obstacle}/></body>')
    return f"""
<mujoco model="vla_nav_room_v2">
  <compiler angle="radian"/>
  <option timestep="0.01"/>
  <!-- znear/zfar are fractions of the extent: without this, the parked pool far away makes the
       extent large and the near plane clips the floor in front of the robot (v1 has that band) -->
  <statistic extent="1" center="0 0 0.5"/>
  <visual>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight active="1" ambient="0 0 0" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
    <map znear="0.02" zfar="60"/>
  </visual>
  <asset>
    {_TEXTURES}
    {materials}
    <material name="matte" specular="0.15" shininess="0.2"/>
    {meshes}
  </asset>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" dir="0.3 0.2 -1"
           diffuse="0.7 0.7 0.7" ambient="0.3 0.3 0.3" specular="0.1 0.1 0.1"/>
    <light name="lamp" castshadow="false" pos="0 0 2.4" diffuse="0 0 0" specular="0 0 0"
           attenuation="1 0.1 0.05"/>
    <geom name="floor" type="plane" size="40 40 0.1" material="floor_checker" contype="0"
          conaffinity="0"/>
    {''.join(bodies)}
    <body name="robot">
      <joint name="robot_x" type="slide" axis="1 0 0"/>
      <joint name="robot_y" type="slide" axis="0 1 0"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1"/>
      <geom name="hull" type="cylinder" size="{ROBOT_RADIUS} {HULL_HEIGHT / 2}"
            pos="0 0 {HULL_HEIGHT / 2 + 0.02}" rgba="0.2 0.2 0.22 1" mass="5"
            contype="{_ROBOT}" conaffinity="{_OBSTACLE}"/>
      <camera name="front" pos="{CAMERA_FORWARD_V2} 0 0.3" fovy="80" xyaxes="0 -1 0 0.17 0 0.98"/>
      <camera name="chase" pos="-1.6 0 1.1" xyaxes="0 -1 0 0.5 0 0.866" fovy="60"/>
    </body>
  </worldbody>
</mujoco>
"""


def camera_quat(pitch_deg: float) -> np.ndarray:
    """The front camera's orientation in the robot frame: looking along +x, pitched down."""
    tilt = math.radians(pitch_deg)
    x_axis = np.array([0.0, -1.0, 0.0])
    y_axis = np.array([math.sin(tilt), 0.0, math.cos(tilt)])
    z_axis = np.cross(x_axis, y_axis)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([x_axis, y_axis, z_axis], axis=1).flatten())
    return quat


class World2(SceneBase):
    """`apply_layout(RoomLayout)`, `set_robot_pose` (-> object index | 'wall' | None), `render`,
    `pixel_counts` (visible pixels per object index), `close` - as world.World."""

    def __init__(self, image_size: tuple[int, int] = (128, 128)):
        self.height, self.width = (int(v) for v in image_size)
        self.model = mujoco.MjModel.from_xml_string(_model_xml(self.height, self.width))
        self.data = mujoco.MjData(self.model)
        self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        flags = self._renderer.scene.flags
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_HAZE):
            flags[flag] = False
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[:] = 1
        self._scene_option.geomgroup[_HIDDEN_GROUP] = 0
        model = self.model
        self._hull = model.geom('hull').id
        self._floor = model.geom('floor').id
        self._sun, self._lamp = model.light('sun').id, model.light('lamp').id
        self._camera = model.camera('front').id
        self._materials = {name: model.material(name).id for name in
                           [f'floor_{n}' for n in FLOOR_MATERIALS] + [f'wall_{n}' for n in WALL_MATERIALS]}
        self._walls = [model.geom(f'wall{i}').id for i in range(WALLS)]
        self._pools: dict[str, list[list[int]]] = {}
        for key, types in _pool_keys():
            count = CRATES if key == 'crate' else OBJECTS_PER_CATEGORY
            self._pools[key] = [[model.geom(f'{key}_{i}_{p}').id for p in range(len(types))]
                                for i in range(count)]
        every = self._walls + [g for pool in self._pools.values() for obj in pool for g in obj]
        model.geom_sameframe[every] = 0
        self._all_geoms = every
        self._geom_owner: dict[int, int | str] = {}
        self.layout: RoomLayout | None = None

    # -- room -------------------------------------------------------------------------------
    def apply_layout(self, layout: RoomLayout) -> None:
        model = self.model
        for geom in self._all_geoms:
            self._park(geom)
        self._geom_owner.clear()
        style = layout.style
        wall_material = self._materials[f'wall_{style.wall_material}']
        model.mat_rgba[wall_material] = (*style.wall_rgb, 1.0)
        for geom, (cx, cy, hx, hy) in zip(self._walls, layout.wall_boxes[:WALLS], strict=False):
            self._place(geom, cx, cy, 0.0, (hx, hy, WALL_HEIGHT / 2), WALL_HEIGHT / 2, (*style.wall_rgb, 1.0))
            model.geom_matid[geom] = wall_material
            self._geom_owner[geom] = 'wall'
        used = {key: 0 for key in self._pools}
        for index, obj in enumerate(layout.objects):
            parts = catalog.parts(obj.shape, obj.size) if obj.shape != 'crate' else (
                catalog.Part('box', (obj.size[0], obj.size[1], obj.size[2] / 2),
                             (0.0, 0.0, obj.size[2] / 2), None),)
            key = obj.shape if obj.shape != 'cone' else \
                f'cone{catalog.CONE_MESHES.index(parts[0].size)}'
            if used[key] >= len(self._pools[key]):
                continue  # the generator never places this many of one kind
            geoms = self._pools[key][used[key]]
            used[key] += 1
            cos_y, sin_y = math.cos(obj.yaw), math.sin(obj.yaw)
            for geom, part in zip(geoms, parts, strict=True):
                px, py, pz = part.pos
                x = obj.position[0] + px * cos_y - py * sin_y
                y = obj.position[1] + px * sin_y + py * cos_y
                rgb = obj.rgb if part.rgb is None else part.rgb
                size = None if part.kind == 'cone' else part.size
                self._place(geom, x, y, obj.yaw, size, pz, (*rgb, 1.0), cone_base=part.kind == 'cone')
                self._geom_owner[geom] = index
        model.geom_matid[self._floor] = self._materials[f'floor_{style.floor_material}']
        model.mat_rgba[self._materials[f'floor_{style.floor_material}']] = (*style.floor_rgb, 1.0)
        model.light_dir[self._sun] = style.light_dir
        model.light_diffuse[self._sun] = (style.light_diffuse,) * 3
        model.light_ambient[self._sun] = (style.ambient,) * 3
        model.light_pos[self._lamp] = style.lamp_pos
        model.light_diffuse[self._lamp] = (style.lamp_diffuse,) * 3
        model.light_active[self._lamp] = style.lamp_diffuse > 0.0   # an unlit lamp costs frame time
        camera = layout.camera
        model.cam_pos[self._camera] = (CAMERA_FORWARD_V2, 0.0, camera.height)
        model.cam_quat[self._camera] = camera_quat(camera.pitch_deg)
        model.cam_fovy[self._camera] = camera.fovy_deg
        self.layout = layout

    def _place(self, geom: int, x: float, y: float, yaw: float, size, z: float, rgba,
               cone_base: bool = False) -> None:
        model = self.model
        body = model.geom_bodyid[geom]
        model.body_pos[body] = (x, y, z if cone_base else 0.0)
        model.body_quat[body] = _yaw_quat(yaw)
        model.geom_rgba[geom] = rgba
        model.geom_group[geom] = 0
        model.geom_contype[geom] = _OBSTACLE
        if size is None:
            return
        self._resize_geom(geom, size, z)

    # -- robot and camera: SceneBase ------------------------------------------------------------
    def pixel_counts(self, camera: str = 'front') -> dict[int, int]:
        geoms, counts = self._geom_pixels(camera)
        out: dict[int, int] = {}
        for g, c in zip(geoms.tolist(), counts.tolist(), strict=True):
            owner = self._geom_owner.get(int(g))
            if isinstance(owner, int):
                out[owner] = out.get(owner, 0) + int(c)
        return out
