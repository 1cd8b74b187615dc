"""Drawing a predicted chunk onto the camera frame it came from (the demo's GIF).

The 10 (v, w) steps are integrated into a path on the floor in the robot frame and projected
through the simulated forward camera (pinhole: height, forward offset, downward tilt and field of
view from vla_nav.sim.world), so the viewer sees where the policy meant to drive. The geometry
(integration, projection) is vla_nav.core.chunk_geometry; vla_node's annotated image draws with
`draw_chunk` and its own camera parameters (camera_model() is the simulator's mount, for the demo).
"""
from __future__ import annotations

import numpy as np

from vla_nav.core.chunk_geometry import integrate_chunk, project_floor_points

__all__ = ['camera_model', 'draw_chunk', 'integrate_chunk', 'project_floor_points']

PATH_COLOUR = (40, 230, 90)
STEP_COLOUR = (255, 220, 40)
TEXT_COLOUR = (255, 255, 255)
SHADOW_COLOUR = (0, 0, 0)
INSET_BACKGROUND = (20, 20, 30)
INSET_PX = 64                  # top-down inset, pixels per side
INSET_METRES = 0.6             # half the inset's width in metres (a 1 s chunk at 0.5 m/s fits)


def camera_model() -> dict:
    from vla_nav.sim.world import CAMERA_FORWARD, CAMERA_FOVY, CAMERA_HEIGHT, CAMERA_TILT
    return {'forward': CAMERA_FORWARD, 'height': CAMERA_HEIGHT, 'fovy_deg': CAMERA_FOVY,
            'tilt': CAMERA_TILT}


def draw_chunk(rgb: np.ndarray, actions: np.ndarray, dt: float, caption: str = '',
               scale: int = 2, camera: dict | None = None) -> np.ndarray:
    """The frame, scaled up, with the chunk's path, its step points and a caption."""
    from PIL import Image, ImageDraw

    camera = camera or camera_model()
    height, width = rgb.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize(
        (width * scale, height * scale), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    pixels = project_floor_points(integrate_chunk(actions, dt), height, width, camera) * scale
    visible = [tuple(p) for p in pixels if np.all(np.isfinite(p))]
    if len(visible) >= 2:
        draw.line(visible, fill=PATH_COLOUR, width=max(2, scale + 1))
    for u, v in visible[1:]:
        draw.ellipse((u - scale, v - scale, u + scale, v + scale), fill=STEP_COLOUR)
    _inset(draw, integrate_chunk(actions, dt), width * scale)
    if len(actions):
        linear, angular = (float(value) for value in np.asarray(actions)[0])
        _text(draw, (4, height * scale - 14), f'v {linear:+.2f} m/s  w {angular:+.2f} rad/s')
    if caption:
        _text(draw, (4, 3), caption[:48])
    return np.asarray(image)


def _inset(draw, points: np.ndarray, image_width: int) -> None:
    """A small top-down view of the chunk (robot at the bottom centre, forward is up): a 1 s
    chunk is short, and near the robot the floor is hidden under the camera's lower edge."""
    size = INSET_PX
    left, top = image_width - size - 4, 4
    draw.rectangle((left, top, left + size, top + size), fill=INSET_BACKGROUND, outline=TEXT_COLOUR)
    scale = size / (2.0 * INSET_METRES)
    origin = (left + size / 2.0, top + size - 6)
    pixels = [(origin[0] - y * scale, origin[1] - x * scale) for x, y in points]
    draw.ellipse((origin[0] - 3, origin[1] - 3, origin[0] + 3, origin[1] + 3), outline=TEXT_COLOUR)
    if len(pixels) >= 2:
        draw.line(pixels, fill=PATH_COLOUR, width=2)
    for u, v in pixels[1:]:
        draw.point((u, v), fill=STEP_COLOUR)


def _text(draw, position: tuple[int, int], text: str) -> None:
    x, y = position
    draw.text((x + 1, y + 1), text, fill=SHADOW_COLOUR)
    draw.text((x, y), text, fill=TEXT_COLOUR)
