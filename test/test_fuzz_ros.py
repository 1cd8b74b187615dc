"""Fuzz over real ROS 2 (rclpy + Fast DDS on loopback, a private domain, separate processes).

Two vla_node processes (raw Image and CompressedImage transport, deterministic test policy) get
well over 1000 malformed frames and instructions; a chunk_executor gets malformed chunks on its own
topic. Afterwards: every process is alive, the errors were logged at a throttled rate (a handful of
lines, not one per message), no chunk came from a bad frame (only the empty preempt of an accepted
goal appeared), the executor never published a non-finite or out-of-limit command, and good input
right after the junk is handled normally.
"""
from __future__ import annotations

import ast
import io
import itertools
import math
import random
import re
import struct
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from builtin_interfaces.msg import Duration, Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from PIL import Image as PilImage  # noqa: E402
from rosutil import TEST_POLICY, Probe, Rig, domain_id_for, start_node  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint  # noqa: E402

from vla_nav.config import node_defaults  # noqa: E402
from vla_nav.core.instruction import normalise_instruction  # noqa: E402
from vla_nav.ros import convert, msgs, qos  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = domain_id_for(__file__)
SEED = 6
TEST_POLICY = {**TEST_POLICY, 'diagnostics_period': 0.5}
VLA = node_defaults('vla_node')
EXECUTOR = node_defaults('chunk_executor')
COMPRESSED_CHUNKS = '/fuzz/compressed/action_chunk'
COMPRESSED_DIAGNOSTICS = '/fuzz/compressed/diagnostics'
FUZZ_CHUNKS = '/fuzz/executor/action_chunk'      # the executor's own input: only the probe writes it
RAW_FRAMES, COMPRESSED_FRAMES, INSTRUCTIONS, CHUNKS = 900, 300, 150, 200
UINT32_MAX = 2 ** 32 - 1
GOOD = np.full((48, 64, 3), 200, np.uint8)
MAX_LOG_LINES = 40      # non-INFO lines per node for the whole fuzz (throttled: a few per site)


# --- malformed messages ----------------------------------------------------------------------------
def now_stamp(offset: float = 0.0) -> Time:
    return msgs.sec_to_stamp(time.time() + offset)


def bad_image(rng: random.Random) -> Image:
    """A sensor_msgs/Image that must never produce a chunk."""
    msg = msgs.rgb_to_image_msg(GOOD, time.time())
    size = len(msg.data)
    case = rng.randrange(12)
    if case == 0:
        msg.step = rng.choice([0, 1, 7, msg.width * 3 - 1])                # smaller than a row
    elif case == 1:
        msg.step = msg.width * 3 + rng.choice([1, 64])                      # padding the data lacks
    elif case == 2:
        msg.data = msg.data[:rng.randrange(0, size)]                        # short
    elif case == 3:
        msg.data = msg.data + msg.data[:rng.randrange(1, 200)]              # long
    elif case == 4:
        msg.encoding = rng.choice(['yuv422', 'RGB8', '', 'nv12', '32FC1', 'x' * 200, 'jpeg'])
    elif case == 5:
        msg.height = msg.width = msg.step = 0
        msg.data = b''
    elif case == 6:
        msg.height = msg.width = 8192                                       # 8k x 8k, tiny data
        msg.step = 8192 * 3
        msg.data = b'\x00' * 16
    elif case == 7:
        msg.height = msg.width = msg.step = UINT32_MAX
        msg.data = b'\x01\x02\x03'
    elif case == 8:
        msg.encoding, msg.height, msg.width, msg.step = 'bayer_rggb8', 3, 3, 3
        msg.data = bytes(9)                                                 # odd bayer size
    elif case == 9:
        msg.encoding, msg.step = 'mono16', msg.width * 2
        msg.data = msg.data[:msg.step * msg.height - 1]
    elif case == 10:                                                        # good pixels, absurd stamps
        msg.header.stamp = rng.choice([Time(sec=0, nanosec=0), Time(sec=2 ** 31 - 1, nanosec=999_999_999),
                                       now_stamp(-3600.0), now_stamp(+3600.0), now_stamp(-5.0)])
    else:
        msg.is_bigendian = 255
        msg.width = msg.width + 1
    return msg


def encode(rgb: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format=image_format)
    return buffer.getvalue()


def bad_compressed(rng: random.Random, jpeg: bytes, png: bytes, others: list[bytes]) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp = now_stamp()
    msg.format = rng.choice(['jpeg', 'png', '', 'rgb8; jpeg compressed bgr8', '16UC1; compressedDepth'])
    case = rng.randrange(6)
    if case == 0:
        payload = rng.choice((jpeg, png))[:rng.randrange(0, 60)]            # truncated header
    elif case == 1:                                                          # flipped bytes
        payload = bytearray(rng.choice((jpeg, png)))
        for _ in range(rng.randrange(1, 10)):
            payload[rng.randrange(20, len(payload))] = rng.getrandbits(8)
        payload = bytes(payload)[:rng.randrange(len(payload) // 2, len(payload))]
    elif case == 2:
        sof = jpeg.index(b'\xff\xc0')                                        # claims 8k x 8k
        payload = jpeg[:sof + 5] + struct.pack('>HH', 8192, 8192) + jpeg[sof + 9:]
    elif case == 3:
        payload = rng.choice(others)                                         # TIFF, GIF, BMP
    elif case == 4:
        payload = b''
    else:
        payload = rng.randbytes(rng.randrange(1, 400))
    msg.data = payload
    return msg


def raw_string_cdr(payload: bytes) -> bytes:
    """A serialized std_msgs/String carrying arbitrary bytes, published with publish(bytes).

    rclpy refuses to publish a str with lone surrogates (UnicodeEncodeError in publish), so
    invalid UTF-8 and CESU-8 surrogates (b'\\xed\\xa0\\x80') can only go out as raw CDR; the
    receiving rclpy decodes them with U+FFFD replacement characters, which vla_node must reject.
    """
    return b'\x00\x01\x00\x00' + struct.pack('<I', len(payload) + 1) + payload + b'\x00'


HUGE_INSTRUCTION = 'go ' * 400_000      # 1.2 MB: sent twice (each costs the nodes a deserialisation)
BAD_INSTRUCTIONS: list[str | bytes] = [
    '', ' ', '\t\n\r  ', '\x00', '\x00\x01\x07\x1b', '...', '?!',
    'x' * (VLA['max_instruction_chars'] + 1), '\u200b\u200b' + ' ' * 600 + 'y' * 600,
    raw_string_cdr(b'\xff\xfe go left'), raw_string_cdr(b'\xed\xa0\x80 go'),           # bad UTF-8,
    raw_string_cdr(b'turn \xc3'), raw_string_cdr(b'\xed\xb0\x80\xed\xa0\x80'),         # surrogates
]
FOREIGN_GOALS = ['去红色的椅子', 'اذهب إلى الباب الأحمر', '🚀➡️🟥', 'иди вперёд', 'go\x1b[31m left\x07']


def bad_chunk(rng: random.Random) -> MultiDOFJointTrajectory:
    """Malformed or absurd chunks straight into chunk_executor (not what vla_node would send)."""
    now = time.time()
    steps = rng.choice([1, 10, 10, 2000])
    actions = np.tile([rng.uniform(-1, 1), rng.uniform(-3, 3)], (steps, 1))
    case = rng.randrange(8)
    if case == 0:
        actions[rng.randrange(steps)] = rng.choice([math.nan, math.inf, -math.inf])
    elif case == 1:
        actions[:] = rng.choice([1e30, -1e30, 1e300])
    stamp = rng.choice([now, now, now - 0.05, now + 1e6, 0.0, now - 100.0])
    msg = msgs.chunk_to_msg(stamp, actions, 0.1, 'base_link')
    if case == 2:
        msg.points[0].velocities = []                                       # no velocities
    elif case == 3 and steps > 1:
        msg.points[-1].time_from_start = Duration(sec=-5, nanosec=0)        # uneven spacing
    elif case == 4:
        msg.points = []                                                      # a preempt...
        msg.header.stamp = rng.choice([now_stamp(1e6), Time(sec=2 ** 31 - 1, nanosec=UINT32_MAX)])
    elif case == 5:
        point = MultiDOFJointTrajectoryPoint()
        point.velocities = [Twist()]
        msg.points = [point] * 3                                             # all at t = 0
    return msg


# --- the suite -------------------------------------------------------------------------------------
class Suite(Rig):
    """The common rig (raw vla_node on the default topics) plus a compressed-transport vla_node
    on its own chunk/diagnostics topics and a chunk_executor fed only by the probe (FUZZ_CHUNKS)."""

    def __init__(self) -> None:
        super().__init__(Probe(DOMAIN, 'fuzz_probe'))
        self.raw = start_node('vla_node', DOMAIN, TEST_POLICY)
        self.compressed = start_node('vla_node', DOMAIN, {
            **TEST_POLICY, 'image_transport': 'compressed', 'chunk_topic': COMPRESSED_CHUNKS,
            'diagnostics_topic': COMPRESSED_DIAGNOSTICS})
        self.executor = start_node('chunk_executor', DOMAIN, {'chunk_topic': FUZZ_CHUNKS,
                                                              'diagnostics_period': 0.5})
        probe, reliable = self.probe, qos.reliable_qos()
        self.raw_chunks, self.raw_diagnostics = self.chunks, self.diagnostics
        self.compressed_chunks = probe.record(MultiDOFJointTrajectory, COMPRESSED_CHUNKS, reliable)
        self.compressed_diagnostics = probe.record(DiagnosticArray, COMPRESSED_DIAGNOSTICS)
        self.compressed_pub = probe.publisher(CompressedImage, self.topics.compressed_image,
                                              qos.sensor_qos())
        self.fuzz_chunk_pub = probe.publisher(MultiDOFJointTrajectory, FUZZ_CHUNKS, reliable)
        self.processes = (self.raw, self.compressed, self.executor)

    def ready(self) -> bool:
        probe = self.probe
        return (probe.wait_for_subscribers(self.image_pub) and probe.wait_for_subscribers(self.compressed_pub)
                and probe.wait_for_subscribers(self.instruction_pub, 2)
                and probe.wait_for_subscribers(self.fuzz_chunk_pub)
                and probe.wait_for_publishers(self.topics.cmd_vel)
                # a report from each vla_node: each sees the probe's chunk readers (made earlier)
                and probe.wait_for_message(self.raw_diagnostics, probe.report_of('vla_node'))
                and probe.wait_for_message(self.compressed_diagnostics, probe.report_of('vla_node')))

    def outputs(self) -> str:
        return '\n'.join(f'--- {p.name} ---\n{p.output[-3000:]}' for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        self.probe.close()


@pytest.fixture(scope='module')
def suite():
    started = Suite()
    try:
        assert started.ready(), started.outputs()
        yield started
    finally:
        started.close()


def undecodable(suite: Suite, diagnostics: list) -> int:
    """frames_undecodable of the latest vla_node report on `diagnostics` (the raw one shares
    /diagnostics with chunk_executor: reports are always picked by name)."""
    return int(suite.values('vla_node', diagnostics).get('frames_undecodable', 0))


ACCEPTED = re.compile(r'\]: (?:goal|stop) (.+) \(goal \d+, preempt at ')


def accepted_goals(output: str) -> list[str]:
    """The goal texts vla_node logged as accepted (INFO "goal 'text' (goal N, preempt at ...)")."""
    return [ast.literal_eval(match.group(1)) for match in ACCEPTED.finditer(output)]


def complaint_lines(output: str) -> list[str]:
    """Everything a node wrote that is not an INFO/DEBUG log line: errors, warnings, stray prints."""
    return [line for line in output.splitlines()
            if line.strip() and not line.startswith(('[INFO]', '[DEBUG]'))]


@pytest.fixture(scope='module')
def fuzzed(suite):
    """Send the junk once (module-scoped); the tests below check its aftermath."""
    rng = random.Random(SEED)
    picture = np.random.default_rng(SEED).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    jpeg, png = encode(picture, 'JPEG'), encode(picture, 'PNG')
    others = [encode(picture, name) for name in ('TIFF', 'GIF', 'BMP')]
    # an accepted goal first, so the frames below meet an active policy
    suite.instruction_pub.publish(String(data='go to the red cone'))
    assert suite.probe.spin_until(lambda: suite.raw_chunks and suite.compressed_chunks, 10.0), \
        suite.outputs()
    marks = {'raw': len(suite.raw_chunks), 'compressed': len(suite.compressed_chunks)}
    output_marks = {id(p): len(p.output) for p in suite.processes}
    schedule = (['raw'] * RAW_FRAMES + ['compressed'] * COMPRESSED_FRAMES
                + ['instruction'] * INSTRUCTIONS + ['chunk'] * CHUNKS)
    rng.shuffle(schedule)
    instructions = itertools.cycle(BAD_INSTRUCTIONS + FOREIGN_GOALS)
    slots = [index for index, kind in enumerate(schedule) if kind == 'instruction']
    huge_at = {slots[len(slots) // 3], slots[2 * len(slots) // 3]}
    for index, kind in enumerate(schedule):
        if kind == 'raw':
            suite.image_pub.publish(bad_image(rng))
        elif kind == 'compressed':
            suite.compressed_pub.publish(bad_compressed(rng, jpeg, png, others))
        elif kind == 'instruction':
            text = HUGE_INSTRUCTION if index in huge_at else next(instructions)
            suite.instruction_pub.publish(text if isinstance(text, bytes) else String(data=text))
        else:
            suite.fuzz_chunk_pub.publish(bad_chunk(rng))
        if index % 4 == 0:
            suite.probe.executor.spin_once(timeout_sec=0.002)   # ~2 ms pacing, keeps recording
    # the nodes report (every 0.5 s) how many frames they could not decode: the junk got through
    # (best effort, depth 1: frames that arrive while a callback runs are dropped, as they should be)
    assert suite.probe.spin_until(
        lambda: undecodable(suite, suite.raw_diagnostics) >= RAW_FRAMES // 6
        and undecodable(suite, suite.compressed_diagnostics) >= COMPRESSED_FRAMES // 6, 10.0), suite.outputs()
    suite.probe.spin_for(1.0)
    return {'sent': len(schedule), 'chunk_marks': marks, 'output_marks': output_marks}


def test_over_long_instruction_is_rejected_and_one_at_the_limit_accepted(suite):
    """max_instruction_chars (config/vla_nav.yaml; core/instruction.py): one character more is
    rejected with a reason naming the limit and changes nothing; the limit itself is a goal."""
    limit = VLA['max_instruction_chars']
    mark = len(suite.raw_chunks)
    suite.instruction_pub.publish(String(data='a' * (limit + 1)))
    reason = f'has {limit + 1} characters, more than the limit of {limit}'
    assert suite.probe.spin_until(lambda: reason in suite.raw.output, 10.0), suite.raw.output[-2000:]
    suite.instruction_pub.publish(String(data='go to the red cone ' + 'b' * (limit - 19)))
    assert suite.probe.spin_until(lambda: len(suite.raw_chunks) > mark, 10.0), suite.raw.output[-2000:]
    suite.probe.spin_for(0.3)
    assert [bool(msg.points) for _, msg in suite.raw_chunks[mark:]] == [False]   # one preempt


def test_every_node_survives_the_junk(suite, fuzzed):
    assert fuzzed['sent'] >= 1000
    for process in suite.processes:
        assert process.alive(), suite.outputs()
        assert 'Traceback' not in process.output, process.output[-3000:]


def test_errors_are_logged_throttled(suite, fuzzed):
    raw_log = suite.raw.output[fuzzed['output_marks'][id(suite.raw)]:]
    assert 'frame dropped' in raw_log and 'instruction rejected' in raw_log   # they were logged...
    for process in suite.processes:
        new = process.output[fuzzed['output_marks'][id(process)]:]
        complaints = complaint_lines(new)
        assert len(complaints) <= MAX_LOG_LINES, '\n'.join(complaints[:80])   # ...but not per message


def test_only_real_goals_were_accepted(suite, fuzzed):
    """Empty, whitespace, control-only, punctuation-only, over-long and invalid-UTF-8 instructions
    are all rejected; goals in other languages are read as text (never rejected as junk), and the
    goal sequencer refuses what it cannot act on (vla_nav.core.goal): none is accepted as a guess."""
    warm_up = 'go to the red cone'
    expected = {normalise_instruction(text) for text in FOREIGN_GOALS} | {warm_up}
    for process in (suite.raw, suite.compressed):
        output = process.output[fuzzed['output_marks'][id(process)]:]
        goals = accepted_goals(output)
        assert set(goals) <= expected, goals
        assert 'refused' in output, output[-2000:]   # the foreign goals were read, then refused


def test_no_chunk_comes_from_a_bad_frame(suite, fuzzed):
    for name, chunks in (('raw', suite.raw_chunks), ('compressed', suite.compressed_chunks)):
        after = [msg for _, msg in chunks[fuzzed['chunk_marks'][name]:]]
        assert all(not msg.points for msg in after), f'{name}: a chunk came from a bad frame'
    # a vla_node report sent after the junk (not chunk_executor's, not one from before)
    values = suite.wait_report('vla_node', lambda report: True, 10.0).values
    assert values['chunks'] == '0' and int(values['frames_stale']) > 0, values  # absurd stamps: stale


def test_executor_never_publishes_an_unsafe_command(suite, fuzzed):
    assert suite.cmds
    for _, msg in suite.cmds:
        linear, angular = msg.linear.x, msg.angular.z
        assert math.isfinite(linear) and math.isfinite(angular)
        assert EXECUTOR['min_linear_vel'] <= linear <= EXECUTOR['max_linear_vel']
        assert abs(angular) <= EXECUTOR['max_angular_vel']


def test_good_input_right_after_is_handled(suite, fuzzed):
    suite.instruction_pub.publish(String(data='go to the red chair'))
    sent: dict[str, list[float]] = {'raw': [], 'compressed': []}

    def send_good() -> None:
        stamp = round(time.time(), 6)
        sent['raw'].append(stamp)
        suite.image_pub.publish(msgs.rgb_to_image_msg(GOOD, stamp))
        sent['compressed'].append(stamp)
        suite.compressed_pub.publish(msgs.rgb_to_compressed_msg(GOOD, stamp))

    def first_point_chunk(name, chunks):
        return next((msg for _, msg in chunks[fuzzed['chunk_marks'][name]:] if msg.points), None)

    for name, chunks in (('raw', suite.raw_chunks), ('compressed', suite.compressed_chunks)):
        assert suite.probe.spin_until(lambda: first_point_chunk(name, chunks) is not None,  # noqa: B023
                                      10.0, every=send_good), suite.outputs()
        msg = first_point_chunk(name, chunks)
        assert round(convert.stamp_to_sec(msg.header.stamp), 6) in sent[name]
        _, actions, _ = convert.msg_to_chunk(msg)
        assert np.all(np.isfinite(actions)) and actions[0, 0] > 0.2     # the brightness policy

    # the executor too: after bogus preempts (one stamped ~11 days ahead) a good chunk moves it
    def send_chunk() -> None:
        suite.fuzz_chunk_pub.publish(msgs.chunk_to_msg(time.time(), np.tile([0.3, 0.4], (10, 1)), 0.1,
                                                    'base_link'))

    assert suite.probe.spin_until(
        lambda: suite.cmds[-1][1].linear.x == pytest.approx(0.3)
        and suite.cmds[-1][1].angular.z == pytest.approx(0.4), 10.0, every=send_chunk), \
        suite.executor.output[-3000:]
