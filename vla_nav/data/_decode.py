"""Image decoding for the data layer: the core decoder (the one vla_node uses) when present.

Temporary shim while vla_nav.core.image_decode is being written: a minimal rgb8/bgr8/mono8 +
Pillow path with the same signatures.
"""
from __future__ import annotations

import io

import numpy as np

try:
    from vla_nav.core.image_decode import decode_compressed, decode_image, resize_rgb  # noqa: F401
except ImportError:  # pragma: no cover - until the core decoder lands
    def decode_image(encoding: str, height: int, width: int, step: int, data, is_bigendian=0
                     ) -> np.ndarray:
        channels = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}[encoding]
        rows = np.frombuffer(data, np.uint8)[:height * step].reshape(height, step)
        pixels = rows[:, :width * channels].reshape(height, width, channels)
        if encoding == 'mono8':
            return np.repeat(pixels, 3, axis=2)
        if encoding.startswith('bgr'):
            pixels = pixels[:, :, 2::-1]
        return np.ascontiguousarray(pixels[:, :, :3])

    def decode_compressed(data: bytes, format: str = '') -> np.ndarray:  # noqa: A002
        from PIL import Image
        return np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))

    def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
        if rgb.shape[:2] == (height, width):
            return rgb
        from PIL import Image
        return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
