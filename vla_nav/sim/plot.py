"""Top-down PNG of a room and robot trajectories (eval-sim reports, the demo, debugging)."""
from __future__ import annotations

import math
from pathlib import Path

from vla_nav.sim.layout import ROBOT_RADIUS, Layout

OUTCOME_COLOURS = {'success': '#2ca02c', 'collision': '#d62728', 'timeout': '#ff7f0e',
                   'failure': '#9467bd', None: '#1f77b4'}


def _draw_room(axes, layout: Layout) -> None:
    from matplotlib.patches import Rectangle

    wall_boxes = getattr(layout, 'wall_boxes', None)
    if wall_boxes:   # a v2 room: its floor rectangles and wall boxes
        floor_rgb = layout.style.floor_rgb
        for x0, y0, x1, y1 in layout.free_rects:
            axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=(*floor_rgb, 0.25),
                                     edgecolor='none'))
        for cx, cy, bx, by in wall_boxes:
            axes.add_patch(Rectangle((cx - bx, cy - by), 2 * bx, 2 * by, facecolor='0.25',
                                     edgecolor='black', lw=0.5))
    else:
        hx, hy = layout.width / 2, layout.depth / 2
        axes.add_patch(Rectangle((-hx, -hy), layout.width, layout.depth, fill=True,
                                 facecolor=(*layout.appearance.floor_rgb, 0.25), edgecolor='black',
                                 lw=3))


def _draw_object(axes, obj) -> None:
    from matplotlib.patches import Circle, Polygon

    x, y = obj.position
    colour = obj.rgb
    if obj.shape in ('box', 'crate', 'table'):
        half_x, half_y = obj.size[0], obj.size[1]
        corners = [(sx * half_x, sy * half_y) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        cos_y, sin_y = math.cos(obj.yaw), math.sin(obj.yaw)
        axes.add_patch(Polygon([(x + cx * cos_y - cy * sin_y, y + cx * sin_y + cy * cos_y)
                                for cx, cy in corners], closed=True, facecolor=colour,
                               edgecolor='black', lw=0.8))
    elif obj.shape == 'cone':
        r = obj.size[0]
        axes.add_patch(Polygon([(x, y + r), (x - r * 0.87, y - r / 2), (x + r * 0.87, y - r / 2)],
                               closed=True, facecolor=colour, edgecolor='black', lw=0.8))
        axes.add_patch(Circle((x, y), r, fill=False, edgecolor=colour, lw=0.8))
    else:
        axes.add_patch(Circle((x, y), obj.radius, facecolor=colour, edgecolor='black',
                              lw=0.8, hatch='..' if obj.shape == 'cylinder' else None))
    if obj.role != 'clutter':
        axes.annotate(obj.name, (x, y + obj.radius + 0.05), ha='center', fontsize=6)


def _draw_trajectories(axes, trajectories: list[dict]) -> None:
    from matplotlib.patches import Circle

    targets_drawn = set()
    for index, trajectory in enumerate(trajectories):
        poses = [tuple(p) for p in trajectory.get('poses', [])]
        colour = OUTCOME_COLOURS.get(trajectory.get('outcome'), OUTCOME_COLOURS[None])
        target = trajectory.get('target')
        if target is not None and id(target) not in targets_drawn:
            targets_drawn.add(id(target))
            axes.add_patch(Circle(target.position, target.radius + 0.12, fill=False,
                                  edgecolor='black', lw=1.5, ls='--'))
        if not poses:
            continue
        xs, ys = [p[0] for p in poses], [p[1] for p in poses]
        label = trajectory.get('label') or f'{index}: {trajectory.get("outcome")}'
        axes.plot(xs, ys, '-', color=colour, lw=1.4, alpha=0.9, label=label)
        axes.add_patch(Circle((xs[0], ys[0]), ROBOT_RADIUS, fill=False, edgecolor=colour, lw=1.0))
        if len(poses[0]) > 2:
            yaw = poses[0][2]
            axes.arrow(xs[0], ys[0], 0.3 * math.cos(yaw), 0.3 * math.sin(yaw), color=colour,
                       width=0.01, head_width=0.07)
        axes.plot(xs[-1], ys[-1], 'x', color=colour, markersize=8, mew=2)


def plot_topdown(layout: Layout, trajectories: list[dict], path, title: str | None = None) -> Path:
    """Walls, objects (their colour and shape), trajectories coloured by outcome with start (circle)
    and end (cross) markers, targets ringed. Each trajectory: {'poses': [(x, y[, yaw]), ...],
    'outcome': 'success'|'collision'|'timeout'|'failure'|None, 'target': SceneObject|None,
    'label': str}. Returns the PNG path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 6.4 * layout.depth / max(layout.width, 1e-6) + 0.4))
    hx, hy = layout.width / 2, layout.depth / 2
    _draw_room(axes, layout)
    for obj in layout.objects:
        _draw_object(axes, obj)
    _draw_trajectories(axes, trajectories)
    axes.set_xlim(-hx - 0.2, hx + 0.2)
    axes.set_ylim(-hy - 0.2, hy + 0.2)
    axes.set_aspect('equal')
    axes.set_xlabel('x (m)')
    axes.set_ylabel('y (m)')
    axes.set_title(title or f'{layout.split} seed {layout.seed} episode {layout.episode}', fontsize=9)
    if trajectories and len(trajectories) <= 12:
        axes.legend(fontsize=6, loc='upper right')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
