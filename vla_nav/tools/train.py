"""`python -m vla_nav train --data DIR --out CKPT`: train a policy on rosbag2 episodes.

The frozen trunk runs once per frame (cached under DIR/.vla_nav_cache or --cache-dir), then AdamW
trains the neck + head; CKPT receives the best checkpoint by validation MAE, metrics.csv and
training_state/ (for --resume). See vla_nav/training/trainer.py for the details.

Runs unchanged under a launcher that starts several processes (torchrun, accelerate launch,
srun torchrun): DistributedDataParallel, --batch-size is the global batch, only rank 0 logs,
shows progress and writes files, e.g.

    torchrun --standalone --nproc_per_node 4 -m vla_nav train --data DIR --out CKPT

--init MODEL fine-tunes an existing checkpoint (e.g. models/default) on your own bags: the policy
config (backbone, head, sizes, action bounds) and the trainable weights come from MODEL, so
--backbone / --head / --resolution / --state / --set may only repeat MODEL's values (anything else
is refused: it would not load MODEL's weights), except the fields that change no weight's shape
(model.config.FINE_TUNABLE_FIELDS: `--set history_stride=3` re-times MODEL's history window,
`--set window=14 --set memory_slots=6` adds slow memory slots in front of it).
The learning rate defaults to FINETUNE_LR instead of SCRATCH_LR; epoch 0 scores MODEL itself on
the validation data, so the best checkpoint in CKPT is never worse there than where it started (it
may be MODEL's weights again).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from vla_nav.config import load_config
from vla_nav.model.config import BACKBONES, HEADS
from vla_nav.training import KEEP_CHOICES

SCRATCH_LR = 1e-3
# AdamW's first steps move every weight by about lr whatever its gradient's size: at the scratch
# rate that undoes much of a trained model before the new data can steer it. A third of it (with
# the same warm-up and cosine decay) adapts the neck and head to a new camera within a few epochs
# (scripts/finetune_example.sh) while the first epochs stay close to MODEL.
FINETUNE_LR = 3e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data', nargs='+', required=True, help='bag folders (or folders of bags)')
    parser.add_argument('--val-data', nargs='+', default=[],
                        help='validation bags (default: a seeded --val-fraction of --data by recording)')
    parser.add_argument('--out', required=True, help='checkpoint directory (best model + metrics.csv)')
    parser.add_argument('--init', default='', metavar='MODEL',
                        help='fine-tune this checkpoint (its config and weights are the start; '
                             f'default --lr {FINETUNE_LR:g})')
    parser.add_argument('--backbone', choices=BACKBONES, default=None, help='(default: edge)')
    parser.add_argument('--head', choices=HEADS, default=None, help='(default: lstm)')
    parser.add_argument('--resolution', type=int, default=None, help='input px (default: PolicyConfig)')
    parser.add_argument('--state', dest='state', action='store_true', default=None,
                        help='feed the robot state (v, w, distance, yaw change) to the head (default)')
    parser.add_argument('--no-state', dest='state', action='store_false')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='any other PolicyConfig field, JSON value (e.g. --set head_hidden=128)')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=None,
                        help=f'peak learning rate (default {SCRATCH_LR:g}; with --init {FINETUNE_LR:g})')
    parser.add_argument('--weight-decay', type=float, default=0.01)
    parser.add_argument('--val-fraction', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true', help='continue from OUT/training_state')
    parser.add_argument('--max-minutes', type=float, default=0.0, help='wall-clock budget (0: none)')
    parser.add_argument('--hold-ticks', type=int, default=10,
                        help='extend episodes that end with a zero command by N still ticks at the '
                             'last frame (teaches staying stopped at the goal; 0: off)')
    parser.add_argument('--text-noise', type=float, default=0.0,
                        help='std of Gaussian noise on the unit instruction embedding in training')
    parser.add_argument('--paraphrases', default='', metavar='sim|MODULE:FUNCTION',
                        help='train each window under a random equivalent wording of its '
                             "instruction ('sim': the simulator's train-split phrasings; off by default)")
    parser.add_argument('--instruction-loss', type=float, default=0.0, metavar='WEIGHT',
                        help='auxiliary loss: a probe on the projected instruction must name its task '
                             '(needs --paraphrases; clusters wordings by meaning; 0: off)')
    parser.add_argument('--replay-fraction', type=float, default=1.0, metavar='F',
                        help='train on a seeded share F of the episodes of every --data folder but '
                             'the last (a DAgger round: its new recording in full plus a rehearsal '
                             'sample of the older ones; 1: all)')
    parser.add_argument('--keep', choices=KEEP_CHOICES, default='best',
                        help="the checkpoint written to --out: the epoch with the best validation MAE, "
                             "or the last epoch (DAgger fine-tunes: the expert-driven validation bags "
                             "do not see the states the policy drives into; choose by eval-sim --suite "
                             "--validation instead)")
    parser.add_argument('--stop-after', type=int, default=0,
                        help='end this run after N epochs (resume later with --resume)')
    parser.add_argument('--cache-dir', default='', help='trunk feature cache root')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--device', default='auto', metavar='auto|cpu|cuda|cuda:N',
                        help='where to train (auto: CUDA when available; under torchrun each process '
                             'takes the GPU of its LOCAL_RANK)')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')


def _requested_values(args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """{PolicyConfig field: (the option that asked, value)} for the options given."""
    from vla_nav.core.robot_state import STATE_DIM

    values: dict[str, tuple[str, object]] = {}
    if args.backbone is not None:
        values['backbone'] = (f'--backbone {args.backbone}', args.backbone)
    if args.head is not None:
        values['head'] = (f'--head {args.head}', args.head)
    if args.state is not None:
        values['state_dim'] = ('--state' if args.state else '--no-state', STATE_DIM if args.state else 0)
    if args.resolution:
        values['image_size'] = (f'--resolution {args.resolution}', args.resolution)
    for item in args.overrides:
        key, separator, raw = item.partition('=')
        if not separator:
            raise ValueError(f'--set needs KEY=VALUE, got {item!r}')
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        values[key.strip()] = (f'--set {item}', value)
    return values


def policy_config_from_args(args: argparse.Namespace):
    """The PolicyConfig to train: from the options, or with --init the init model's own (an
    option that asks for another value is a ValueError naming both)."""
    from vla_nav.core.robot_state import STATE_DIM
    from vla_nav.model.config import PolicyConfig

    requested = _requested_values(args)
    if not getattr(args, 'init', ''):
        values = {'backbone': 'edge', 'head': 'lstm', 'state_dim': STATE_DIM}
        values.update({key: value for key, (_, value) in requested.items()})
        return PolicyConfig.from_dict(values)
    return init_policy_config(args.init, requested)


def init_policy_config(init: str, requested: dict[str, tuple[str, object]]):
    """The init checkpoint's PolicyConfig, after checking that no option asks for another value
    (FINE_TUNABLE_FIELDS may change)."""
    from vla_nav.core.engine import ModelLoadError
    from vla_nav.model.config import FINE_TUNABLE_FIELDS, PolicyConfig, read_checkpoint_config

    try:
        config, _ = read_checkpoint_config(init)
    except ModelLoadError as error:
        raise ValueError(f'--init: {error}') from error
    current = config.to_dict()
    changes = {key: value for key, (_, value) in requested.items() if key in FINE_TUNABLE_FIELDS}
    conflicts = []
    for key, (option, value) in requested.items():
        if key in FINE_TUNABLE_FIELDS:
            continue
        if key not in current:
            PolicyConfig.from_dict({key: value})   # raises the usual unknown-field error
        if key in current and _normalised(value) != _normalised(current[key]):
            conflicts.append(f'{option} (the init model has {key}={json.dumps(current[key])})')
    if conflicts:
        raise ValueError(f'--init {init} fixes the policy config, so these options conflict with '
                         f'it: {"; ".join(conflicts)}. Drop them to fine-tune {init}, or drop '
                         '--init to train a new model from scratch.')
    return PolicyConfig.from_dict({**current, **changes}) if changes else config


def _normalised(value):
    """JSON-comparable form (tuples as lists, 2 == 2.0)."""
    return json.loads(json.dumps(value))


def run(args: argparse.Namespace) -> int:
    from vla_nav.core.engine import ModelLoadError
    from vla_nav.training.distributed import RankFailedError
    from vla_nav.training.trainer import TrainConfig, train

    rank = os.environ.get('RANK', '0')
    main = rank == '0'       # under torchrun & co. only rank 0 logs and prints; others warn
    logging.basicConfig(level=logging.INFO if main else logging.WARNING,
                        format=f'%(levelname)s %(name)s{"" if main else f" [rank {rank}]"}: %(message)s')
    try:
        policy_config = policy_config_from_args(args)
        lr = args.lr if args.lr is not None else FINETUNE_LR if args.init else SCRATCH_LR
        config = TrainConfig(data=args.data, val_data=args.val_data, out=args.out, epochs=args.epochs,
                             batch_size=args.batch_size, lr=lr, weight_decay=args.weight_decay,
                             val_fraction=args.val_fraction, seed=args.seed, resume=args.resume,
                             max_minutes=args.max_minutes, stop_after=args.stop_after,
                             hold_ticks=args.hold_ticks, text_noise=args.text_noise,
                             paraphrases=args.paraphrases, instruction_loss=args.instruction_loss,
                             cache_dir=args.cache_dir, init=args.init, keep=args.keep,
                             replay_fraction=args.replay_fraction,
                             stop_phrases=tuple(load_config().stop_words),
                             threads=args.threads, device=args.device, progress=not args.quiet)
    except (ValueError, TypeError) as error:
        print(f'train: {error}', file=sys.stderr)
        return 2
    command = 'python -m vla_nav train ' + ' '.join(sys.argv[2:]) if sys.argv[1:2] == ['train'] else ''
    try:
        result = train(config, policy_config, extra_metadata={'command': command})
    except (FileNotFoundError, ValueError, RankFailedError, ModelLoadError) as error:
        print(f'train: {error}', file=sys.stderr)
        return 1
    if not main:
        return 0
    print(json.dumps({'out': str(result.out), 'best_epoch': result.best_epoch,
                      'best_val_mae': round(result.best_val_mae, 6), 'epochs_run': result.epochs_run,
                      'stopped_early': result.stopped_early}))
    return 0
