"""Equivalent wordings of the recorded instructions, drawn per training window.

With `--paraphrases` ('sim', or 'module:function' mapping an instruction to its equivalent
sentences), each training window draws its instruction uniformly from the recording's
equivalent sentences (e.g. all train-split wordings of "go forward 2 meters"), so every
recording teaches every wording; validation keeps the recorded text. The table also gives each
instruction a task id (instructions with the same set of equivalents share it): the labels of
the `instruction_loss` probe.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

import numpy as np

from vla_nav.training.feature_cache import FeatureCache

LOG = logging.getLogger('vla_nav.training')


def resolve_paraphraser(spec: str):
    """'sim' -> vla_nav.sim.scenarios.paraphrases (train split); 'module:function' -> that callable."""
    module, _, name = ('vla_nav.sim.scenarios:paraphrases' if spec == 'sim' else spec).partition(':')
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f'paraphrases {spec!r}: {error}') from error
    if not callable(function):
        raise ValueError(f'paraphrases {spec!r} is not callable')
    return function


@dataclass
class ParaphraseTable:
    """Instruction embeddings with, for each cached instruction, the rows of its equivalents."""

    texts: np.ndarray           # (U + extra, text_dim) float32: the cache's texts, then new ones
    choices: np.ndarray         # (U, K) int64 rows of `texts`, padded by repeating
    counts: np.ndarray          # (U,) int64 valid entries per row of `choices`
    task: np.ndarray            # (U,) int64 task id: equal for instructions with the same equivalents

    def draw(self, text_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        picks = (rng.random(len(text_index)) * self.counts[text_index]).astype(np.int64)
        return self.choices[text_index, picks]


def build_paraphrase_table(cache: FeatureCache, paraphraser, embed) -> ParaphraseTable:
    """Embed (with `embed`: list[str] -> (B, text_dim) array) every equivalent sentence the
    cache's instructions have; an instruction the paraphraser does not know keeps only itself."""
    instructions = [''] * len(cache.texts)
    for episode in cache.episodes:
        instructions[episode.text_index] = episode.instruction
    row_of = {text: row for row, text in enumerate(instructions)}
    extra: list[str] = []
    groups = []
    for text in instructions:
        group = [text] + [s for s in paraphraser(text) if s != text]
        for sentence in group:
            if sentence not in row_of:
                row_of[sentence] = len(instructions) + len(extra)
                extra.append(sentence)
        groups.append([row_of[sentence] for sentence in group])
    texts = cache.texts
    if extra:
        texts = np.concatenate([texts, np.asarray(embed(extra), np.float32).reshape(len(extra), -1)])
    width = max(len(group) for group in groups)
    choices = np.array([group + [group[0]] * (width - len(group)) for group in groups], np.int64)
    counts = np.array([len(group) for group in groups], np.int64)
    task_of: dict[frozenset, int] = {}
    task = np.array([task_of.setdefault(frozenset(group), len(task_of)) for group in groups], np.int64)
    LOG.info('paraphrases: %d instructions -> %d sentences (%d new), %d tasks', len(groups), len(texts),
             len(extra), len(task_of))
    return ParaphraseTable(texts.astype(np.float32), choices, counts, task)
