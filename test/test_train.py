"""Training on a tiny synthetic data set (3 bags): loss falls, metrics CSV, best checkpoint,
trunk cache reuse, exact resume, seeded determinism."""
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from policies import TINY_POLICY  # noqa: E402

from vla_nav.model.checkpoint import load_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.training import feature_cache  # noqa: E402
from vla_nav.training.state import METRICS_COLUMNS, STATE_DIR, state_files  # noqa: E402
from vla_nav.training.synthetic import write_synthetic_bags  # noqa: E402
from vla_nav.training.trainer import TrainConfig, train  # noqa: E402


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    write_synthetic_bags(root / 'bags', episodes=3, length=30, image_size=32)
    return root


def _config(data_dir, out, **changes):
    values = dict(data=[str(data_dir / 'bags')], out=str(out), epochs=6, batch_size=8, lr=3e-3,
                  val_fraction=0.34, seed=3, cache_dir=str(data_dir / 'cache'), progress=False)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope='module')
def full_run(data_dir):
    out = data_dir / 'full'
    return out, train(_config(data_dir, out), PolicyConfig(**TINY_POLICY))


def test_loss_falls_and_outputs_are_written(full_run):
    out, result = full_run
    rows = list(csv.DictReader(open(out / 'metrics.csv')))
    assert tuple(rows[0]) == METRICS_COLUMNS
    assert [int(r['epoch']) for r in rows] == [1, 2, 3, 4, 5, 6]
    losses = [float(r['train_loss']) for r in rows]
    assert losses[-1] < 0.8 * losses[0]
    assert float(rows[-1]['val_mae']) < float(rows[0]['val_mae'])
    best = min(rows, key=lambda r: float(r['val_mae']))
    assert result.best_epoch == int(best['epoch'])
    document = json.loads((out / 'config.json').read_text())
    assert document['metadata']['epoch'] == result.best_epoch
    policy = load_checkpoint(out)
    assert policy.config.state_dim == 4 and policy.config.image_size == 32
    assert (out / STATE_DIR / 'state.json').is_file()
    assert not list(out.glob(f'{STATE_DIR}/*.pkl')) and not list(out.glob(f'{STATE_DIR}/*.pt'))


def test_trunk_cache_is_built_once_and_keyed_by_data(data_dir, full_run, monkeypatch):
    caches = list((data_dir / 'cache').iterdir())
    assert len(caches) == 1 and (caches[0] / feature_cache.INDEX_FILE).is_file()
    index = json.loads((caches[0] / feature_cache.INDEX_FILE).read_text())
    assert len(index['episodes']) == 3 and index['frames'] == 90
    assert np.load(caches[0] / 'trunk.npy').dtype == np.float16
    assert np.load(caches[0] / 'texts.npy').shape[0] == 2      # two unique instructions

    def must_not_build(*args, **kwargs):
        raise AssertionError('the cache should have been reused')

    monkeypatch.setattr(feature_cache, '_build', must_not_build)
    first = feature_cache.data_checksum(data_dir / 'bags')
    train(_config(data_dir, data_dir / 'again', epochs=1), PolicyConfig(**TINY_POLICY))
    write_synthetic_bags(data_dir / 'more', episodes=2, length=30, image_size=32)
    assert feature_cache.data_checksum([data_dir / 'bags', data_dir / 'more']) != first

    # a second folder gets its own cache: only it is encoded, then both are merged in memory
    monkeypatch.undo()
    built = []
    real_build = feature_cache._build
    monkeypatch.setattr(feature_cache, '_build', lambda paths, *rest: (built.append(paths),
                                                                       real_build(paths, *rest)))
    policy = VLAPolicy(PolicyConfig(**TINY_POLICY))
    cache_dir = data_dir / 'cache'
    alone = feature_cache.load_or_build_cache(data_dir / 'bags', policy, cache_dir, progress=False)
    more = feature_cache.load_or_build_cache(data_dir / 'more', policy, cache_dir, progress=False)
    both = feature_cache.load_or_build_cache([data_dir / 'bags', data_dir / 'more'], policy,
                                             cache_dir, progress=False)
    assert built == [data_dir / 'more']
    assert len(both.episodes) == 5 and both.frames == alone.frames + more.frames == 150
    np.testing.assert_array_equal(both.trunk[:alone.frames], alone.trunk)
    np.testing.assert_array_equal(both.actions[alone.frames:], more.actions)
    origins = [(alone, e) for e in alone.episodes] + [(more, e) for e in more.episodes]
    for episode, (origin, source) in zip(both.episodes, origins, strict=True):
        assert episode.instruction == source.instruction and episode.length == source.length
        rows = both.trunk[episode.start:episode.start + episode.length]
        np.testing.assert_array_equal(rows, origin.trunk[source.start:source.start + source.length])
        np.testing.assert_array_equal(both.texts[episode.text_index], origin.texts[source.text_index])
    assert len(both.texts) == len({e.instruction for e in both.episodes})
    assert both.key not in (alone.key, more.key)


def test_same_seed_same_weights_and_resume_is_exact(data_dir, full_run):
    out, result = full_run
    staged = data_dir / 'staged'
    first = train(_config(data_dir, staged, stop_after=3), PolicyConfig(**TINY_POLICY))
    assert first.epochs_run == 3 and first.stopped_early
    resumed = train(_config(data_dir, staged, resume=True), PolicyConfig(**TINY_POLICY))
    assert resumed.epochs_run == 6 and not resumed.stopped_early
    assert [r['val_mae'] for r in resumed.history] == [r['val_mae'] for r in result.history]
    from safetensors.torch import load_file
    a, b = load_file(str(out / 'model.safetensors')), load_file(str(staged / 'model.safetensors'))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_train_cli(data_dir, tmp_path, capsys):
    from vla_nav.cli import main
    code = main(['train', '--data', str(data_dir / 'bags'), '--out', str(tmp_path / 'cli'), '--epochs', '1',
                 '--resolution', '32', '--no-state', '--set', 'feature_dim=32', '--set', 'head_hidden=32',
                 '--cache-dir', str(tmp_path / 'cache'), '--quiet'])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['epochs_run'] == 1
    assert load_checkpoint(tmp_path / 'cli').config.state_dim == 0
    assert main(['train', '--data', str(data_dir / 'bags'), '--out', str(tmp_path / 'bad'),
                 '--set', 'no_such_field=1', '--quiet']) == 2


def test_train_cli_flow_head_is_seeded_and_resumes_exactly(data_dir, tmp_path, capsys):
    """`train --head flow`: its loss draws noise and times from the trainer's seeded torch RNG,
    so a run stopped after one epoch and resumed ends with the weights of one whole run."""
    from vla_nav.cli import main
    common = ['--data', str(data_dir / 'bags'), '--epochs', '2', '--resolution', '32', '--set',
              'feature_dim=32', '--set', 'head_hidden=32', '--set', 'flow_steps=3', '--head', 'flow',
              '--batch-size', '8', '--seed', '3', '--cache-dir', str(tmp_path / 'cache'), '--quiet']
    assert main(['train', '--out', str(tmp_path / 'whole'), *common]) == 0
    assert main(['train', '--out', str(tmp_path / 'staged'), '--stop-after', '1', *common]) == 0
    assert main(['train', '--out', str(tmp_path / 'staged'), '--resume', *common]) == 0
    capsys.readouterr()
    rows = [list(csv.DictReader(open(tmp_path / name / 'metrics.csv'))) for name in ('whole', 'staged')]
    assert [r['train_loss'] for r in rows[0]] == [r['train_loss'] for r in rows[1]]
    assert all(np.isfinite(float(r['train_loss'])) for r in rows[0])
    whole, staged = load_checkpoint(tmp_path / 'whole'), load_checkpoint(tmp_path / 'staged')
    assert whole.config.head == 'flow' and whole.config.flow_steps == 3
    a, b = whole.trainable_state_dict(), staged.trainable_state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_hold_ticks_extend_episodes_that_end_stopped():
    from vla_nav.training.feature_cache import CachedEpisode, FeatureCache
    from vla_nav.training.samples import build_windows
    actions = np.array([[0.2, 0.1], [0.1, 0.0], [0.0, 0.0],      # ends stopped
                        [0.3, 0.0], [0.3, 0.0]], np.float32)      # ends moving
    cache = FeatureCache(path=None, trunk=np.zeros((5, 1, 1, 1), np.float16), actions=actions,
                         states=np.zeros((5, 4), np.float32), texts=np.zeros((1, 384), np.float32),
                         episodes=[CachedEpisode('a#0', 'x', 0, 0, 3), CachedEpisode('b#0', 'x', 0, 3, 2)],
                         key='k')
    plain = build_windows(cache, [0, 1], window=2, chunk=3)
    held = build_windows(cache, [0, 1], window=2, chunk=3, hold_ticks=4)
    assert len(plain) == 5 and len(held) == 5 + 4
    stopped = held.frame_index[:7]
    assert stopped.max() == 2 and stopped[-1].tolist() == [2, 2]     # the last frame repeats
    assert held.mask[2, -1].all() and not held.target[2, -1].any()   # stay at zero, supervised
    assert held.target[0, -1].tolist() == actions[:3].tolist()
    assert held.frame_index[7:].min() == 3 and len(held.frame_index[7:]) == 2   # moving: no hold
    strided = build_windows(cache, [0, 1], window=2, chunk=3, stride=2)
    assert strided.frame_index.tolist() == [[0, 0], [0, 1], [0, 2], [3, 3], [3, 4]]
    assert strided.mask[2, 0].tolist() == [True, True, True] and not strided.mask[1, 0].any()


def test_model_states_add_each_segments_goal_features():
    from vla_nav.training.feature_cache import CachedEpisode, FeatureCache
    from vla_nav.training.samples import model_states
    states = np.zeros((6, 4), np.float32)
    states[:2, 3] = [0.0, 0.3]                      # turn: yaw change so far
    states[2:4, 2] = [0.0, 0.4]                     # forward: distance so far
    cache = FeatureCache(path=None, trunk=np.zeros((6, 1, 1, 1), np.float16),
                         actions=np.zeros((6, 2), np.float32), states=states,
                         texts=np.zeros((1, 384), np.float32), key='k',
                         episodes=[CachedEpisode('a#0', 'turn right 30 degrees', 0, 0, 2),
                                   CachedEpisode('a#1', 'go forward 150 centimeters', 0, 2, 2),
                                   CachedEpisode('b#0', 'halt', 0, 4, 1),
                                   CachedEpisode('c#0', 'go to the red cone', 0, 5, 1)])
    assert model_states(cache, 0) is None and model_states(cache, 4) is states
    full = model_states(cache, 8, stop_phrases=('halt',))
    assert full.shape == (6, 8) and np.array_equal(full[:, :4], states)
    np.testing.assert_allclose(full[:2, 4:], [[1, -np.pi / 6, 0, 0], [1, -np.pi / 6 - 0.3, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(full[2:4, 4:], [[0, 0, 1, 1.5], [0, 0, 1, 1.1]], atol=1e-6)
    assert not full[4:, 4:].any()                   # stop and goto carry no number


def test_paraphrases_draw_only_equivalent_wordings_in_training(data_dir, tmp_path):
    from vla_nav.training.feature_cache import CachedEpisode, FeatureCache
    from vla_nav.training.paraphrases import build_paraphrase_table
    from vla_nav.training.samples import Batches, build_windows
    equivalents = {'go left': ('go left', 'head left', 'veer left'), 'halt': ('halt', 'stop')}
    cache = FeatureCache(path=None, trunk=np.zeros((4, 1, 1, 1), np.float16),
                         actions=np.zeros((4, 2), np.float32), states=np.zeros((4, 4), np.float32),
                         texts=np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], np.float32),
                         episodes=[CachedEpisode('a#0', 'go left', 0, 0, 2),
                                   CachedEpisode('b#0', 'halt', 1, 2, 1),
                                   CachedEpisode('c#0', 'unknown', 2, 3, 1)], key='k')
    embedded = []

    def embed(texts):
        embedded.extend(texts)
        vectors = {'head left': (11.0, 0.0), 'veer left': (12.0, 0.0), 'stop': (13.0, 0.0)}
        return np.array([vectors[t] for t in texts], np.float32)

    table = build_paraphrase_table(cache, lambda text: equivalents.get(text, ()), embed)
    assert embedded == ['head left', 'veer left', 'stop']      # only the new sentences, once
    assert table.counts.tolist() == [3, 2, 1]
    windows = build_windows(cache, [0, 1, 2], window=1, chunk=1)
    batches = Batches(cache, windows, states=None, paraphrase=table)
    rng = np.random.default_rng(0)
    seen = {0: set(), 1: set(), 2: set()}
    rows = np.arange(len(windows))
    for _ in range(60):
        texts = batches.get(rows, rng)[1]
        for row, text in zip(rows, texts.tolist(), strict=True):
            seen[int(windows.text_index[row])].add(tuple(text))
    assert seen[0] == {(1.0, 0.0), (11.0, 0.0), (12.0, 0.0)}    # go / head / veer left
    assert seen[1] == {(0.0, 1.0), (13.0, 0.0)} and seen[2] == {(5.0, 5.0)}
    assert batches.get(rows)[1].tolist() == cache.texts[windows.text_index].tolist()  # validation


def test_paraphrase_option_is_checked():
    with pytest.raises(ValueError, match='paraphrases'):
        TrainConfig(data=['x'], out='y', paraphrases='nonsense')
    from vla_nav.sim.scenarios import paraphrases
    from vla_nav.training.paraphrases import resolve_paraphraser
    assert resolve_paraphraser('sim') is paraphrases
    with pytest.raises(ValueError, match='no_such'):
        resolve_paraphraser('vla_nav.sim.scenarios:no_such')


def synthetic_equivalents(text):
    """A paraphraser for the synthetic data: each instruction has one other wording."""
    from vla_nav.training.synthetic import INSTRUCTIONS
    return (text, f'please {text}') if text in INSTRUCTIONS else ()


def test_instruction_loss_trains_a_task_probe_and_resumes_exactly(data_dir):
    changes = dict(paraphrases='test_train:synthetic_equivalents', instruction_loss=0.5, epochs=4)
    whole = train(_config(data_dir, data_dir / 'probe_whole', **changes), PolicyConfig(**TINY_POLICY))
    staged = data_dir / 'probe_staged'
    train(_config(data_dir, staged, stop_after=2, **changes), PolicyConfig(**TINY_POLICY))
    from safetensors.torch import load_file
    state = load_file(str(state_files(staged / STATE_DIR)['model']))
    assert state['training.task_probe.weight'].shape == (2, TINY_POLICY['text_head_dim'])   # two tasks
    resumed = train(_config(data_dir, staged, resume=True, **changes), PolicyConfig(**TINY_POLICY))
    assert [r['val_mae'] for r in resumed.history] == [r['val_mae'] for r in whole.history]
    saved = load_file(str(staged / 'model.safetensors'))
    assert not any(key.startswith('training.') for key in saved)       # the probe is not shipped
    load_checkpoint(staged)
    plain = train(_config(data_dir, data_dir / 'probe_off', epochs=4,
                          paraphrases='test_train:synthetic_equivalents'), PolicyConfig(**TINY_POLICY))
    assert [r['train_loss'] for r in plain.history] != [r['train_loss'] for r in whole.history]
    with pytest.raises(ValueError, match='instruction_loss'):
        TrainConfig(data=['x'], out='y', instruction_loss=0.5)


def test_trunk_cache_engines_agree_and_never_share_a_cache(data_dir, monkeypatch):
    """ONNX Runtime (the default for the edge trunk) and torch build the same maps to within one
    fp16 step, in the bags' order, under different keys; the engine is recorded in cache.json."""
    from vla_nav.data.bags import find_bags
    pytest.importorskip('onnxruntime')
    policy = VLAPolicy(PolicyConfig(**TINY_POLICY))
    assert feature_cache.cache_engine(policy) == 'onnxruntime'
    cache_dir = data_dir / 'engines'
    built = {engine: feature_cache.load_or_build_cache(data_dir / 'bags', policy, cache_dir,
                                                       progress=False, engine=engine)
             for engine in feature_cache.ENGINES}
    ort, reference = built['onnxruntime'], built['torch']
    assert ort.key != reference.key and len(list(cache_dir.iterdir())) == 2
    for cache, engine in ((ort, 'onnxruntime'), (reference, 'torch')):
        assert json.loads((cache.path / feature_cache.INDEX_FILE).read_text())['engine'] == engine
    assert ort.trunk.dtype == np.float16 and ort.trunk.shape == reference.trunk.shape
    # float sums in another order: about one fp16 step (2**-10 relative), far below the maps' scale
    np.testing.assert_allclose(ort.trunk.astype(np.float32), reference.trunk.astype(np.float32),
                               rtol=2 ** -10, atol=2 ** -10)
    assert np.abs(ort.trunk.astype(np.float32)).max() > 0
    np.testing.assert_array_equal(ort.actions, reference.actions)
    np.testing.assert_array_equal(ort.texts, reference.texts)
    bags = [str(bag) for bag in find_bags(data_dir / 'bags')]   # the reader thread keeps the order
    order = [next(i for i, bag in enumerate(bags) if e.source.startswith(bag)) for e in ort.episodes]
    assert order == [0, 1, 2]
    assert [e.source for e in ort.episodes] == [e.source for e in reference.episodes]

    # a second load reuses the ONNX cache (no export, no build)
    monkeypatch.setattr(feature_cache, '_build', lambda *a, **k: pytest.fail('rebuilt'))
    again = feature_cache.load_or_build_cache(data_dir / 'bags', policy, cache_dir, progress=False)
    np.testing.assert_array_equal(again.trunk, ort.trunk)


def test_trunk_cache_engine_choice(monkeypatch):
    import sys
    policy = VLAPolicy(PolicyConfig(**TINY_POLICY))
    with pytest.raises(ValueError, match='unknown trunk cache engine'):
        feature_cache.cache_engine(policy, 'tensorflow')
    assert feature_cache.cache_engine(policy, 'torch') == 'torch'
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)      # a machine without onnxruntime
    assert feature_cache.cache_engine(policy) == 'torch'
    monkeypatch.undo()
    kosmos = type('Policy', (), {'config': type('Config', (), {'backbone': 'kosmos2'})()})()  # GBs
    assert feature_cache.cache_engine(kosmos) == 'torch'
