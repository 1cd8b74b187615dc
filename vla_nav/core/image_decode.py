"""sensor_msgs/Image and CompressedImage payloads -> uint8 RGB (H, W, 3), numpy (+ Pillow) only.

Camera drivers differ in encoding, row padding (`step`) and byte order; vla_node must accept them
all and refuse junk cheaply: every size check happens BEFORE any allocation, so a corrupt header
claiming 100000 x 100000 pixels costs nothing. One exception type, `ImageDecodeError`, with a message
that says what was wrong.

Bayer images are demosaiced by 2x2 binning (each 2x2 cell gives one RGB value, repeated over the
cell): cheap and adequate for a policy that sees 224 px or less.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAX_PIXELS = 4096 * 4096   # larger frames are rejected before allocating (8k x 8k is junk here)
COMPRESSED_FORMATS = ('JPEG', 'PNG')   # the Pillow parsers CompressedImage payloads may reach


class ImageDecodeError(ValueError):
    """A frame that cannot be turned into RGB; the message says why."""


# encoding -> (bytes per pixel, channels, numpy dtype); cv_bridge names included
_PLAIN = {
    'rgb8': (3, 3, np.uint8), 'bgr8': (3, 3, np.uint8), '8UC3': (3, 3, np.uint8),
    'rgba8': (4, 4, np.uint8), 'bgra8': (4, 4, np.uint8), '8UC4': (4, 4, np.uint8),
    'mono8': (1, 1, np.uint8), '8UC1': (1, 1, np.uint8),
    'mono16': (2, 1, np.uint16), '16UC1': (2, 1, np.uint16),
}
_BAYER = {  # colour of the 2x2 cell's (top-left, top-right, bottom-left, bottom-right)
    'bayer_rggb8': 'RGGB', 'bayer_bggr8': 'BGGR', 'bayer_gbrg8': 'GBRG', 'bayer_grbg8': 'GRBG',
}
_BGR_ORDER = ('bgr8', '8UC3', 'bgra8', '8UC4')   # cv_bridge treats 8UC3/8UC4 as BGR(A)
SUPPORTED_ENCODINGS = tuple(_PLAIN) + tuple(_BAYER)


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'image has no pixels ({width}x{height})')
    if height * width > max_pixels:
        raise ImageDecodeError(f'image of {width}x{height} pixels exceeds the limit of '
                               f'{max_pixels} pixels')


def check_image_geometry(encoding: str, height: int, width: int, step: int, data_length: int,
                         max_pixels: int = MAX_PIXELS) -> tuple[int, int, type]:
    """Validate a raw image header against its payload length without touching the pixels.

    Returns (bytes per pixel, channels, dtype); raises ImageDecodeError saying what is wrong.
    """
    if encoding in _PLAIN:
        bytes_per_pixel, channels, dtype = _PLAIN[encoding]
    elif encoding in _BAYER:
        bytes_per_pixel, channels, dtype = 1, 1, np.uint8
    else:
        raise ImageDecodeError(f'unsupported image encoding {encoding!r}; supported: '
                               f'{", ".join(SUPPORTED_ENCODINGS)}')
    _check_size(height, width, max_pixels)
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(f'step {step} is smaller than width {width} x {bytes_per_pixel} '
                               f'bytes per pixel = {row_bytes} for {encoding}')
    expected = step * height
    if data_length != expected:
        kind = 'short' if data_length < expected else 'long'
        raise ImageDecodeError(f'image data is {kind}: {data_length} bytes, expected step {step} x '
                               f'height {height} = {expected}')
    return bytes_per_pixel, channels, dtype


def decode_image(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: int = 0, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Raw sensor_msgs/Image fields -> uint8 RGB (height, width, 3), any row padding."""
    height, width, step = int(height), int(width), int(step)
    buffer = memoryview(data).cast('B')
    bytes_per_pixel, channels, dtype = check_image_geometry(encoding, height, width, step,
                                                            len(buffer), max_pixels)
    row_bytes = width * bytes_per_pixel
    rows = np.frombuffer(buffer, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    if dtype == np.uint16:
        order = '>' if is_bigendian else '<'
        mono16 = np.ascontiguousarray(rows).view(np.dtype(order + 'u2')).reshape(height, width)
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[:] = (mono16 >> 8).astype(np.uint8)[:, :, None]
        return rgb
    pixels = rows.reshape(height, width, channels)
    if encoding in _BAYER:
        return _demosaic_2x2(pixels[:, :, 0], _BAYER[encoding])
    order = (0, 0, 0) if channels == 1 else (2, 1, 0) if encoding in _BGR_ORDER else (0, 1, 2)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    for channel, source in enumerate(order):   # per-channel copies: ~4x faster than fancy indexing
        rgb[:, :, channel] = pixels[:, :, source]
    return rgb


def _demosaic_2x2(raw: np.ndarray, pattern: str) -> np.ndarray:
    height, width = raw.shape
    if height % 2 or width % 2:
        raise ImageDecodeError(f'bayer image needs even width and height, got {width}x{height}')
    cells = {position: raw[row::2, col::2].astype(np.uint16)
             for position, (row, col) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1)))}
    greens = [cells[i] for i, colour in enumerate(pattern) if colour == 'G']
    red = cells[pattern.index('R')]
    blue = cells[pattern.index('B')]
    green = (greens[0] + greens[1] + 1) // 2
    small = np.stack([red, green, blue], axis=2).astype(np.uint8)
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)


def decode_compressed(data, format: str = '', max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage payload (JPEG or PNG) -> uint8 RGB (H, W, 3).

    `format` is the message's free-form field (e.g. 'jpeg', 'rgb8; jpeg compressed bgr8'); the
    payload itself says what it is, so only depth images, which are no camera frames, are refused.
    Only Pillow's JPEG and PNG parsers ever see the payload (what image_transport sends): the other
    formats Pillow knows (TIFF, ICO, ...) would widen the attack surface and warn on junk.
    """
    from PIL import Image  # Pillow: imported here so raw-only users never pay for it

    if 'compresseddepth' in format.replace(' ', '').lower():
        raise ImageDecodeError(f'compressed depth images are not camera frames (format {format!r})')
    payload = bytes(data)
    if not payload:
        raise ImageDecodeError('compressed image has no data')
    try:
        with Image.open(io.BytesIO(payload), formats=COMPRESSED_FORMATS) as image:   # header only
            width, height = image.size
            _check_size(height, width, max_pixels)
            return np.asarray(image.convert('RGB'), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f'compressed image is too large: {error}') from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f'cannot decode compressed image (format {format!r}, '
                               f'{len(payload)} bytes): {error}') from error


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (antialiased on downscale, Pillow) resize to (height, width, 3); no-op when equal.

    The one resize used for live frames, replay and the dataset, so training and deployment agree.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(f'resize_rgb expects uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
    if rgb.shape[:2] == (height, width):
        return rgb
    from PIL import Image
    resized = Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


@dataclass(frozen=True)
class Fovea:
    """A zoomed strip of the camera frame appended under the full view (off when `rows` is 0).

    Far targets are a few pixels at the model's resolution; the strip shows the middle 1/zoom of
    the frame's width, around the horizon (`centre`: fraction of the frame height from the top),
    `zoom` times larger than the full view, as `rows` extra rows of the model's input image.
    """

    rows: int = 0
    zoom: float = 2.0
    centre: float = 0.44


def model_view(rgb: np.ndarray, height: int, width: int, fovea: Fovea = Fovea()) -> np.ndarray:
    """The model's input image: the frame resized to (height - fovea.rows, width), then the
    fovea strip (fovea.rows, width) under it. One function for live frames, replay and training."""
    if not fovea.rows:
        return resize_rgb(rgb, height, width)
    full_rows = height - fovea.rows
    full = resize_rgb(rgb, full_rows, width)
    frame_h, frame_w = rgb.shape[:2]
    crop_w = frame_w / fovea.zoom
    crop_h = min(frame_h * fovea.rows / full_rows / fovea.zoom, float(frame_h))
    top = min(max(fovea.centre * frame_h - crop_h / 2.0, 0.0), frame_h - crop_h)
    left = (frame_w - crop_w) / 2.0
    from PIL import Image
    strip = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width, fovea.rows), Image.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
    return np.concatenate([full, np.asarray(strip, dtype=np.uint8)], axis=0)


def encode_image_fields(rgb: np.ndarray, encoding: str = 'rgb8', padding: int = 0) -> dict:
    """The inverse for tests and the simulator: uint8 RGB -> dict of sensor_msgs/Image fields.

    Supports rgb8, bgr8, rgba8, bgra8 and mono8, with `padding` extra bytes per row.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    if encoding == 'rgb8':
        pixels = rgb
    elif encoding == 'bgr8':
        pixels = rgb[:, :, ::-1]
    elif encoding in ('rgba8', 'bgra8'):
        colour = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
        pixels = np.concatenate([colour, np.full((height, width, 1), 255, np.uint8)], axis=2)
    elif encoding == 'mono8':
        pixels = rgb.mean(axis=2).round().astype(np.uint8)[:, :, None]
    else:
        raise ValueError(f'encode_image_fields does not write {encoding!r}')
    row_bytes = width * pixels.shape[2]
    rows = np.zeros((height, row_bytes + padding), dtype=np.uint8)
    rows[:, :row_bytes] = pixels.reshape(height, row_bytes)
    return {'encoding': encoding, 'height': height, 'width': width, 'step': row_bytes + padding,
            'is_bigendian': 0, 'data': rows.tobytes()}
