"""Training samples: every tick of every cached episode is one window, read as tensors in batches.

A window is the 8 ticks ending at t (window_indices: positions before the episode start repeat
its first frame), every window position supervised with its own chunk of commands, masked past
the episode end. `hold_ticks` extends episodes that end stopped (see build_windows). Batches
turns rows of a WindowSet into tensors, optionally re-wording each window's instruction
(vla_nav.training.paraphrases).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vla_nav.core.language import parse_instruction
from vla_nav.core.robot_state import GOAL_STATE_DIM, STATE_DIM, goal_features
from vla_nav.data.dataset import window_indices
from vla_nav.training.feature_cache import FeatureCache
from vla_nav.training.paraphrases import ParaphraseTable


@dataclass
class WindowSet:
    """Every tick of some cached episodes as a training window (indices into the cache)."""

    frame_index: np.ndarray     # (N, W) int64 rows of the cache
    text_index: np.ndarray      # (N,) int64 rows of cache.texts
    target: np.ndarray          # (N, W, C, 2) float32 physical units, 0 where masked
    mask: np.ndarray            # (N, W, C) bool

    def __len__(self) -> int:
        return len(self.text_index)


def ends_stopped(actions: np.ndarray, tolerance: float = 1e-3) -> bool:
    """The recording ends with a zero command: the robot is meant to stay where it stopped."""
    return bool(len(actions)) and bool(np.all(np.abs(actions[-1]) <= tolerance))


def build_windows(cache: FeatureCache, episode_ids: list[int], window: int, chunk: int,
                  hold_ticks: int = 0, stride: int = 1, memory_slots: int = 0,
                  memory_stride: int = 1) -> WindowSet:
    """Every tick of the episodes as a window. hold_ticks > 0: an episode that ends with a zero
    command is extended by that many ticks of its last frame with zero commands, so the policy
    also learns to STAY stopped at the goal (expert recordings end the moment the robot stops,
    so without this a closed-loop policy never saw "arrived" and drifts off). stride: the policy's
    history_stride (window positions that many ticks apart, as the runtime ring reads them);
    memory_slots / memory_stride: the policy's slow memory slots (data.dataset.window_indices)."""
    frames, texts, targets, masks = [], [], [], []
    for episode_id in episode_ids:
        episode = cache.episodes[episode_id]
        actions = cache.actions[episode.start:episode.start + episode.length]
        extra = hold_ticks if hold_ticks > 0 and ends_stopped(actions) else 0
        length = episode.length + extra
        if extra:
            actions = np.concatenate([actions, np.zeros((extra, actions.shape[1]), actions.dtype)])
        frame_index, action_index, mask = window_indices(length, window, chunk, stride, memory_slots,
                                                         memory_stride)
        frames.append(np.minimum(frame_index, episode.length - 1) + episode.start)
        texts.append(np.full(length, episode.text_index, np.int64))
        targets.append(actions[action_index] * mask[..., None])
        masks.append(mask)
    if not frames:
        shape = (0, window)
        return WindowSet(np.zeros(shape, np.int64), np.zeros(0, np.int64),
                         np.zeros((*shape, chunk, 2), np.float32), np.zeros((*shape, chunk), bool))
    return WindowSet(np.concatenate(frames), np.concatenate(texts),
                     np.concatenate(targets).astype(np.float32), np.concatenate(masks))


def split_episodes(cache: FeatureCache, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train ids, validation ids): a seeded `fraction` of the recordings (bags) for validation."""
    bags = sorted({episode.source.split('#')[0] for episode in cache.episodes})
    count = int(round(fraction * len(bags))) if len(bags) > 1 else 0
    count = min(max(count, 1 if fraction > 0 and len(bags) > 1 else 0), len(bags) - 1)
    chosen = set(np.random.default_rng([seed, 7]).permutation(len(bags))[:count].tolist())
    val_bags = {bag for index, bag in enumerate(bags) if index in chosen}
    train_ids = [i for i, e in enumerate(cache.episodes) if e.source.split('#')[0] not in val_bags]
    val_ids = [i for i, e in enumerate(cache.episodes) if e.source.split('#')[0] in val_bags]
    return train_ids, val_ids


def replay_sample(ids: list[int], older: int, fraction: float, seed: int) -> list[int]:
    """`ids` with only a seeded `fraction` of those below `older` (the episodes of the older data
    folders; the newest folder's come after them) kept, in order; fraction 1 keeps all."""
    if fraction >= 1.0:
        return list(ids)
    old = [i for i in ids if i < older]
    keep = int(round(fraction * len(old)))
    chosen = set(np.random.default_rng([seed, 11]).permutation(old)[:keep].tolist()) if old else set()
    return [i for i in ids if i >= older or i in chosen]


def model_states(cache: FeatureCache, state_dim: int, stop_phrases=()) -> np.ndarray | None:
    """(N, state_dim) float32 per cache row: the policy's state input as PolicyLoop builds it.
    state_dim 4: the cached GoalProgress state; 8: plus the goal features of the segment's
    instruction (core.language reading of one turn / forward step; zeros for anything else,
    as for a sentence of several steps: PolicyLoop feeds those one step at a time)."""
    if not state_dim:
        return None
    if state_dim == STATE_DIM:
        return cache.states
    if state_dim != GOAL_STATE_DIM:
        raise ValueError(f'state_dim {state_dim} is neither {STATE_DIM} nor {GOAL_STATE_DIM}')
    out = np.zeros((cache.frames, GOAL_STATE_DIM), np.float32)
    out[:, :STATE_DIM] = cache.states
    for episode in cache.episodes:
        parse = parse_instruction(episode.instruction, stop_phrases)
        step = parse.steps[0] if parse.ok and len(parse.steps) == 1 else None
        rows = slice(episode.start, episode.start + episode.length)
        out[rows, STATE_DIM:] = goal_features(step, cache.states[rows, 2], cache.states[rows, 3])
    return out


class Batches:
    """Tensors for a batch of windows from the cache (instructions optionally re-worded).
    states: `model_states` of the cache (None: a policy without state input)."""

    def __init__(self, cache: FeatureCache, windows: WindowSet, states: np.ndarray | None,
                 paraphrase: ParaphraseTable | None = None) -> None:
        self.cache = cache
        self.windows = windows
        self.states = states
        self.paraphrase = paraphrase
        self.texts = torch.from_numpy(paraphrase.texts if paraphrase else cache.texts)

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, rows: np.ndarray, rng: np.random.Generator | None = None,
            part: slice | np.ndarray = slice(None)) -> tuple[torch.Tensor, ...]:
        """(trunk, text, states, target, mask) of `rows[part]` on the CPU.

        rng given (training) and a paraphrase table: each window draws one equivalent wording.
        The draw covers every row of `rows` before `part` is taken, so the ranks of a distributed
        run, each taking its part of the same global batch, consume the same random stream as
        one process taking it whole."""
        w = self.windows
        text_index = w.text_index[rows]
        if self.paraphrase is not None and rng is not None:
            text_index = self.paraphrase.draw(text_index, rng)
        rows, text_index = rows[part], text_index[part]
        frame_index = w.frame_index[rows]
        trunk = torch.from_numpy(self.cache.trunk[frame_index.reshape(-1)]).float()
        trunk = trunk.reshape(*frame_index.shape, *trunk.shape[1:])
        states = torch.from_numpy(self.states[frame_index]) if self.states is not None else None
        return (trunk, self.texts[torch.from_numpy(text_index)], states,
                torch.from_numpy(w.target[rows]), torch.from_numpy(w.mask[rows]))
