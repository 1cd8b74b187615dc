"""`python -m vla_nav train` under `torchrun --standalone --nproc_per_node 2` (gloo, CPU, loopback):
the two processes train the tiny model to the validation losses and weights of one process,
only rank 0 writes files (the trunk cache included), and a run killed after a checkpoint
resumes to the same result."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip('torch')

from policies import TINY_POLICY  # noqa: E402

from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.training.state import STATE_DIR, STATE_FILE  # noqa: E402
from vla_nav.training.synthetic import write_synthetic_bags  # noqa: E402
from vla_nav.training.trainer import TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.slow

TEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = TEST_DIR.parent
TORCHRUN = Path(sys.executable).with_name('torchrun')
EPOCHS = 40
# dropout 0: with dropout each rank draws its own masks and the runs agree only loosely
POLICY = dict(TINY_POLICY, dropout=0.0)
TRAIN = dict(epochs=EPOCHS, batch_size=8, lr=3e-3, val_fraction=0.34, seed=3, hold_ticks=3,
             text_noise=0.05, paraphrases='test_train:synthetic_equivalents', instruction_loss=0.5)


def _cli_args(bags: Path, out: Path, cache: Path) -> list[str]:
    sets = [item for key in ('feature_dim', 'neck_channels', 'head_hidden', 'text_head_dim', 'dropout')
            for item in ('--set', f'{key}={POLICY[key]}')]
    return ['train', '--data', str(bags), '--out', str(out), '--cache-dir', str(cache),
            '--resolution', '32', '--epochs', str(EPOCHS), '--batch-size', '8', '--lr', '3e-3',
            '--val-fraction', '0.34', '--seed', '3', '--hold-ticks', '3', '--text-noise', '0.05',
            '--paraphrases', TRAIN['paraphrases'], '--instruction-loss', '0.5', '--threads', '1',
            '--device', 'cpu', '--quiet', *sets]


def _torchrun(args: list[str], audit_root: Path, log: Path) -> subprocess.Popen:
    if not TORCHRUN.is_file():
        pytest.skip(f'{TORCHRUN} not found')
    env = dict(os.environ, VLA_AUDIT_ROOT=str(audit_root), GLOO_SOCKET_IFNAME='lo',
               PYTHONPATH=os.pathsep.join([str(TEST_DIR / 'write_audit'), str(TEST_DIR), str(REPO_ROOT)]))
    command = [str(TORCHRUN), '--standalone', '--nproc_per_node', '2', '-m', 'vla_nav', *args]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=open(log, 'w'),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _writes(log: Path) -> dict[str, list[str]]:
    """rank -> paths it wrote (from the WRITE-AUDIT lines)."""
    writes: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        if line.startswith('WRITE-AUDIT '):
            entry = json.loads(line[len('WRITE-AUDIT '):])
            writes.setdefault(entry['rank'], []).append(entry['path'])
    return writes


def _state_epoch(out: Path) -> int:
    try:
        return int(json.loads((out / STATE_DIR / STATE_FILE).read_text())['epoch'])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc): torchrun's workers, each in its own session."""
    children = []
    for entry in Path('/proc').iterdir():
        try:
            fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL torchrun's workers (and whatever they started), then torchrun; wait until gone."""
    workers = _children(process.pid)
    for pid in workers:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while any(Path(f'/proc/{pid}').exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    write_synthetic_bags(root / 'bags', episodes=3, length=30, image_size=32)
    return root


@pytest.fixture(scope='module')
def one_process(data):
    """The reference: the same run in this one process."""
    config = TrainConfig(data=[str(data / 'bags')], out=str(data / 'one'), cache_dir=str(data / 'cache1'),
                         progress=False, threads=1, **TRAIN)
    return train(config, PolicyConfig(**POLICY))


def test_two_processes_match_one_and_a_killed_run_resumes(data, one_process, tmp_path):
    out, cache = tmp_path / 'two', tmp_path / 'cache2'
    args = _cli_args(data / 'bags', out, cache)

    # 1. two ranks; killed (SIGKILL to both workers and torchrun) once a checkpoint and a state exist
    first_log = tmp_path / 'first.log'
    process = _torchrun(args, tmp_path, first_log)
    try:
        deadline = time.monotonic() + 300
        while _state_epoch(out) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _kill(process)
    time.sleep(0.5)                                            # nothing writes any more
    killed_at = _state_epoch(out)
    assert 1 <= killed_at < EPOCHS, (killed_at, first_log.read_text()[-3000:])
    assert (out / 'config.json').is_file()                     # the best checkpoint so far

    # 2. the same command with --resume finishes the run
    second_log = tmp_path / 'second.log'
    process = _torchrun([*args, '--resume'], tmp_path, second_log)
    try:
        assert process.wait(timeout=300) == 0, second_log.read_text()[-3000:]
    finally:
        _kill(process)
    assert f'resuming {out} after epoch {killed_at} ' in second_log.read_text()
    summary = json.loads([line for line in second_log.read_text().splitlines() if line.startswith('{')][-1])
    assert summary['epochs_run'] == EPOCHS and not summary['stopped_early']

    # only rank 0 wrote: the trunk cache (built once, by rank 0 alone), checkpoint, metrics, state
    for log in (first_log, second_log):
        writes = _writes(log)
        assert set(writes) == {'0'}, {rank: paths[:5] for rank, paths in writes.items()}
    first = _writes(first_log)['0']
    assert any(str(cache) in path for path in first) and any(str(out) in path for path in first)
    assert len([p for p in cache.iterdir() if not p.name.startswith('.')]) == 1

    # the same validation losses as one process, every epoch (the resumed part included)
    rows = list(csv.DictReader(open(out / 'metrics.csv')))
    assert [int(row['epoch']) for row in rows] == list(range(1, EPOCHS + 1))
    for row, reference in zip(rows, one_process.history, strict=True):
        for key in ('train_loss', 'val_loss', 'val_mae'):
            assert float(row[key]) == pytest.approx(float(reference[key]), rel=1e-4, abs=2e-6), (row, key)
    assert summary['best_epoch'] == one_process.best_epoch

    # and the same weights
    from safetensors.torch import load_file
    two, one = load_file(str(out / 'model.safetensors')), load_file(str(data / 'one' / 'model.safetensors'))
    assert set(two) == set(one)
    for key in one:
        assert float((two[key] - one[key]).abs().max()) <= 1e-5, key


def test_rank_zero_failure_stops_every_rank(tmp_path):
    """No data: rank 0 fails building the cache and the other rank exits too (nothing hangs)."""
    empty = tmp_path / 'empty'
    empty.mkdir()
    log = tmp_path / 'log'
    process = _torchrun(['train', '--data', str(empty), '--out', str(tmp_path / 'out'), '--device', 'cpu',
                         '--cache-dir', str(tmp_path / 'cache'), '--quiet'], tmp_path, log)
    try:
        code = process.wait(timeout=300)
    finally:
        _kill(process)
    text = log.read_text()
    assert code != 0 and 'no rosbag2 folders' in text, text[-3000:]
    assert 'rank 0 failed' in text
    shutil.rmtree(tmp_path / 'cache', ignore_errors=True)
