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

Key = sha256 of (data checksum, trunk checksum, dt, image size, engine). The data checksum
covers every bag's relative path and its files' names and sizes; the trunk checksum covers the
backbone settings that shape the trunk output and the sha256 of the frozen weights. Change either
and a new cache is built; the old one stays until deleted.

Engine: the edge trunk runs in ONNX Runtime (exported once per build, batches of 64): on this
2-core CPU the encoder alone does ~3,500 frames/s where torch does ~420, the same maps to within one fp16
step. Kosmos-2 (a GB-sized export), a machine without onnxruntime, or `engine='torch'` use torch.
The engine is part of the key: caches of the two never mix.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOG = logging.getLogger('vla_nav.training')

CACHE_DIR_NAME = '.vla_nav_cache'
CACHE_FORMAT = 1
ENGINES = ('onnxruntime', 'torch')
ORT_BATCH = 64   # frames per ONNX Runtime call (faster here than 256)
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


def cache_key(data_sum: str, trunk_sum: str, dt: float, image_size: int,
              engine: str = 'torch') -> str:
    parts = {'format': CACHE_FORMAT, 'data': data_sum, 'trunk': trunk_sum, 'dt': dt,
             'image_size': image_size}
    if engine != 'torch':   # absent for torch: caches built before the engine choice keep their keys
        parts['engine'] = engine
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_engine(policy, requested: str | None = None) -> str:
    """'onnxruntime' for the edge trunk when onnxruntime imports, else 'torch' (module docstring)."""
    if requested is not None:
        if requested not in ENGINES:
            raise ValueError(f'unknown trunk cache engine {requested!r}: use one of {ENGINES}')
        return requested
    if policy.config.backbone != 'edge':
        return 'torch'
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return 'torch'
    return 'onnxruntime'


class _TrunkEncoder:
    """uint8 frames (B,H,W,3) -> fp16 trunk maps, by torch or by an ONNX export of the trunk that
    is written into `work` on the first call (the example batch fixes the image size)."""

    def __init__(self, policy, engine: str, work: Path, batch_size: int) -> None:
        self.policy, self.work = policy, work
        self.batch_size = ORT_BATCH if engine == 'onnxruntime' else batch_size
        self.encode_batch = self._onnx_batch if engine == 'onnxruntime' else self._torch_batch
        self.session = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.concatenate([self.encode_batch(frames[start:start + self.batch_size])
                               for start in range(0, len(frames), self.batch_size)])

    def _torch_batch(self, batch: np.ndarray) -> np.ndarray:
        import torch
        return self.policy.encode_trunk(torch.from_numpy(batch)).to(torch.float16).cpu().numpy()

    def _onnx_batch(self, batch: np.ndarray) -> np.ndarray:
        if self.session is None:
            self.session = self._session(batch)
        return self.session.run(None, {'image': np.ascontiguousarray(batch)})[0].astype(np.float16)

    def _session(self, example: np.ndarray):
        import torch

        from vla_nav.model.export import export_trunk
        from vla_nav.runtime.providers import CPU, create_session
        graph = export_trunk(self.policy, torch.from_numpy(example), self.work / 'trunk.onnx')
        # one core is left to the reader thread (_build): 850-920 frames/s here against 800-810
        session = create_session(graph, [(CPU, {})], threads=max(1, torch.get_num_threads() - 1))
        graph.unlink()
        return session


def default_cache_root(paths) -> Path:
    first = Path(paths if isinstance(paths, (str, os.PathLike)) else list(paths)[0])
    return first / CACHE_DIR_NAME


def load_or_build_cache(paths, policy, cache_dir: str | os.PathLike | None = None,
                        batch_size: int = 256, progress: bool = True,
                        engine: str | None = None) -> FeatureCache:
    """The cache for `paths` (bag dirs or folders of them) under `policy`'s frozen trunk.

    One cache per path, built once (progress bar over bags), then loaded; several are merged
    in memory. See the module docstring for the key and `engine` (None: `cache_engine`'s choice).
    """
    roots = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    engine = cache_engine(policy, engine)
    caches = [_load_or_build_one(root, policy, cache_dir, batch_size, progress, engine)
              for root in roots]
    return caches[0] if len(caches) == 1 else merge_caches(caches)


def _load_or_build_one(path, policy, cache_dir, batch_size: int, progress: bool,
                       engine: str) -> FeatureCache:
    config = policy.config
    root = Path(cache_dir) if cache_dir else default_cache_root(path)
    key = cache_key(data_checksum(path), trunk_checksum(policy), config.dt, config.image_size,
                    engine)
    folder = root / key[:20]
    if not (folder / INDEX_FILE).is_file():
        _build(path, policy, folder, key, batch_size, progress, engine)
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


def _read_episodes(bag, **options) -> list:
    from vla_nav.data.dataset import read_bag_episodes
    return list(read_bag_episodes(bag, **options))


def _build(paths, policy, folder: Path, key: str, batch_size: int, progress: bool,
           engine: str = 'torch') -> None:
    from tqdm import tqdm

    from vla_nav.data.bags import find_bags

    config = policy.config
    bags = find_bags(paths)
    if not bags:
        raise FileNotFoundError(f'no rosbag2 folders under {paths}')
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='.building-', dir=folder.parent))
    encode = _TrunkEncoder(policy, engine, work, batch_size)
    trunks: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    states: list[np.ndarray] = []
    episodes: list[CachedEpisode] = []
    text_index: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    rows = 0
    view = config.engine_spec().view
    read = functools.partial(_read_episodes, dt=config.dt, image_size=view, skipped=skipped)
    bar = tqdm(range(len(bags)), desc='trunk cache', unit='bag', disable=not progress, dynamic_ncols=True)
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix='trunk-cache-reader')
    try:
        # one bag read ahead on a thread (decoding is Python) while this one is encoded: ONNX
        # Runtime releases the GIL, so reading and encoding overlap; the order stays the bags'
        pending = reader.submit(read, bags[0])
        for position in bar:
            bag_episodes = pending.result()
            if position + 1 < len(bags):
                pending = reader.submit(read, bags[position + 1])
            for episode in bag_episodes:
                trunks.append(encode(episode.frames))
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
        index = {'format': CACHE_FORMAT, 'key': key, 'frames': rows, 'engine': engine,
                 'episodes': [vars(e) for e in episodes], 'skipped': skipped[:100]}
        (work / INDEX_FILE).write_text(json.dumps(index, indent=1), encoding='utf-8')
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
        LOG.info('trunk cache %s: %d episodes, %d frames, %d instructions (%s)', folder,
                 len(episodes), rows, len(texts), engine)
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
