"""The frozen trunk runs ONCE per frame: cached trunk outputs + instruction embeddings on disk.

Training only changes the neck and the head, so every recorded frame goes through the frozen
pretrained trunk exactly once and the result is kept as fp16 on disk; each unique instruction
string is embedded once. Epochs then read tensors, never images.

Layout of one cache (a folder named by its key, under `<first data dir>/.vla_nav_cache/` unless a
cache dir is given):

    trunk.npy      (N, C, H, W) float16   trunk output of every tick's frame, episodes back to back
    actions.npy    (N, 2) float32         command in force at each tick (physical units)
    states.npy     (N, 4) float32         GoalProgress state at each tick
    texts.npy      (U, text_dim) float32  instruction embeddings, one per unique string
    cache.json     episodes [{source, instruction, text_index, start, length}], key parts;
                   written LAST, so a folder without it is an interrupted build and is redone

Several data folders (`--data A B`) get one cache each (under each folder, or all under the given
cache dir), merged in memory: adding a folder to a recipe only encodes the new folder.

Key = sha256 of (data checksum, trunk checksum, dt, image size, reader settings). The data
checksum covers every bag's relative path and its files' names and sizes; the trunk checksum
covers the backbone settings that shape the trunk output and the sha256 of the frozen weights.
Change either and a new cache is built; the old one stays until deleted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOG = logging.getLogger('vla_nav.training')

CACHE_DIR_NAME = '.vla_nav_cache'
CACHE_FORMAT = 1
INDEX_FILE = 'cache.json'


@dataclass
class CachedEpisode:
    source: str
    instruction: str
    text_index: int
    start: int          # first row in trunk/actions/states
    length: int


@dataclass
class FeatureCache:
    """Cached trunk outputs of a data set, loaded into memory for training."""

    path: Path
    trunk: np.ndarray            # (N, C, H, W) float16
    actions: np.ndarray          # (N, 2) float32
    states: np.ndarray           # (N, 4) float32
    texts: np.ndarray            # (U, text_dim) float32
    episodes: list[CachedEpisode]
    key: str

    @property
    def frames(self) -> int:
        return int(self.trunk.shape[0])


def data_checksum(paths) -> str:
    """sha256 over every bag's path (relative to its data root) and its files' names and sizes."""
    from vla_nav.data.bags import find_bags

    roots = [Path(p).resolve() for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    digest = hashlib.sha256()
    for bag in find_bags(roots):
        bag = Path(bag).resolve()
        root = next((r for r in roots if bag == r or r in bag.parents), bag.parent)
        digest.update(str(bag.relative_to(root) if bag != root else bag.name).encode())
        for file in sorted(bag.iterdir()):
            if file.is_file():
                digest.update(f'{file.name}:{file.stat().st_size};'.encode())
    return digest.hexdigest()


def trunk_checksum(policy) -> str:
    """What determines the trunk output and the instruction embedding: settings + frozen weights."""
    config = policy.config
    parts = {'backbone': config.backbone, 'image_size': config.image_size,
             'trunk_blocks': config.trunk_blocks, 'text_model': config.text_model,
             'text_max_tokens': config.text_max_tokens, 'kosmos2_path': config.kosmos2_path,
             'frozen': policy.backbone.frozen_references()}
    if config.fovea_rows:   # absent otherwise: the caches of models without a fovea keep their keys
        parts['fovea'] = [config.fovea_rows, config.fovea_zoom, config.fovea_centre]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_key(data_sum: str, trunk_sum: str, dt: float, image_size: int) -> str:
    text = json.dumps({'format': CACHE_FORMAT, 'data': data_sum, 'trunk': trunk_sum, 'dt': dt,
                       'image_size': image_size}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_root(paths) -> Path:
    first = Path(paths if isinstance(paths, (str, os.PathLike)) else list(paths)[0])
    return first / CACHE_DIR_NAME


def load_or_build_cache(paths, policy, cache_dir: str | os.PathLike | None = None,
                        batch_size: int = 256, progress: bool = True) -> FeatureCache:
    """The cache for `paths` (bag dirs or folders of them) under `policy`'s frozen trunk.

    One cache per path, built once (progress bar over bags), then loaded; several are merged
    in memory. See the module docstring for the key.
    """
    roots = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    caches = [_load_or_build_one(root, policy, cache_dir, batch_size, progress) for root in roots]
    return caches[0] if len(caches) == 1 else merge_caches(caches)


def _load_or_build_one(path, policy, cache_dir, batch_size: int, progress: bool) -> FeatureCache:
    config = policy.config
    root = Path(cache_dir) if cache_dir else default_cache_root(path)
    key = cache_key(data_checksum(path), trunk_checksum(policy), config.dt, config.image_size)
    folder = root / key[:20]
    if not (folder / INDEX_FILE).is_file():
        _build(path, policy, folder, key, batch_size, progress)
    return _load(folder, key)


def merge_caches(caches: list[FeatureCache]) -> FeatureCache:
    """One cache holding every episode of `caches` in order (instructions shared by text)."""
    texts: dict[str, int] = {}
    rows: list[np.ndarray] = []
    episodes: list[CachedEpisode] = []
    offset = 0
    for cache in caches:
        for episode in cache.episodes:
            if episode.instruction not in texts:
                texts[episode.instruction] = len(texts)
                rows.append(cache.texts[episode.text_index])
            episodes.append(CachedEpisode(source=episode.source, instruction=episode.instruction,
                                          text_index=texts[episode.instruction],
                                          start=episode.start + offset, length=episode.length))
        offset += cache.frames
    key = hashlib.sha256(' '.join(cache.key for cache in caches).encode()).hexdigest()
    return FeatureCache(path=caches[0].path,
                        trunk=np.concatenate([cache.trunk for cache in caches]),
                        actions=np.concatenate([cache.actions for cache in caches]),
                        states=np.concatenate([cache.states for cache in caches]),
                        texts=np.stack(rows), episodes=episodes, key=key)


def _load(folder: Path, key: str) -> FeatureCache:
    index = json.loads((folder / INDEX_FILE).read_text(encoding='utf-8'))
    if index.get('key') != key or index.get('format') != CACHE_FORMAT:
        raise ValueError(f'{folder / INDEX_FILE}: cache key/format mismatch; delete the folder')
    return FeatureCache(
        path=folder, trunk=np.load(folder / 'trunk.npy'), actions=np.load(folder / 'actions.npy'),
        states=np.load(folder / 'states.npy'), texts=np.load(folder / 'texts.npy'),
        episodes=[CachedEpisode(**entry) for entry in index['episodes']], key=key)


def _build(paths, policy, folder: Path, key: str, batch_size: int, progress: bool) -> None:
    import torch
    from tqdm import tqdm

    from vla_nav.data.bags import find_bags
    from vla_nav.data.dataset import read_bag_episodes

    config = policy.config
    bags = find_bags(paths)
    if not bags:
        raise FileNotFoundError(f'no rosbag2 folders under {paths}')
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='.building-', dir=folder.parent))
    trunks: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    states: list[np.ndarray] = []
    episodes: list[CachedEpisode] = []
    text_index: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    rows = 0
    bar = tqdm(bags, desc='trunk cache', unit='bag', disable=not progress, dynamic_ncols=True)
    try:
        for bag in bar:
            for episode in read_bag_episodes(bag, dt=config.dt,
                                             image_size=config.engine_spec().view,
                                             skipped=skipped):
                outputs = []
                for start in range(0, len(episode), batch_size):
                    images = torch.from_numpy(episode.frames[start:start + batch_size])
                    outputs.append(policy.encode_trunk(images).to(torch.float16).cpu().numpy())
                trunks.append(np.concatenate(outputs))
                actions.append(episode.actions.astype(np.float32))
                states.append(episode.states.astype(np.float32))
                index = text_index.setdefault(episode.instruction, len(text_index))
                episodes.append(CachedEpisode(source=episode.source, instruction=episode.instruction,
                                              text_index=index, start=rows, length=len(episode)))
                rows += len(episode)
            bar.set_postfix(frames=rows, episodes=len(episodes))
        if not episodes:
            raise ValueError(f'no usable episodes under {paths} (skipped: {skipped[:3]})')
        texts = sorted(text_index, key=text_index.get)
        embeddings = []
        for start in range(0, len(texts), 64):
            embeddings.append(policy.embed_instructions(texts[start:start + 64]).float().cpu().numpy())
        np.save(work / 'trunk.npy', np.concatenate(trunks))
        np.save(work / 'actions.npy', np.concatenate(actions))
        np.save(work / 'states.npy', np.concatenate(states))
        np.save(work / 'texts.npy', np.concatenate(embeddings))
        index = {'format': CACHE_FORMAT, 'key': key, 'frames': rows,
                 'episodes': [vars(e) for e in episodes], 'skipped': skipped[:100]}
        (work / INDEX_FILE).write_text(json.dumps(index, indent=1), encoding='utf-8')
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
        LOG.info('trunk cache %s: %d episodes, %d frames, %d instructions', folder, len(episodes),
                 rows, len(texts))
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
