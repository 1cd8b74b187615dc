"""What a room is: walls, objects, robot start and appearance, plus the 2-D geometry the generator
and the expert driver share (free-space checks along a heading). Pure numpy, no MuJoCo.

Coordinates: the room is centred on the origin, x in [-width/2, width/2], y in [-depth/2, depth/2];
yaw is counter-clockwise from +x. Objects are approximated by their footprint circle (`radius`) for
planning; the simulator's collision check uses the true shapes.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

ROBOT_RADIUS = 0.2          # m, footprint of the differential-drive base
WALL_THICKNESS = 0.1        # m
WALL_HEIGHT = 2.0           # m

# Named colours (the words instructions use) and their nominal RGB; each episode jitters them a
# little so the policy cannot key on one exact value, but never across a hue boundary.
COLOURS = {
    'red': (0.86, 0.10, 0.10),
    'green': (0.12, 0.68, 0.16),
    'blue': (0.10, 0.24, 0.92),
    'yellow': (0.95, 0.84, 0.08),
    'purple': (0.56, 0.14, 0.76),
}
SHAPES = ('cone', 'box', 'ball', 'cylinder')
# Unnamed clutter colours: desaturated so they never read as a named colour.
CLUTTER_COLOURS = {
    'grey': (0.45, 0.45, 0.45),
    'brown': (0.42, 0.30, 0.20),
    'white': (0.88, 0.88, 0.85),
    'black': (0.12, 0.12, 0.13),
}
ROLES = ('target', 'distractor', 'clutter')
CONE_SIZES = ((0.15, 0.36), (0.2, 0.5))   # (base radius, height): the simulator's cone meshes


@dataclass(frozen=True)
class SceneObject:
    """One object in the room. `size` is the MuJoCo geom size of its shape (box: half extents,
    ball: (radius,), cylinder: (radius, half height), cone: (base radius, height))."""

    colour: str
    shape: str
    position: tuple[float, float]
    radius: float                    # footprint circle, m (planning, success radius)
    height: float                    # m, top above the floor
    size: tuple[float, ...]
    yaw: float = 0.0
    role: str = 'distractor'         # target | distractor | clutter
    rgb: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def name(self) -> str:
        return f'{self.colour} {self.shape}'

    def to_dict(self) -> dict:
        return {'name': self.name, 'colour': self.colour, 'shape': self.shape,
                'position': [round(v, 3) for v in self.position], 'radius': round(self.radius, 3),
                'height': round(self.height, 3), 'yaw': round(self.yaw, 3), 'role': self.role,
                'size': [round(v, 4) for v in self.size], 'rgb': [round(v, 4) for v in self.rgb]}


@dataclass(frozen=True)
class Appearance:
    """Per-episode looks: wall/floor tint and the light (direction is a unit vector pointing from
    the light into the room)."""

    wall_rgb: tuple[float, float, float] = (0.75, 0.72, 0.68)
    floor_rgb: tuple[float, float, float] = (0.55, 0.55, 0.55)
    light_dir: tuple[float, float, float] = (0.3, 0.2, -0.93)
    light_diffuse: float = 0.7
    ambient: float = 0.3


@dataclass(frozen=True)
class Layout:
    """A room: its size, objects, the robot's start pose and appearance, and where it came from."""

    width: float                                  # m along x
    depth: float                                  # m along y
    objects: tuple[SceneObject, ...]
    start_pose: tuple[float, float, float]        # x, y, yaw
    appearance: Appearance = field(default_factory=Appearance)
    split: str = 'train'
    seed: int = 0
    episode: int = 0

    @property
    def walls(self) -> tuple[tuple[tuple[float, float], tuple[float, float]], ...]:
        """Inner wall faces as segments ((x0, y0), (x1, y1)), counter-clockwise."""
        hx, hy = self.width / 2, self.depth / 2
        corners = ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))
        return tuple((corners[i], corners[(i + 1) % 4]) for i in range(4))

    @property
    def named_objects(self) -> tuple[SceneObject, ...]:
        """Objects an instruction can name (target and distractors, not clutter)."""
        return tuple(obj for obj in self.objects if obj.role != 'clutter')

    @property
    def target(self) -> SceneObject | None:
        return next((obj for obj in self.objects if obj.role == 'target'), None)

    def fingerprint(self) -> str:
        """Stable hash of the geometry (room size, objects at cm resolution, start pose): two
        layouts with the same fingerprint are the same scene for a policy."""
        parts = [round(self.width, 2), round(self.depth, 2),
                 [round(v, 2) for v in self.start_pose]]
        parts += sorted([obj.colour, obj.shape, round(obj.position[0], 2), round(obj.position[1], 2)]
                        for obj in self.objects)
        return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """JSON-ready description (the sim_node's /sim/scene message, plots, reports)."""
        return {'split': self.split, 'seed': self.seed, 'episode': self.episode,
                'room': {'width': self.width, 'depth': self.depth},
                'start_pose': [round(v, 3) for v in self.start_pose],
                'objects': [obj.to_dict() for obj in self.objects],
                'appearance': asdict(self.appearance), 'fingerprint': self.fingerprint()}


# ---------------------------------------------------------------------------------------------
# Geometry shared by the generator and the expert.

def wall_clearance(layout: Layout, x: float, y: float) -> float:
    """Distance from a point to the nearest inner wall face (negative outside the room)."""
    return min(layout.width / 2 - abs(x), layout.depth / 2 - abs(y))


def point_segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float
                           ) -> tuple[float, float]:
    """(distance from P to segment AB, position t in [0, 1] of the closest point along AB)."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - ax - t * dx, py - ay - t * dy), t


def path_is_clear(layout: Layout, start: tuple[float, float], end: tuple[float, float],
                  clearance: float, ignore: tuple[SceneObject, ...] = (),
                  skip_behind: bool = False) -> bool:
    """Whether the robot (ROBOT_RADIUS + clearance) can sweep straight from start to end.

    skip_behind: ignore objects whose closest point is the start itself (already beside or behind
    the robot), so a robot brushing past an obstacle can still choose a heading away from it.
    """
    body = ROBOT_RADIUS + clearance
    if wall_clearance(layout, *end) < body or wall_clearance(layout, *start) < ROBOT_RADIUS:
        return False
    for obj in layout.objects:
        if any(obj is other for other in ignore):
            continue
        distance, t = point_segment_distance(*obj.position, *start, *end)
        if skip_behind and t <= 0.0:
            continue
        if distance < body + obj.radius:
            return False
    return True


def free_distance(layout: Layout, x: float, y: float, heading: float, body: float,
                  ignore: tuple[SceneObject, ...] = (), walls: bool = True, objects: bool = True
                  ) -> float:
    """How far a disc of radius `body` centred at (x, y) can move along `heading` before touching
    a wall or an object's footprint. Objects it already overlaps but moves away from are ignored."""
    cos_h, sin_h = math.cos(heading), math.sin(heading)
    limits = []
    for position, direction, half in ((x, cos_h, layout.width / 2), (y, sin_h, layout.depth / 2)):
        if walls and abs(direction) > 1e-9:
            face = (half - body) if direction > 0 else -(half - body)
            limits.append(max(0.0, (face - position) / direction))
    for obj in layout.objects if objects else ():
        if any(obj is other for other in ignore):
            continue
        cx, cy = obj.position[0] - x, obj.position[1] - y
        along = cx * cos_h + cy * sin_h
        # Already closer than `body` allows (but not touching): what may not shrink is the gap it
        # has now, so the robot can still slide past instead of being frozen in place.
        reach = min(body + obj.radius, max(math.hypot(cx, cy) - 1e-3, ROBOT_RADIUS + obj.radius))
        miss2 = cx * cx + cy * cy - along * along
        if along <= 0.0 or miss2 >= reach * reach:
            continue
        limits.append(max(0.0, along - math.sqrt(reach * reach - miss2)))
    return min(limits) if limits else math.inf
