"""The v2 world's objects: categories an operator would name, named colours, sizes, and how each
category is built from MuJoCo primitives (no meshes except v1's cone, so no asset licence).

Category (the word in `vla_nav.core.language.CATEGORY_WORDS`)  parts
  cone        a cone (mesh, 3 sizes) on a square foot
  box         a box
  ball        a sphere
  cylinder    a cylinder
  chair       seat, back rest and four legs
  table       top and four legs
  trash bin   a body cylinder with a darker rim
  plant       a pot (the named colour) with dark foliage (two spheres); never 'green'
  barrel      a cylinder with two darker hoops
  person      a person-sized figure (1.5-1.8 m): legs, torso (the named colour), arms, head
Each category has 2-3 size classes (`SIZES`, scale factors of its nominal size). A SceneObject of
the v2 world stores its category in `shape` and (half_x, half_y, height) in `size`; `parts()` turns
that into primitives, the same way for the renderer and for tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The named colours (the canonical words of core.language.COLOUR_WORDS) and their nominal RGB.
COLOURS = {
    'red': (0.86, 0.10, 0.10),
    'orange': (0.98, 0.48, 0.05),
    'yellow': (0.95, 0.84, 0.08),
    'green': (0.12, 0.68, 0.16),
    'cyan': (0.05, 0.75, 0.80),
    'blue': (0.10, 0.24, 0.92),
    'purple': (0.56, 0.14, 0.76),
    'pink': (0.98, 0.45, 0.72),
    'white': (0.93, 0.93, 0.92),
    'black': (0.08, 0.08, 0.09),
}
CATEGORIES = ('cone', 'box', 'ball', 'cylinder', 'chair', 'table', 'trash bin', 'plant', 'barrel',
              'person')
# Which colours a category comes in (foliage is green, so no green plants: "the green plant"
# would be ambiguous).
CATEGORY_COLOURS = {category: tuple(c for c in COLOURS if not (category == 'plant' and c == 'green'))
                    for category in CATEGORIES}
# Nominal (half_x, half_y, height) in m; SIZES scales them (small / medium / large).
NOMINAL = {
    'cone': (0.17, 0.17, 0.42), 'box': (0.16, 0.16, 0.32), 'ball': (0.16, 0.16, 0.32),
    'cylinder': (0.13, 0.13, 0.5), 'chair': (0.22, 0.22, 0.85), 'table': (0.4, 0.3, 0.72),
    'trash bin': (0.16, 0.16, 0.45), 'plant': (0.18, 0.18, 0.75), 'barrel': (0.22, 0.22, 0.7),
    'person': (0.22, 0.14, 1.65),
}
SIZES = {'cone': (0.85, 1.0, 1.2), 'box': (0.75, 1.0, 1.3), 'ball': (0.75, 1.0, 1.25),
         'cylinder': (0.8, 1.0, 1.2), 'chair': (0.9, 1.05), 'table': (0.85, 1.0, 1.2),
         'trash bin': (0.85, 1.15), 'plant': (0.8, 1.0, 1.3), 'barrel': (0.85, 1.0),
         'person': (0.92, 1.0, 1.08)}
CONE_MESHES = tuple((round(NOMINAL['cone'][0] * s, 4), round(NOMINAL['cone'][2] * s, 4))
                    for s in SIZES['cone'])
# Parts per category and the primitive type of each (the renderer keeps a pool body per category
# with exactly these geoms).
PART_TYPES = {
    'cone': ('cone', 'box'), 'box': ('box',), 'ball': ('sphere',), 'cylinder': ('cylinder',),
    'chair': ('box', 'box', 'box', 'box', 'box', 'box'), 'table': ('box', 'box', 'box', 'box', 'box'),
    'trash bin': ('cylinder', 'cylinder'), 'plant': ('cylinder', 'sphere', 'sphere'),
    'barrel': ('cylinder', 'cylinder', 'cylinder'),
    'person': ('capsule', 'capsule', 'box', 'capsule', 'capsule', 'sphere'),
}
# Accent tints (never a named colour's hue): metal, dark rims, foliage, skin, trousers.
METAL, RIM, FOLIAGE, SKIN, TROUSERS = ((0.55, 0.55, 0.57), (0.22, 0.22, 0.24), (0.18, 0.36, 0.12),
                                       (0.78, 0.6, 0.48), (0.25, 0.25, 0.3))
# Clutter (never named): low crates and shelves in muted colours.
CLUTTER_RGB = ((0.45, 0.45, 0.45), (0.42, 0.30, 0.20), (0.6, 0.55, 0.45), (0.3, 0.28, 0.26))


@dataclass(frozen=True)
class Part:
    kind: str                               # box | sphere | cylinder | capsule | cone
    size: tuple[float, ...]                 # MuJoCo size (cone: (radius, height) of its mesh)
    pos: tuple[float, float, float]         # centre in the object's frame (cone: base centre)
    rgb: tuple[float, float, float] | None  # None: the object's named colour


def dimensions(category: str, scale: float) -> tuple[float, float, float]:
    hx, hy, height = NOMINAL[category]
    return round(hx * scale, 4), round(hy * scale, 4), round(height * scale, 4)


def footprint_radius(category: str, size) -> float:
    """The smallest circle about the object's origin that covers every part (planning, judging)."""
    reach = 0.0
    for part in parts(category, size):
        if part.kind == 'box':
            half = math.hypot(part.size[0], part.size[1])
        else:  # sphere, cylinder, capsule, cone: radius first
            half = part.size[0]
        reach = max(reach, math.hypot(part.pos[0], part.pos[1]) + half)
    return math.ceil(reach * 1e4) / 1e4


def parts(category: str, size) -> tuple[Part, ...]:
    """The primitives of one object, in its own frame (z up from the floor)."""
    hx, hy, h = size
    if category == 'cone':
        mesh = min(CONE_MESHES, key=lambda m: abs(m[0] - hx) + abs(m[1] - h))
        foot = 0.015
        return (Part('cone', mesh, (0.0, 0.0, 2 * foot), None),
                Part('box', (mesh[0] * 1.15, mesh[0] * 1.15, foot), (0.0, 0.0, foot), None))
    if category == 'box':
        return (Part('box', (hx, hy, h / 2), (0.0, 0.0, h / 2), None),)
    if category == 'ball':
        return (Part('sphere', (hx,), (0.0, 0.0, hx), None),)
    if category == 'cylinder':
        return (Part('cylinder', (hx, h / 2), (0.0, 0.0, h / 2), None),)
    if category == 'chair':
        seat_z, leg = 0.45 * h / 0.85, 0.02
        legs = tuple(Part('box', (leg, leg, seat_z / 2), (sx * (hx - leg), sy * (hy - leg), seat_z / 2),
                          METAL) for sx in (-1, 1) for sy in (-1, 1))
        back_h = h - seat_z
        return (Part('box', (hx, hy, 0.025), (0.0, 0.0, seat_z), None),
                Part('box', (0.025, hy, back_h / 2), (-hx + 0.025, 0.0, seat_z + back_h / 2), None)) + legs
    if category == 'table':
        leg = 0.03
        legs = tuple(Part('box', (leg, leg, h / 2), (sx * (hx - 2 * leg), sy * (hy - 2 * leg), h / 2),
                          METAL) for sx in (-1, 1) for sy in (-1, 1))
        return (Part('box', (hx, hy, 0.025), (0.0, 0.0, h - 0.025), None),) + legs
    if category == 'trash bin':
        return (Part('cylinder', (hx, h / 2), (0.0, 0.0, h / 2), None),
                Part('cylinder', (hx * 1.06, 0.02), (0.0, 0.0, h - 0.02), RIM))
    if category == 'plant':
        pot_h = 0.35 * h
        return (Part('cylinder', (hx * 0.8, pot_h / 2), (0.0, 0.0, pot_h / 2), None),
                Part('sphere', (hx,), (0.0, 0.0, pot_h + hx * 0.9), FOLIAGE),
                Part('sphere', (hx * 0.7,), (0.03, 0.02, h - hx * 0.7), FOLIAGE))
    if category == 'barrel':
        return (Part('cylinder', (hx, h / 2), (0.0, 0.0, h / 2), None),
                Part('cylinder', (hx * 1.04, 0.025), (0.0, 0.0, 0.25 * h), RIM),
                Part('cylinder', (hx * 1.04, 0.025), (0.0, 0.0, 0.75 * h), RIM))
    if category == 'person':
        leg_h, torso_h = 0.47 * h, 0.32 * h
        head = 0.09 * h / 1.65
        return (Part('capsule', (0.06, leg_h / 2 - 0.06), (0.0, -0.09, leg_h / 2), TROUSERS),
                Part('capsule', (0.06, leg_h / 2 - 0.06), (0.0, 0.09, leg_h / 2), TROUSERS),
                Part('box', (hy, hx * 0.8, torso_h / 2), (0.0, 0.0, leg_h + torso_h / 2), None),
                Part('capsule', (0.045, torso_h / 2 - 0.03), (0.0, -hx * 0.8 - 0.05, leg_h + torso_h / 2),
                     None),
                Part('capsule', (0.045, torso_h / 2 - 0.03), (0.0, hx * 0.8 + 0.05, leg_h + torso_h / 2),
                     None),
                Part('sphere', (head,), (0.0, 0.0, leg_h + torso_h + head + 0.02), SKIN))
    raise ValueError(f'unknown category {category!r}; one of {CATEGORIES}')
