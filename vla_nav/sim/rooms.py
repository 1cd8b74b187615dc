"""The v2 world's rooms: shapes that need planning, their looks, and the 2-D geometry on them
(clearances, a grid A* planner, camera visibility). Pure numpy, no MuJoCo.

Room shapes (`RoomLayout.shape`), all inside the bounding box width x depth centred on the origin:
  box        one rectangle;
  L          the rectangle minus one corner rectangle (the robot may have to go round the corner);
  two_rooms  the rectangle split by an interior wall along x with one doorway (0.9-1.3 m wide).
Walls are axis-aligned boxes (cx, cy, half_x, half_y) on the floor, WALL_HEIGHT tall; the floor is
the union of `free_rects` (x0, y0, x1, y1). Objects are footprint circles for planning, as in v1.

Looks (`Style`): floor and wall material names (FLOOR_MATERIALS / WALL_MATERIALS: MuJoCo builtin
checker / gradient / flat-with-marks textures), their tints, two lights, and the camera mount
(`CameraMount`: height, pitch, vertical field of view, jittered per episode within CAMERA_RANGES).
`parse_camera_mount` reads a forced mount (a CAMERA_PRESETS name or HEIGHT,PITCH,FOV): a robot
whose camera sits outside the training jitter, for fine-tuning demonstrations
(`record-sim --camera-mount`, `eval-sim --suite --camera-mount`).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from vla_nav.sim.layout import WALL_THICKNESS, Layout, SceneObject

ROOM_SHAPES = ('box', 'L', 'two_rooms')
FLOOR_MATERIALS = ('checker', 'checker_fine', 'tiles', 'flat', 'marble', 'gradient')
WALL_MATERIALS = ('plain', 'gradient', 'speckle', 'panels', 'noise')
# Camera mount jitter per episode (uniform within these ranges; v1's fixed mount is inside them).
CAMERA_RANGES = {'height': (0.3, 0.38), 'pitch_deg': (5.0, 15.0), 'fovy_deg': (72.0, 88.0)}
GRID = 0.1   # m, planner cell
_MOVES = ((1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0), (1, 1, 1.4142),
          (1, -1, 1.4142), (-1, 1, 1.4142), (-1, -1, 1.4142))   # 8-neighbours, step length


@dataclass(frozen=True)
class CameraMount:
    height: float = 0.3         # m above the floor
    pitch_deg: float = 10.0     # looking down
    fovy_deg: float = 80.0      # vertical (= horizontal: square images)


    def in_training_range(self) -> bool:
        """Whether every value lies inside CAMERA_RANGES (the mounts training episodes draw)."""
        return all(CAMERA_RANGES[key][0] <= getattr(self, key) <= CAMERA_RANGES[key][1]
                   for key in ('height', 'pitch_deg', 'fovy_deg'))


# Forced mounts, each value OUTSIDE CAMERA_RANGES: never seen by a model trained on record-sim data.
CAMERA_PRESETS = {
    'low': CameraMount(height=0.2, pitch_deg=20.0, fovy_deg=66.0),    # a small base, tilted down
    'high': CameraMount(height=0.5, pitch_deg=22.0, fovy_deg=95.0),   # a mast, wide lens
}


def parse_camera_mount(text: str) -> CameraMount:
    """A CAMERA_PRESETS name or 'HEIGHT,PITCH,FOV' (m, degrees down, degrees vertical)."""
    if text in CAMERA_PRESETS:
        return CAMERA_PRESETS[text]
    try:
        height, pitch, fovy = (float(part) for part in text.split(','))
    except ValueError:
        raise ValueError(f"camera mount must be one of {sorted(CAMERA_PRESETS)} or 'HEIGHT,PITCH,FOV' "
                         f'(e.g. 0.2,20,66), got {text!r}') from None
    if not (0.05 <= height <= 2.0 and -30.0 <= pitch <= 60.0 and 20.0 <= fovy <= 150.0):
        raise ValueError(f'camera mount {text!r} out of bounds: height 0.05-2 m, pitch -30-60 deg, '
                         'fov 20-150 deg')
    return CameraMount(height, pitch, fovy)


@dataclass(frozen=True)
class Style:
    floor_material: str = 'checker'
    wall_material: str = 'plain'
    floor_rgb: tuple[float, float, float] = (0.55, 0.55, 0.55)
    wall_rgb: tuple[float, float, float] = (0.75, 0.72, 0.68)
    light_dir: tuple[float, float, float] = (0.3, 0.2, -0.93)
    light_diffuse: float = 0.7
    ambient: float = 0.3
    lamp_pos: tuple[float, float, float] = (0.0, 0.0, 2.5)   # a second, point light
    lamp_diffuse: float = 0.0


@dataclass(frozen=True)
class RoomLayout(Layout):
    """A v2 room (a Layout: NavSim, plots and reports read it the same way)."""

    shape: str = 'box'
    wall_boxes: tuple[tuple[float, float, float, float], ...] = ()
    free_rects: tuple[tuple[float, float, float, float], ...] = ()
    style: Style = field(default_factory=Style)
    camera: CameraMount = field(default_factory=CameraMount)
    world: str = 'v2'

    @property
    def walls(self):
        """Wall box outlines as segments (plots)."""
        segments = []
        for cx, cy, hx, hy in self.wall_boxes:
            corners = ((cx - hx, cy - hy), (cx + hx, cy - hy), (cx + hx, cy + hy), (cx - hx, cy + hy))
            segments += [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        return tuple(segments)

    def fingerprint(self) -> str:
        return f'{self.shape}-{super().fingerprint()}'

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(world=self.world, shape=self.shape,
                   wall_boxes=[[round(v, 3) for v in box] for box in self.wall_boxes],
                   free_rects=[[round(v, 3) for v in rect] for rect in self.free_rects],
                   style=asdict(self.style), camera=asdict(self.camera))
        return out


# ---------------------------------------------------------------------------------------------
# Room shapes.

def _outline_walls(rects) -> list[tuple[float, float, float, float]]:
    """Wall boxes around the union of free rectangles, by scanning each rectangle edge for the
    stretches not shared with a neighbour rectangle."""
    t = WALL_THICKNESS
    walls = []
    for index, (x0, y0, x1, y1) in enumerate(rects):
        others = [r for i, r in enumerate(rects) if i != index]
        for horizontal, fixed, low, high, outward in ((True, y0, x0, x1, -1), (True, y1, x0, x1, 1),
                                                      (False, x0, y0, y1, -1), (False, x1, y0, y1, 1)):
            # parts of this edge that border another rectangle are open
            cuts = []
            for ox0, oy0, ox1, oy1 in others:
                if horizontal and (abs(oy1 - fixed) < 1e-9 and outward < 0 or
                                   abs(oy0 - fixed) < 1e-9 and outward > 0):
                    cuts.append((max(low, ox0), min(high, ox1)))
                if not horizontal and (abs(ox1 - fixed) < 1e-9 and outward < 0 or
                                       abs(ox0 - fixed) < 1e-9 and outward > 0):
                    cuts.append((max(low, oy0), min(high, oy1)))
            pieces = [(low, high)]
            for a, b in cuts:
                if b <= a:
                    continue
                pieces = [p for piece in pieces for p in ((piece[0], min(piece[1], a)),
                                                         (max(piece[0], b), piece[1])) if p[1] > p[0] + 1e-9]
            for a, b in pieces:
                mid, half = (a + b) / 2, (b - a) / 2 + t
                offset = fixed + outward * t / 2
                walls.append((mid, offset, half, t / 2) if horizontal else (offset, mid, t / 2, half))
    return walls


def build_room(shape: str, width: float, depth: float, rng: np.random.Generator):
    """(free_rects, wall_boxes) of a room shape in a width x depth bounding box."""
    hx, hy = width / 2, depth / 2
    if shape == 'box':
        rects = [(-hx, -hy, hx, hy)]
        return tuple(rects), tuple(_outline_walls(rects))
    if shape == 'L':
        cut_x, cut_y = rng.uniform(0.35, 0.5) * width, rng.uniform(0.35, 0.5) * depth
        corner = int(rng.integers(4))
        sx, sy = (1, 1, -1, -1)[corner], (1, -1, 1, -1)[corner]
        # main rectangle spans the full depth on the side away from the cut; the arm fills the rest
        if sx > 0:
            main = (-hx, -hy, hx - cut_x, hy)
            arm = (hx - cut_x, -hy, hx, hy - cut_y) if sy > 0 else (hx - cut_x, -hy + cut_y, hx, hy)
        else:
            main = (-hx + cut_x, -hy, hx, hy)
            arm = (-hx, -hy, -hx + cut_x, hy - cut_y) if sy > 0 else (-hx, -hy + cut_y, -hx + cut_x, hy)
        rects = [main, arm]
        return tuple(rects), tuple(_outline_walls(rects))
    if shape == 'two_rooms':
        split = rng.uniform(-0.15, 0.15) * width
        door = rng.uniform(0.9, 1.3)
        door_y = rng.uniform(-hy + 0.4 + door / 2, hy - 0.4 - door / 2)
        rects = [(-hx, -hy, hx, hy)]
        walls = _outline_walls(rects)
        t = WALL_THICKNESS / 2
        low_top, high_bottom = door_y - door / 2, door_y + door / 2
        walls.append((split, (-hy + low_top) / 2, t, (low_top + hy) / 2))
        walls.append((split, (high_bottom + hy) / 2, t, (hy - high_bottom) / 2))
        # two free rectangles meeting at the doorway (the wall itself is in wall_boxes)
        rects = [(-hx, -hy, split - t, hy), (split + t, -hy, hx, hy),
                 (split - t, low_top, split + t, high_bottom)]
        return tuple(rects), tuple(walls)
    raise ValueError(f'room shape must be one of {ROOM_SHAPES}, got {shape!r}')


# ---------------------------------------------------------------------------------------------
# Geometry.

def box_distance(x: float, y: float, box) -> float:
    """Distance from a point to an axis-aligned box (cx, cy, hx, hy); 0 inside."""
    cx, cy, hx, hy = box
    dx, dy = max(abs(x - cx) - hx, 0.0), max(abs(y - cy) - hy, 0.0)
    return math.hypot(dx, dy)


def inside_floor(layout: RoomLayout, x: float, y: float, margin: float = 0.0) -> bool:
    return (any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in layout.free_rects)
            and wall_distance(layout, x, y) >= margin)


def wall_distance(layout: RoomLayout, x: float, y: float) -> float:
    return min(box_distance(x, y, box) for box in layout.wall_boxes)


def clearance(layout: RoomLayout, x: float, y: float, ignore=()) -> float:
    """Distance from a point to the nearest wall or object footprint (negative inside one)."""
    best = wall_distance(layout, x, y)
    for obj in layout.objects:
        if any(obj is other for other in ignore):
            continue
        best = min(best, math.hypot(x - obj.position[0], y - obj.position[1]) - obj.radius)
    return best


def segment_hits_box(ax, ay, bx, by, box, pad: float = 0.0) -> bool:
    """Whether the segment AB passes through the box grown by pad (slab test)."""
    cx, cy, hx, hy = box
    hx, hy = hx + pad, hy + pad
    t0, t1 = 0.0, 1.0
    for a, d, c, h in ((ax, bx - ax, cx, hx), (ay, by - ay, cy, hy)):
        if abs(d) < 1e-12:
            if abs(a - c) > h:
                return False
            continue
        u0, u1 = (c - h - a) / d, (c + h - a) / d
        if u0 > u1:
            u0, u1 = u1, u0
        t0, t1 = max(t0, u0), min(t1, u1)
        if t0 > t1:
            return False
    return True


def _segment_point_distance(px, py, ax, ay, bx, by) -> float:
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def line_is_free(layout: RoomLayout, a, b, body: float, ignore=()) -> bool:
    """Whether a disc of radius `body` can sweep straight from a to b (walls and objects)."""
    if any(segment_hits_box(*a, *b, box, body) for box in layout.wall_boxes):
        return False
    for obj in layout.objects:
        if any(obj is other for other in ignore):
            continue
        if _segment_point_distance(*obj.position, *a, *b) < body + obj.radius:
            return False
    return True


OCCLUDER_HEIGHT = 0.45   # m; objects taller than this hide what is behind them from the camera


def visible(layout: RoomLayout, pose, target: SceneObject, fovy_deg: float | None = None,
            margin_deg: float = 4.0, max_range: float = 8.0) -> bool:
    """Whether the target's centre is in the camera's horizontal field of view, in range, and the
    sight line is not cut by a wall or a tall object (a geometric stand-in for the render)."""
    x, y, yaw = pose
    fov = layout.camera.fovy_deg if fovy_deg is None else fovy_deg
    tx, ty = target.position
    distance = math.hypot(tx - x, ty - y)
    if distance > max_range:
        return False
    bearing = math.atan2(ty - y, tx - x) - yaw
    bearing = math.atan2(math.sin(bearing), math.cos(bearing))
    if abs(bearing) > math.radians(fov / 2 - margin_deg):
        return False
    if any(segment_hits_box(x, y, tx, ty, box) for box in layout.wall_boxes):
        return False
    for obj in layout.objects:
        if obj is target or obj.height < OCCLUDER_HEIGHT:
            continue
        if _segment_point_distance(*obj.position, x, y, tx, ty) < 0.7 * obj.radius:
            return False
    return True


def visible_by_turning(layout: RoomLayout, pose, target: SceneObject) -> bool:
    """Whether turning in place at `pose` brings the target into view (`visible` facing it): a
    search scene that fails this needs the robot to drive somewhere first, to find it."""
    x, y, _ = pose
    tx, ty = target.position
    return visible(layout, (x, y, math.atan2(ty - y, tx - x)), target)


# ---------------------------------------------------------------------------------------------
# Grid A*.

class GridPlanner:
    """A* on a GRID-metre occupancy grid of a room (8-connected), with line-of-sight shortcuts.
    Cells closer than `body` to a wall or object footprint (except `ignore`) are blocked."""

    def __init__(self, layout: RoomLayout, body: float, ignore=()):
        x0 = min(r[0] for r in layout.free_rects)
        y0 = min(r[1] for r in layout.free_rects)
        x1 = max(r[2] for r in layout.free_rects)
        y1 = max(r[3] for r in layout.free_rects)
        self.origin = (x0, y0)
        self.shape = (int(math.ceil((x1 - x0) / GRID)) + 1, int(math.ceil((y1 - y0) / GRID)) + 1)
        xs = x0 + GRID * np.arange(self.shape[0])
        ys = y0 + GRID * np.arange(self.shape[1])
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        inside = np.zeros(self.shape, bool)
        for rx0, ry0, rx1, ry1 in layout.free_rects:
            inside |= (gx >= rx0) & (gx <= rx1) & (gy >= ry0) & (gy <= ry1)
        dist = np.full(self.shape, np.inf)
        for cx, cy, hx, hy in layout.wall_boxes:
            dx = np.maximum(np.abs(gx - cx) - hx, 0.0)
            dy = np.maximum(np.abs(gy - cy) - hy, 0.0)
            dist = np.minimum(dist, np.hypot(dx, dy))
        for obj in layout.objects:
            if any(obj is other for other in ignore):
                continue
            dist = np.minimum(dist, np.hypot(gx - obj.position[0], gy - obj.position[1]) - obj.radius)
        self.clear = dist            # clearance per cell
        self.free = inside & (dist >= body)
        self.layout, self.body, self.ignore = layout, body, ignore

    def cell(self, x: float, y: float) -> tuple[int, int]:
        i = int(round((x - self.origin[0]) / GRID))
        j = int(round((y - self.origin[1]) / GRID))
        return min(max(i, 0), self.shape[0] - 1), min(max(j, 0), self.shape[1] - 1)

    def point(self, cell) -> tuple[float, float]:
        return self.origin[0] + GRID * cell[0], self.origin[1] + GRID * cell[1]

    def _nearest_free(self, cell):
        if self.free[cell]:
            return cell
        free = np.argwhere(self.free)
        if len(free) == 0:
            return None
        d = np.hypot(free[:, 0] - cell[0], free[:, 1] - cell[1])
        best = free[int(np.argmin(d))]
        return int(best[0]), int(best[1])

    def plan(self, start, goal, goal_radius: float = 0.0, keep_left: float = 0.0
             ) -> list[tuple[float, float]] | None:
        """Waypoints from start to the goal (or to any free cell within goal_radius of it),
        shortcut by line of sight; None when unreachable. `keep_left` > 0 makes every step right
        of the straight start->goal line cost (1 + keep_left) times more, so of two ways round an
        obstacle that are nearly as long the one on the left is taken (see PlanningExpert)."""
        s = self._nearest_free(self.cell(*start))
        gx, gy = goal
        if s is None:
            return None
        came, end = self._search(s, self.cell(gx, gy), goal_radius / GRID, keep_left)
        if end is None:
            return None
        cells = []
        while end is not None:
            cells.append(end)
            end = came[end]
        points = [tuple(start)] + [self.point(c) for c in reversed(cells)][1:]
        return self._shortcut(points)

    def _search(self, s, g_cell, radius_cells: float, keep_left: float = 0.0
                ) -> tuple[dict, tuple[int, int] | None]:
        """A* over the free cells from s to a cell within radius_cells of g_cell: (the
        came-from map, the goal cell reached or None)."""
        ux, uy = g_cell[0] - s[0], g_cell[1] - s[1]

        def right_of_line(c) -> bool:   # more than half a cell right of the s -> g_cell line
            return ux * (c[1] - s[1]) - uy * (c[0] - s[0]) < -0.5 * math.hypot(ux, uy)

        def is_goal(c):
            return math.hypot(c[0] - g_cell[0], c[1] - g_cell[1]) <= max(radius_cells, 0.5)

        def h(c):
            return max(0.0, math.hypot(c[0] - g_cell[0], c[1] - g_cell[1]) - radius_cells)

        open_heap = [(h(s), 0.0, s)]
        came: dict = {s: None}
        cost = {s: 0.0}
        while open_heap:
            _, g, c = heapq.heappop(open_heap)
            if g > cost[c] + 1e-9:
                continue
            if is_goal(c):
                return came, c
            for n, step in self._moves(c):
                # a small pull away from walls keeps paths off the edges of free space
                ng = g + step * (1.0 + 0.6 * max(0.0, 0.35 - float(self.clear[n]))) \
                    * (1.0 + keep_left if keep_left and right_of_line(n) else 1.0)
                if ng < cost.get(n, math.inf) - 1e-9:
                    cost[n], came[n] = ng, c
                    heapq.heappush(open_heap, (ng + h(n), ng, n))
        return came, None

    def _moves(self, c):
        """The free 8-neighbours of cell c with their step lengths (no corner cutting)."""
        free, nx, ny = self.free, self.shape[0], self.shape[1]
        for di, dj, step in _MOVES:
            n = (c[0] + di, c[1] + dj)
            if not (0 <= n[0] < nx and 0 <= n[1] < ny) or not free[n]:
                continue
            if di and dj and not (free[c[0] + di, c[1]] and free[c[0], c[1] + dj]):
                continue
            yield n, step

    def _shortcut(self, points):
        out, i = [points[0]], 0
        while i < len(points) - 1:
            j = len(points) - 1
            while j > i + 1 and not line_is_free(self.layout, points[i], points[j], self.body * 0.98,
                                                 self.ignore):
                j -= 1
            out.append(points[j])
            i = j
        return out
