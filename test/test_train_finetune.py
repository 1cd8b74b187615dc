"""`train --init MODEL`: fine-tuning a saved model on other bags starts from its weights (epoch 0
scores it unchanged), changes them, keeps its config (conflicting options are refused), uses the
fine-tuning learning rate by default and resumes exactly."""
import csv
import json
import math

import pytest

torch = pytest.importorskip('torch')

from policies import TINY_POLICY  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from vla_nav.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.policy import VLAPolicy  # noqa: E402
from vla_nav.tools import train as train_tool  # noqa: E402
from vla_nav.training.feature_cache import load_or_build_cache  # noqa: E402
from vla_nav.training.samples import Batches, build_windows, model_states  # noqa: E402
from vla_nav.training.state import STATE_DIR, state_files  # noqa: E402
from vla_nav.training.step import evaluate_windows  # noqa: E402
from vla_nav.training.synthetic import write_synthetic_bags  # noqa: E402
from vla_nav.training.trainer import TrainConfig, train  # noqa: E402


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny saved model (seeded random weights) and train / validation bags it never saw."""
    root = tmp_path_factory.mktemp('finetune')
    write_synthetic_bags(root / 'train', episodes=3, length=30, image_size=32)
    write_synthetic_bags(root / 'val', episodes=2, length=30, image_size=32)
    torch.manual_seed(11)
    save_checkpoint(VLAPolicy(PolicyConfig(**TINY_POLICY)), root / 'init', extra_metadata={'note': 'tiny'})
    return root


def _config(root, out, **changes):
    values = dict(data=[str(root / 'train')], val_data=[str(root / 'val')], out=str(out), epochs=3,
                  batch_size=8, lr=3e-3, seed=5, cache_dir=str(root / 'cache'), progress=False,
                  init=str(root / 'init'))
    values.update(changes)
    return TrainConfig(**values)


def _weights(path):
    return load_file(str(path))


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope='module')
def finetuned(setup):
    out = setup / 'tuned'
    return out, train(_config(setup, out), load_checkpoint(setup / 'init').config)


def test_epoch_zero_scores_the_init_model_unchanged(setup, finetuned):
    out, result = finetuned
    init = load_checkpoint(setup / 'init')
    cache = load_or_build_cache([str(setup / 'val')], init, str(setup / 'cache'), progress=False)
    windows = build_windows(cache, list(range(len(cache.episodes))), init.config.window, init.config.chunk)
    _, errors = evaluate_windows(init, Batches(cache, windows, model_states(cache, init.config.state_dim)))
    rows = list(csv.DictReader(open(out / 'metrics.csv')))
    assert [int(r['epoch']) for r in rows] == [0, 1, 2, 3]
    assert math.isnan(float(rows[0]['train_loss']))
    assert float(rows[0]['val_mae']) == pytest.approx(errors.overall, abs=2e-6)
    assert result.history[0]['epoch'] == 0


def test_fine_tuning_changes_the_weights_and_improves_validation(setup, finetuned):
    out, result = finetuned
    init_weights = _weights(setup / 'init' / 'model.safetensors')
    latest = {k: v for k, v in _weights(state_files(out / STATE_DIR)['model']).items()
              if k in init_weights}
    assert set(latest) == set(init_weights) and not _same(latest, init_weights)
    assert result.best_epoch >= 1 and result.best_val_mae < result.history[0]['val_mae']
    assert not _same(_weights(out / 'model.safetensors'), init_weights)
    document = json.loads((out / 'config.json').read_text())
    assert document['policy'] == json.loads((setup / 'init' / 'config.json').read_text())['policy']
    assert document['metadata']['train']['init'] == str(setup / 'init')
    assert document['metadata']['epoch'] == result.best_epoch


def test_the_best_checkpoint_may_be_the_init_model_itself(setup):
    """A learning rate far below float32 resolution leaves the weights (and so the validation
    MAE) as they were: epoch 1 does not beat epoch 0, and the output is a loadable copy of the
    init weights, never a worse model."""
    out = setup / 'frozen'
    result = train(_config(setup, out, epochs=1, lr=1e-15), load_checkpoint(setup / 'init').config)
    assert result.best_epoch == 0 and result.epochs_run == 1
    assert result.history[1]['val_mae'] == result.history[0]['val_mae']
    assert _same(_weights(out / 'model.safetensors'), _weights(setup / 'init' / 'model.safetensors'))
    assert load_checkpoint(out).config == load_checkpoint(setup / 'init').config


def test_a_fine_tune_resumes_exactly(setup, finetuned):
    out, result = finetuned
    staged = setup / 'staged'
    config = load_checkpoint(setup / 'init').config
    first = train(_config(setup, staged, stop_after=1), config)
    assert first.epochs_run == 1 and [r['epoch'] for r in first.history] == [0, 1]
    resumed = train(_config(setup, staged, resume=True), config)
    assert [r['epoch'] for r in resumed.history] == [0, 1, 2, 3]
    assert [r['val_mae'] for r in resumed.history] == [r['val_mae'] for r in result.history]
    assert _same(_weights(out / 'model.safetensors'), _weights(staged / 'model.safetensors'))


def test_an_init_model_of_another_config_is_refused(setup):
    other = PolicyConfig(**dict(TINY_POLICY, head_hidden=16))
    with pytest.raises(ValueError, match=r"head_hidden"):
        train(_config(setup, setup / 'mismatch'), other)


def _cli(setup, tmp_path, *extra):
    from vla_nav.cli import main
    return main(['train', '--data', str(setup / 'train'), '--val-data', str(setup / 'val'),
                 '--out', str(tmp_path / 'cli'), '--epochs', '1', '--init', str(setup / 'init'),
                 '--cache-dir', str(setup / 'cache'), '--quiet', *extra])


@pytest.mark.parametrize('option, says', [
    (['--head', 'gpt'], '--head gpt (the init model has head="lstm")'),
    (['--backbone', 'kosmos2'], '--backbone kosmos2 (the init model has backbone="edge")'),
    (['--no-state'], '--no-state (the init model has state_dim=4)'),
    (['--resolution', '64'], '--resolution 64 (the init model has image_size=32)'),
    (['--set', 'dropout=0.3'], '--set dropout=0.3 (the init model has dropout=0.1)'),
])
def test_conflicting_options_are_refused_with_a_clear_message(setup, tmp_path, capsys, option, says):
    assert _cli(setup, tmp_path, *option) == 2
    error = capsys.readouterr().err
    assert says in error and 'Drop them to fine-tune' in error
    assert not (tmp_path / 'cli').exists()


def test_cli_fine_tune_with_matching_options_and_the_fine_tuning_lr(setup, tmp_path, capsys):
    assert _cli(setup, tmp_path, '--head', 'lstm', '--state', '--resolution', '32',
                '--set', 'head_hidden=32') == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['epochs_run'] == 1
    document = json.loads((tmp_path / 'cli' / 'config.json').read_text())
    assert document['metadata']['train']['lr'] == train_tool.FINETUNE_LR < train_tool.SCRATCH_LR
    assert _cli(setup, tmp_path, '--set', 'no_such_field=1') == 2
    assert 'no_such_field' in capsys.readouterr().err
    assert _cli(setup, tmp_path / 'missing', '--init', str(tmp_path / 'nowhere')) == 2
    assert 'nowhere' in capsys.readouterr().err


def test_a_fine_tune_may_re_time_the_history_window(setup, tmp_path, capsys):
    """history_stride changes no weight's shape: --init MODEL --set history_stride=3 starts from
    MODEL's weights (epoch 0 scores them in the new spacing) and saves the new stride."""
    assert _cli(setup, tmp_path, '--set', 'history_stride=3') == 0
    capsys.readouterr()
    tuned = load_checkpoint(tmp_path / 'cli')
    assert tuned.config.history_stride == 3
    assert tuned.config == PolicyConfig(**dict(TINY_POLICY, history_stride=3))
    retimed = load_checkpoint(setup / 'init').config
    retimed = PolicyConfig.from_dict({**retimed.to_dict(), 'history_stride': 3})
    out = tmp_path / 'epoch0'
    result = train(_config(setup, out, epochs=1, lr=1e-12), retimed)
    rows = list(csv.DictReader(open(out / 'metrics.csv')))
    assert rows[0]['epoch'] == '0' and result.best_epoch in (0, 1)
    init = _weights(setup / 'init' / 'model.safetensors')
    assert all(torch.allclose(init[k], v, atol=1e-6) for k, v in _weights(out / 'model.safetensors').items())


def test_a_fine_tune_may_add_memory_slots(setup, tmp_path, capsys):
    """--set window=W+2 --set memory_slots=2: the lstm head reads two older frames in front of the
    same dense window with the same weights; the saved config and the runtime ring carry them."""
    window = TINY_POLICY.get('window', PolicyConfig().window)
    assert _cli(setup, tmp_path, '--set', f'window={window + 2}', '--set', 'memory_slots=2',
                '--set', 'memory_stride=3') == 0
    capsys.readouterr()
    tuned = load_checkpoint(tmp_path / 'cli')
    assert tuned.config == PolicyConfig(**dict(TINY_POLICY, window=window + 2, memory_slots=2,
                                               memory_stride=3))
    spec = tuned.config.engine_spec()
    assert (spec.memory_slots, spec.memory_stride) == (2, 3)
    assert spec.ring(4).size == (window - 1) + 2 * 3 + 1
    init = load_checkpoint(setup / 'init')
    longer = VLAPolicy(tuned.config)
    longer.load_trained(init)            # every trained tensor carries over unchanged
    for name, tensor in init.trainable_state_dict().items():
        assert torch.equal(longer.trainable_state_dict()[name], tensor), name
    gpt = dict(TINY_POLICY, head='gpt')
    with pytest.raises(ValueError, match='do not fit'):   # its learned positions have the window's length
        VLAPolicy(PolicyConfig(**gpt, window=window + 2, memory_slots=2)).load_trained(
            VLAPolicy(PolicyConfig(**gpt)))


def test_a_fine_tune_may_add_a_fovea(setup, tmp_path, capsys):
    """--init MODEL --set fovea_rows=16: the input gains a zoomed strip, the trunk map its rows and
    the projection their columns, which start at zero: the first step scores MODEL's own outputs."""
    assert _cli(setup, tmp_path, '--set', 'fovea_rows=16') == 0
    capsys.readouterr()
    tuned = load_checkpoint(tmp_path / 'cli')
    assert tuned.config == PolicyConfig(**dict(TINY_POLICY, fovea_rows=16))
    assert tuned.config.engine_spec().image_height == 48 and tuned.backbone.trunk_shape[1:] == (3, 2)
    init = load_checkpoint(setup / 'init').eval()
    widened = VLAPolicy(tuned.config)
    widened.load_trained(init)
    widened.eval()
    cells = init.backbone.project.weight.shape[1] // 8                # 8 neck channels
    project = widened.backbone.project.weight.reshape(32, 8, 3, 2)    # (feature, channel, rows, cols)
    assert torch.equal(project[:, :, :2].reshape(32, -1), init.backbone.project.weight) and cells == 4
    assert not project[:, :, 2:].any()
    frames = torch.randint(0, 256, (2, 48, 32, 3), dtype=torch.uint8)
    text = torch.randn(2, 384)
    with torch.no_grad():
        torch.testing.assert_close(widened.encode_frame(frames, text),
                                   init.encode_frame(frames[:, :32], text))
    with pytest.raises(ValueError, match=r'\(B, 48, 32, 3\)'):
        widened.encode_frame(frames[:, :32], text)


def test_without_init_the_scratch_defaults_still_apply(tmp_path):
    import argparse
    parser = argparse.ArgumentParser()
    train_tool.add_arguments(parser)
    args = parser.parse_args(['--data', 'x', '--out', str(tmp_path)])
    config = train_tool.policy_config_from_args(args)
    assert (config.backbone, config.head, config.state_dim) == ('edge', 'lstm', 4)
    assert args.lr is None and not args.init


def test_keep_last_writes_the_last_epoch_even_when_it_is_not_the_best(setup):
    """keep='last' (DAgger rounds, chosen by the closed loop instead): `out` holds the final epoch's
    weights and says which epoch; with the default keep='best' the same run keeps the init model."""
    config = dict(epochs=1, lr=1e-15)
    best = train(_config(setup, setup / 'keep_best', **config), load_checkpoint(setup / 'init').config)
    last = train(_config(setup, setup / 'keep_last', keep='last', **config),
                 load_checkpoint(setup / 'init').config)
    assert best.best_epoch == last.best_epoch == 0      # epoch 1 does not beat the init model
    kept = json.loads((setup / 'keep_last' / 'config.json').read_text())['metadata']
    assert kept['epoch'] == 1 and kept['train']['keep'] == 'last'
    assert json.loads((setup / 'keep_best' / 'config.json').read_text())['metadata']['epoch'] == 0
    state = load_file(str(setup / 'keep_last' / 'training_state' / 'model-e0001.safetensors'))
    assert _same(_weights(setup / 'keep_last' / 'model.safetensors'),
                 {k: v for k, v in state.items() if k in _weights(setup / 'keep_last' / 'model.safetensors')})


def test_keep_must_be_best_or_last(setup, tmp_path):
    with pytest.raises(ValueError, match='keep must be one of'):
        _config(setup, tmp_path / 'x', keep='latest')


def test_replay_sample_keeps_the_newest_folder_and_a_seeded_share_of_the_older():
    from vla_nav.training.samples import replay_sample
    ids = list(range(10))                      # 0..5 older folders, 6..9 the newest
    kept = replay_sample(ids, older=6, fraction=0.5, seed=3)
    assert kept == sorted(kept) and kept[-4:] == [6, 7, 8, 9]
    assert len([i for i in kept if i < 6]) == 3
    assert kept == replay_sample(ids, older=6, fraction=0.5, seed=3)
    assert replay_sample(ids, older=6, fraction=1.0, seed=3) == ids
    assert replay_sample([1, 7], older=6, fraction=0.4, seed=3) in ([7], [1, 7])


def test_replay_fraction_trains_on_the_last_folder_and_a_sample_of_the_others(setup):
    """A DAgger round's fine-tune: `--data OLD NEW --replay-fraction 0.5` keeps every episode of
    NEW and half of OLD's, so it trains on fewer windows than on all of both."""
    write_synthetic_bags(setup / 'newer', episodes=2, length=30, image_size=32)
    data = [str(setup / 'train'), str(setup / 'newer')]
    config = load_checkpoint(setup / 'init').config
    full = train(_config(setup, setup / 'replay_all', data=data, epochs=1), config)
    half = train(_config(setup, setup / 'replay_half', data=data, epochs=1, replay_fraction=0.5), config)
    meta = {name: json.loads((setup / name / 'config.json').read_text())['metadata']
            for name in ('replay_all', 'replay_half')}
    per_episode = meta['replay_all']['train_windows'] / 5
    assert meta['replay_half']['train_windows'] == pytest.approx(per_episode * (2 + 2), rel=0.05)
    assert meta['replay_half']['train']['replay_fraction'] == 0.5
    assert full.epochs_run == half.epochs_run == 1
    with pytest.raises(ValueError, match='replay_fraction'):
        _config(setup, setup / 'x', replay_fraction=0.0)
