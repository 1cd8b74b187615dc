"""Image decoding: every encoding, padded rows, bad and absurd sizes, compressed payloads."""
import io

import numpy as np
import pytest
from PIL import Image

from vla_nav.core.image_decode import (
    Fovea,
    ImageDecodeError,
    decode_compressed,
    decode_image,
    encode_image_fields,
    model_view,
    resize_rgb,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)


def decode(fields, **kwargs):
    return decode_image(fields['encoding'], fields['height'], fields['width'], fields['step'],
                        fields['data'], fields.get('is_bigendian', 0), **kwargs)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('padding', [0, 5])
def test_colour_encodings_with_padded_rows(encoding, padding):
    out = decode(encode_image_fields(RGB, encoding, padding))
    assert out.dtype == np.uint8 and out.shape == RGB.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('padding', [0, 3])
def test_mono8_becomes_grey_rgb(padding):
    out = decode(encode_image_fields(RGB, 'mono8', padding))
    grey = RGB.mean(axis=2).round().astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


@pytest.mark.parametrize('bigendian', [0, 1])
def test_mono16_keeps_the_high_byte(bigendian):
    values = np.array([[0, 256, 65535, 4660]], dtype=('>u2' if bigendian else '<u2'))
    out = decode_image('mono16', 1, 4, 8, values.tobytes(), bigendian)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 0x12])


def test_bayer_rggb_demosaics_by_cells():
    raw = np.array([[200, 100, 200, 100], [100, 50, 100, 50]], dtype=np.uint8)   # R G / G B
    out = decode_image('bayer_rggb8', 2, 4, 4, raw.tobytes())
    np.testing.assert_array_equal(out[0, 0], [200, 100, 50])
    assert out.shape == (2, 4, 3)


def test_memoryview_and_array_payloads():
    import array
    fields = encode_image_fields(RGB, 'rgb8')
    payload = array.array('B', fields['data'])
    np.testing.assert_array_equal(decode({**fields, 'data': payload}), RGB)
    np.testing.assert_array_equal(decode({**fields, 'data': memoryview(fields['data'])}), RGB)


@pytest.mark.parametrize('change, message', [
    ({'encoding': 'yuv422_yuy2'}, 'unsupported image encoding'),
    ({'step': 29}, 'step 29 is smaller'),
    ({'height': 0, 'width': 0, 'data': b''}, 'no pixels'),
    ({'data': b'\x00' * 10}, 'short'),
    ({'data': b'\x00' * 1000}, 'long'),
])
def test_bad_headers_raise_clear_errors(change, message):
    fields = {**encode_image_fields(RGB, 'rgb8'), **change}
    with pytest.raises(ImageDecodeError, match=message):
        decode(fields)


def test_absurd_size_is_rejected_before_allocating():
    with pytest.raises(ImageDecodeError, match='exceeds the limit'):
        decode_image('rgb8', 8192, 8192, 8192 * 3, b'\x00' * 16)


def compress(rgb, image_format):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=image_format)
    return buffer.getvalue()


def test_png_is_lossless_and_jpeg_is_close():
    np.testing.assert_array_equal(decode_compressed(compress(RGB, 'PNG'), 'png'), RGB)
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
    out = decode_compressed(compress(smooth, 'JPEG'), 'jpeg')
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).max() < 20


def test_corrupt_and_huge_compressed_images_are_rejected():
    with pytest.raises(ImageDecodeError, match='cannot decode'):
        decode_compressed(b'\xff\xd8\xff garbage', 'jpeg')
    truncated = compress(RGB, 'JPEG')[:40]
    with pytest.raises(ImageDecodeError):
        decode_compressed(truncated, 'jpeg')
    with pytest.raises(ImageDecodeError, match='no data'):
        decode_compressed(b'', 'jpeg')
    big = compress(np.zeros((64, 64, 3), np.uint8), 'PNG')
    with pytest.raises(ImageDecodeError, match='exceeds the limit'):
        decode_compressed(big, 'png', max_pixels=100)


def test_resize():
    out = resize_rgb(RGB, 3, 5)
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8
    assert resize_rgb(RGB, 6, 10) is RGB
    with pytest.raises(ImageDecodeError):
        resize_rgb(RGB[:, :, 0], 3, 5)


def test_model_view_adds_a_zoomed_strip_around_the_horizon():
    """Columns hold their x, rows their y: the strip shows x 32..96 (the middle half: zoom 2) and
    the rows around centre 0.44 x 128, twice as large as the full view shows them."""
    x, y = np.meshgrid(np.arange(128), np.arange(128))
    frame = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    assert np.array_equal(model_view(frame, 40, 40), resize_rgb(frame, 40, 40))   # no fovea
    view = model_view(frame, 60, 40, Fovea(rows=20, zoom=2.0, centre=0.44))
    assert view.shape == (60, 40, 3) and np.array_equal(view[:40], resize_rgb(frame, 40, 40))
    strip = view[40:].astype(int)
    assert abs(strip[:, 0, 0].mean() - 33) <= 2 and abs(strip[:, -1, 0].mean() - 94) <= 2
    crop_rows = 128 * 20 / 40 / 2          # 32 frame rows, centred on row 56.3
    assert abs(strip[0, :, 1].mean() - (56.3 - crop_rows / 2 + 1)) <= 2
    assert abs(strip[-1, :, 1].mean() - (56.3 + crop_rows / 2 - 1)) <= 2
    top = model_view(frame, 60, 40, Fovea(rows=20, centre=0.0))[40:].astype(int)
    assert top[0, :, 1].mean() <= 2         # clamped to the frame: starts at row 0
