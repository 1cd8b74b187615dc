"""Direct fuzz (no ROS) of the core code that runs on untrusted input: decode_image,
decode_compressed and classify_instruction (vla_node) and ChunkExecutor (chunk_executor) get
thousands of seeded random inputs. The contracts under test: a frame either decodes to a uint8
(H, W, 3) array matching its header or raises ImageDecodeError (never another exception, never a
warning, never a large allocation); an instruction always comes back as an InstructionResult (never
an exception) and an accepted one is clean text within the limit; whatever chunks, preempts and
clock jumps arrive, every command is finite, within the velocity limits and the acceleration
limits, and a good chunk afterwards is followed normally.
"""
from __future__ import annotations

import array
import io
import math
import random
import struct
import tracemalloc
import unicodedata
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from vla_nav.config import load_config
from vla_nav.core.executor import ChunkExecutor
from vla_nav.core.image_decode import (
    MAX_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    decode_compressed,
    decode_image,
)
from vla_nav.core.instruction import GOAL, REJECTED, STOP, classify_instruction

SEED = 20240606
CASES = 3000
MAX_PAYLOAD = 64 * 1024                  # fuzz payloads stay below this...
ALLOCATION_BUDGET = 8 * 1024 * 1024      # ...so a decode that allocates more is "huge"
UINT32_MAX = 2 ** 32 - 1
JUNK_ENCODINGS = ['', 'RGB8', 'yuv422', 'yuv422_yuy2', 'nv21', '32FC1', '16UC3', 'rgb16', 'jpeg',
                  'rgb8\x00', 'bgr8 ', 'bayer_rggb16', '\u00e9ncoding', 'x' * 300]
STOP_WORDS = ['stop', 'halt', 'stop now', 'emergency stop', 'freeze', 'stay', 'stand still']
MAX_CHARS = 64


def _sample_payload(rng: random.Random, length: int):
    data = rng.randbytes(length)
    kind = rng.randrange(3)
    return data if kind == 0 else bytearray(data) if kind == 1 else array.array('B', data)


def _random_header(rng: random.Random) -> dict:
    """A header that is plausible (right sizes), off by a little, or absurd."""
    encoding = rng.choice(list(SUPPORTED_ENCODINGS) + JUNK_ENCODINGS)
    bytes_per_pixel = {'rgb8': 3, 'bgr8': 3, '8UC3': 3, 'rgba8': 4, 'bgra8': 4, '8UC4': 4,
                       'mono16': 2, '16UC1': 2}.get(encoding, 1)
    shape = rng.random()
    if shape < 0.5:                      # small and plausible, maybe padded
        height, width = rng.randrange(0, 40), rng.randrange(0, 40)
        step = width * bytes_per_pixel + rng.choice([0, 0, 1, 3, -1, 64])
    elif shape < 0.8:                    # absurd: 8k x 8k, uint32 extremes
        height = rng.choice([0, 1, 8192, 65535, UINT32_MAX, 2 ** 31])
        width = rng.choice([0, 1, 8192, 65535, UINT32_MAX, 2 ** 31])
        step = rng.choice([0, 1, width, width * bytes_per_pixel, UINT32_MAX])
    else:                                # python-level garbage the ROS types would not allow
        height, width = rng.randrange(-5, 5), rng.randrange(-5, 5)
        step = rng.randrange(-10, 30)
    plausible = max(0, step) * max(0, height)
    length = rng.choice([0, 1, plausible, plausible - 1, plausible + 1, rng.randrange(0, 4096)])
    length = min(max(0, length), MAX_PAYLOAD)
    return {'encoding': encoding, 'height': height, 'width': width, 'step': step,
            'data': _sample_payload(rng, length), 'is_bigendian': rng.choice([0, 1, 255])}


def test_decode_image_fuzz_raises_only_image_decode_error_and_allocates_little():
    rng = random.Random(SEED)
    decoded = refused = 0
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error')     # a warning would be log spam in the node
            for _ in range(CASES):
                header = _random_header(rng)
                try:
                    rgb = decode_image(header['encoding'], header['height'], header['width'],
                                       header['step'], header['data'], header['is_bigendian'])
                except ImageDecodeError as error:
                    assert str(error), header
                    refused += 1
                    continue
                assert rgb.dtype == np.uint8 and rgb.shape == (header['height'], header['width'], 3)
                decoded += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded > 50 and refused > CASES // 2      # both paths were exercised
    assert peak < ALLOCATION_BUDGET, f'decode_image allocated {peak} bytes at peak'


def _encode(rgb: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=image_format)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a tiny (wrong) IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b'\x00' * 16))
            + chunk(b'IEND', b''))


def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG with its SOF0 frame size rewritten (the scan data stays tiny)."""
    sof = jpeg.index(b'\xff\xc0')
    return jpeg[:sof + 5] + struct.pack('>HH', height, width) + jpeg[sof + 9:]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        position = rng.randrange(len(data)) if data else 0
        operation = rng.random()
        if operation < 0.5 and data:
            data[position] = rng.getrandbits(8)
        elif operation < 0.7:
            del data[position:]
        else:
            data[position:position] = rng.randbytes(rng.randrange(1, 16))
    return bytes(data)


FOREIGN_FORMATS = ('GIF', 'BMP', 'TIFF', 'WEBP', 'PPM', 'ICO')
FORMAT_FIELDS = ('jpeg', 'png', '', 'rgb8; jpeg compressed bgr8', 'tiff')


def test_decode_compressed_fuzz_raises_only_image_decode_error():
    rng = random.Random(SEED + 1)
    picture = np.random.default_rng(SEED).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    jpeg, png = _encode(picture, 'JPEG'), _encode(picture, 'PNG')
    foreign = [_encode(picture, name) for name in FOREIGN_FORMATS]
    bombs = [_png_claiming(8192, 8192), _jpeg_claiming(jpeg, 8192, 8192),
             _png_claiming(UINT32_MAX // 2, 1), _jpeg_claiming(jpeg, 65535, 65535)]
    decoded = refused = 0
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            for case in range(CASES):
                choice = rng.random()
                if case < len(bombs):
                    payload = bombs[case]
                elif choice < 0.75:
                    payload = _mutate(rng, rng.choice((jpeg, png)))
                elif choice < 0.9:
                    payload = _mutate(rng, rng.choice(foreign)) if rng.random() < 0.5 else rng.choice(foreign)
                else:
                    payload = rng.randbytes(rng.randrange(0, 300))
                try:
                    rgb = decode_compressed(payload, rng.choice(FORMAT_FIELDS))
                except ImageDecodeError as error:
                    assert str(error)
                    refused += 1
                    continue
                assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
                assert rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS
                decoded += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded > 50 and refused > CASES // 2
    assert peak < ALLOCATION_BUDGET, f'decode_compressed allocated {peak} bytes at peak'


@pytest.mark.parametrize('image_format', FOREIGN_FORMATS)
def test_only_jpeg_and_png_are_decoded(image_format):
    """CompressedImage carries JPEG or PNG (image_transport); other formats are refused, so
    Pillow's many other parsers never see camera input."""
    payload = _encode(np.zeros((8, 8, 3), np.uint8), image_format)
    with pytest.raises(ImageDecodeError):
        decode_compressed(payload, image_format.lower())


def test_absurd_compressed_headers_are_refused_by_size():
    jpeg = _encode(np.zeros((8, 8, 3), np.uint8), 'JPEG')
    for payload in (_png_claiming(8192, 8192), _jpeg_claiming(jpeg, 8192, 8192)):
        with pytest.raises(ImageDecodeError, match='exceeds the limit'):
            decode_compressed(payload, 'jpeg')


_ALPHABETS = [
    'abcdefghijklmnopqrstuvwxyz     .,!?',
    '去红色椅子左转停止前进 ',                                  # Chinese
    'اذهب إلى الباب الأحمر ',                                 # Arabic (right to left)
    'иди к красной двери ',
    '\U0001F680\U0001F6D1\u2764\ufe0f\U0001F1EF\U0001F1F5\u200d ',  # emoji, ZWJ, flags
    '\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\u2028\u2029\t\r\n',  # controls, separators
    '\u200b\u200e\u202e\ufeff\u0301\u0308\u034f',             # zero-width, bidi override, combining
    '\ud800\udbff\udc00\udfff',                               # lone surrogates
    '\ufffd\uffff\U0010ffff\ue000',
]


def _random_text(rng: random.Random) -> str:
    length = rng.choice([0, 1, 2, 5, 20, MAX_CHARS - 1, MAX_CHARS, MAX_CHARS + 1, 300, 5000])
    alphabets = rng.sample(_ALPHABETS, rng.randrange(1, 4))
    text = ''.join(rng.choice(rng.choice(alphabets)) for _ in range(length))
    if rng.random() < 0.1:
        text = rng.choice(STOP_WORDS).upper() + rng.choice(['', '!', ' ', '\u3002', '\x00'])
    return text


def test_classify_instruction_fuzz_never_raises_and_accepts_only_clean_text():
    rng = random.Random(SEED + 2)
    kinds = {GOAL: 0, STOP: 0, REJECTED: 0}
    for case in range(CASES):
        if case % 5 == 0:
            text = rng.randbytes(rng.randrange(0, 200))     # raw bytes, mostly invalid UTF-8
        else:
            text = _random_text(rng)
        result = classify_instruction(text, STOP_WORDS, MAX_CHARS)
        kinds[result.kind] += 1
        if result.kind == REJECTED:
            assert result.reason
            continue
        assert result.reason == '' and result.text == result.text.strip() and result.text
        assert len(result.text) <= MAX_CHARS
        assert not any(unicodedata.category(char) in ('Cc', 'Cs') for char in result.text)
        assert '\ufffd' not in result.text                 # corrupted text is never a goal
        result.text.encode('utf-8')                         # publishable as a ROS string
    assert min(kinds.values()) > 0, kinds


@pytest.mark.parametrize('payload', [b'\xff\xfe go left', b'\xed\xa0\x80 go', b'go to the door \xc3'])
def test_invalid_utf8_that_arrives_through_ros_is_rejected(payload):
    """rclpy decodes a std_msgs/String with invalid UTF-8 using replacement characters (U+FFFD):
    that text must be rejected like the raw bytes are, not executed as a goal."""
    as_received = payload.decode('utf-8', errors='replace')
    for text in (payload, as_received):
        result = classify_instruction(text, STOP_WORDS, MAX_CHARS)
        assert result.kind == REJECTED and 'UTF-8' in result.reason, result


def test_huge_instruction_is_rejected_and_names_the_limit():
    result = classify_instruction('go ' * 400_000, STOP_WORDS, MAX_CHARS)   # 1.2 MB
    assert result.kind == REJECTED and f'limit of {MAX_CHARS}' in result.reason


def _random_chunk_args(rng: random.Random, now: float):
    """(stamp, actions, dt) for add_chunk: mostly plausible, often absurd."""
    stamp = rng.choice([now, now - rng.random(), now - 5.0, now + 0.05, now + 1e6, -1e9, 0.0,
                        math.nan, math.inf])
    steps = rng.choice([1, 10, 10, 10, 0, 1000])
    actions = np.array([[rng.uniform(-1.0, 1.0), rng.uniform(-3.0, 3.0)] for _ in range(steps)])
    if steps and rng.random() < 0.5:
        poison = rng.choice([math.nan, math.inf, -math.inf, 1e30, -1e30, 5.0, -5.0])
        actions[rng.randrange(steps), rng.randrange(2)] = poison
    if rng.random() < 0.05:
        actions = actions.reshape(-1)          # wrong shape
    dt = rng.choice([0.1, 0.1, 0.05, 0.0, -0.1, 1e-9, 1e6, math.nan])
    return stamp, actions, dt


def test_chunk_executor_fuzz_keeps_commands_finite_and_limited_and_recovers():
    config = load_config().executor
    executor = ChunkExecutor(config)
    rng = random.Random(SEED + 3)
    now, previous, moved = 1000.0, (0.0, 0.0), False
    for case in range(CASES):
        operation = rng.random()
        if operation < 0.45:
            executor.add_chunk(*_random_chunk_args(rng, now), now=now)
        elif operation < 0.55:
            executor.preempt(rng.choice([now, now - 1.0, now + 0.2, now + 1e6, math.nan, -math.inf]), now)
        elif operation < 0.57:
            executor.set_estop(rng.random() < 0.3)
        gap = rng.choice([config.period, config.period, 0.0, 1e-6, 0.5, 3.0, -2.0])
        now += gap
        command = executor.tick(now)
        linear, angular = command
        assert math.isfinite(linear) and math.isfinite(angular), command
        assert config.min_linear_vel <= linear <= config.max_linear_vel, command
        assert abs(angular) <= config.max_angular_vel, command
        tick_dt = gap if case and 0.0 < gap <= 1.0 else config.period   # first tick: one period
        for axis, (accel, decel, deadband) in enumerate((
                (config.max_linear_accel, config.max_linear_decel, config.deadband_linear),
                (config.max_angular_accel, config.max_angular_decel, config.deadband_angular))):
            change = abs(command[axis] - previous[axis])
            assert change <= max(accel, decel) * tick_dt + deadband + 1e-9, (previous, command)
        moved = moved or linear != 0.0
        previous = command
    assert moved and executor.accepted_chunks > 50 and executor.rejected_chunks > 50
    # good input right after the junk is followed normally
    executor.set_estop(False)
    now += 0.2
    assert executor.add_chunk(now, np.tile([0.3, 0.4], (10, 1)), 0.1, now=now), \
        executor.last_reject_reason
    for _ in range(9):            # 0.45 s: enough to reach it from any limit, within the watchdog
        now += config.period
        executor.tick(now)
    assert executor.command == pytest.approx((0.3, 0.4)) and executor.state == 'tracking'
