"""The `kosmos2` backbone: Kosmos-2 (the paper's VLM) from a LOCAL folder, RoboVLMs-style.

Per frame the language model reads
    <s> <image> [latent image tokens] </image> [instruction tokens] [ACT]
and the last hidden state at the learnable [ACT] token is the frame's feature (projected to
feature_dim). Never downloads (HF_HUB_OFFLINE, local_files_only): `config.kosmos2_path` must
hold a transformers Kosmos-2 model (config.json with model_type "kosmos-2" + *.safetensors, one
file or shards with their index, saved from Kosmos2Model or Kosmos2ForConditionalGeneration, e.g.
microsoft/kosmos-2-patch14-224) and its tokenizer.json; preprocessor_config.json (CLIP mean/std)
is optional. A missing folder, another model_type, missing shards or missing tensors each raise
ModelLoadError saying which (`load_kosmos2`). `write_random_kosmos2` writes a random folder of
any size (default: the full-size architecture) for tests, bench and scripts/kosmos2_fullsize.py.

Split (as for the edge backbone): encode_trunk = vision encoder + image-to-text projection
(frozen, cacheable: (B, latent tokens, text width)); the neck = the [ACT] embedding, the frozen
language model (gradients flow through it to [ACT]) and the trainable projection. The whole
Kosmos-2 stays frozen and out of checkpoints (sha256 of its weight files is recorded): RoboVLMs
fine-tunes the VLM, which a 1.6B model on a CPU cannot; LoRA would be the next step.

The instruction "embedding" of a kosmos2 policy is its token ids (B, kosmos2_max_text_tokens),
-1 padded, as float: the VLM reads the words itself. Runtime: torch or ONNX (frame_encoder holds
the whole VLM; at full size its weights go to an external-data file, see export.py); either way
far below the edge target of 750 steps/s (README, "Kosmos-2 at full size").
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from vla_nav.core.engine import ModelLoadError
from vla_nav.model.config import PolicyConfig
from vla_nav.model.pretrained import sha256_file

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PAD_ID = -1
MODEL_TYPE = 'kosmos-2'
PUBLISHED_MODEL = 'microsoft/kosmos-2-patch14-224'
SHARD_INDEX = 'model.safetensors.index.json'
RANDOM_MARKER = 'vla_nav_random_weights.json'
# stand-in word-level vocabulary of a random folder (the real one is Kosmos-2's sentencepiece)
STAND_IN_VOCABULARY = ('<s>', '<pad>', '</s>', '<unk>', '<image>', '</image>', 'go', 'to', 'the', 'red',
                       'blue', 'green', 'yellow', 'cone', 'ball', 'box', 'door', 'turn', 'left', 'right',
                       'around', 'forward', 'back', 'stop', 'drive', 'move', 'meters', 'meter', 'a', 'and',
                       '1', '2', '3', 'slowly', 'wait', 'here')


def check_kosmos2_folder(folder: Path) -> dict:
    """config.json of a local Kosmos-2 folder, or ModelLoadError saying what is wrong with it."""
    if not folder.is_dir():
        raise ModelLoadError(folder, 'Kosmos-2 folder does not exist (kosmos2 models are only loaded from '
                                     'a local folder, e.g. a save_pretrained copy of '
                                     f'{PUBLISHED_MODEL}; nothing is downloaded)')
    config_path = folder / 'config.json'
    if not config_path.is_file():
        raise ModelLoadError(folder, 'not a Kosmos-2 folder (config.json missing); kosmos2 models are '
                                     'only loaded from a local folder')
    try:
        document = json.loads(config_path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise ModelLoadError(config_path, f'unreadable: {error}') from error
    model_type = document.get('model_type') if isinstance(document, dict) else None
    if model_type != MODEL_TYPE:
        architectures = document.get('architectures') if isinstance(document, dict) else None
        raise ModelLoadError(config_path, f'model_type is {model_type!r} (architectures {architectures}), '
                                          f'not {MODEL_TYPE!r}: this folder holds another model')
    return document


def kosmos2_weight_files(folder: Path) -> list[Path]:
    """The safetensors files of the folder; every shard its index names must be there."""
    index_path = folder / SHARD_INDEX
    if index_path.is_file():
        try:
            shards = sorted(set(json.loads(index_path.read_text(encoding='utf-8'))['weight_map'].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelLoadError(index_path, f'unreadable shard index: {error}') from error
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelLoadError(index_path, f'{len(missing)} of {len(shards)} weight shards missing: '
                                             f'{", ".join(missing[:4])}')
        return [folder / name for name in shards]
    files = sorted(folder.glob('*.safetensors'))
    if not files:
        pickled = ' (only pickled pytorch_model.bin, which is never loaded: re-save with ' \
                  'save_pretrained, safe_serialization is the default)' \
            if (folder / 'pytorch_model.bin').is_file() else ''
        raise ModelLoadError(folder, f'no *.safetensors weights in the Kosmos-2 folder{pickled}')
    return files


def kosmos2_checksum(folder: Path) -> str:
    """One sha256 over the weight files' own checksums (sharded checkpoints included)."""
    digest = hashlib.sha256()
    for path in kosmos2_weight_files(folder):
        digest.update(f'{path.name}:{sha256_file(path)}\n'.encode())
    return digest.hexdigest()


def load_kosmos2(folder: Path, load_pretrained: bool = True):
    """Kosmos2Model (fp32, eval) from a local folder, never the hub; every problem a ModelLoadError.

    Accepts folders saved from Kosmos2Model or Kosmos2ForConditionalGeneration (the published
    checkpoint: same tensor names, its lm_head is not needed). A folder whose weights miss any
    tensor of the model is refused (transformers would silently initialise them randomly)."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from transformers import Kosmos2Config, Kosmos2Model
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()
    check_kosmos2_folder(folder)
    try:
        if not load_pretrained:
            return Kosmos2Model(Kosmos2Config.from_pretrained(str(folder), local_files_only=True)).eval()
        kosmos2_weight_files(folder)
        model, info = Kosmos2Model.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32,
                                                   output_loading_info=True)
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(folder, f'cannot load Kosmos-2: {error}') from error
    missing = sorted(info.get('missing_keys') or [])
    mismatched = list(info.get('mismatched_keys') or [])
    if missing or mismatched:
        raise ModelLoadError(folder, f'incomplete Kosmos-2 weights: {len(missing)} tensors missing '
                                     f'({", ".join(missing[:3])}), {len(mismatched)} of another shape '
                                     f'{mismatched[:2]}; the folder must hold all of the model')
    return model.eval()


def write_random_kosmos2(folder: str | os.PathLike, kosmos2_config=None, seed: int = 0,
                         max_shard_size: str = '2GB') -> Path:
    """A Kosmos-2 folder with RANDOM weights, for tests, bench and the full-size check.

    kosmos2_config: a transformers Kosmos2Config (default: Kosmos2Config(), i.e. the full-size
    microsoft/kosmos-2-patch14-224 architecture, 1.66 B parameters, 6.7 GB in fp32). Writes
    config.json, sharded *.safetensors + index, a stand-in word-level tokenizer.json (real
    folders carry Kosmos-2's own) and RANDOM_MARKER, which bench reads to label its figures."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import Kosmos2Config, Kosmos2Model
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()
    folder = Path(folder)
    config = kosmos2_config if kosmos2_config is not None else Kosmos2Config()
    if config.text_config.vocab_size < len(STAND_IN_VOCABULARY):
        raise ValueError(f'vocab_size must be >= {len(STAND_IN_VOCABULARY)} for the stand-in tokenizer')
    torch.manual_seed(seed)
    model = Kosmos2Model(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), max_shard_size=max_shard_size)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    tokenizer = Tokenizer(models.WordLevel({word: index for index, word in enumerate(STAND_IN_VOCABULARY)},
                                           unk_token='<unk>'))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / 'tokenizer.json'))
    (folder / RANDOM_MARKER).write_text(json.dumps(
        {'random_weights': True, 'seed': seed, 'parameters': parameters,
         'note': 'random weights, stand-in tokenizer: speed/memory/export checks only'}, indent=2) + '\n')
    return folder


def is_random_kosmos2(folder: str | os.PathLike) -> bool:
    return Path(folder, RANDOM_MARKER).is_file()


class Kosmos2Backbone(nn.Module):
    frozen_prefix = 'vlm.'

    def __init__(self, config: PolicyConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        self.folder = Path(os.path.expanduser(config.kosmos2_path))
        self.vlm = load_kosmos2(self.folder, load_pretrained)
        self.vlm.requires_grad_(False)
        self.vlm.eval()
        text_config = self.vlm.config.text_config
        width = text_config.embed_dim
        self.pad_token = int(text_config.pad_token_id)
        self.bos_token = int(text_config.bos_token_id)
        self.act_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.project = nn.Linear(width, config.feature_dim)
        self.norm = nn.LayerNorm(config.feature_dim)
        vision_size = self.vlm.config.vision_config.image_size
        self.interpolate = config.image_size != vision_size
        mean, std = self._image_statistics()
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)
        self._tokenizer = None
        self._image_open, self._image_close = self._special_ids()
        self.trunk_shape = (self.vlm.config.latent_query_num, width)

    def train(self, mode: bool = True) -> Kosmos2Backbone:
        super().train(mode)
        self.vlm.eval()  # frozen: no dropout inside the VLM
        return self

    def _image_statistics(self) -> tuple[tuple, tuple]:
        try:
            data = json.loads((self.folder / 'preprocessor_config.json').read_text())
            return tuple(data['image_mean']), tuple(data['image_std'])
        except (OSError, ValueError, KeyError):
            return CLIP_MEAN, CLIP_STD

    def tokenizer(self):
        if self._tokenizer is None:
            from vla_nav.model.text import InstructionTokenizer
            self._tokenizer = InstructionTokenizer(self.folder / 'tokenizer.json',
                                                   self.config.kosmos2_max_text_tokens,
                                                   add_special_tokens=False)
        return self._tokenizer

    def _special_ids(self) -> tuple[int | None, int | None]:
        if not (self.folder / 'tokenizer.json').is_file():
            raise ModelLoadError(self.folder / 'tokenizer.json', 'missing: the Kosmos-2 tokenizer is needed')
        inner = self.tokenizer()._tokenizer
        return inner.token_to_id('<image>'), inner.token_to_id('</image>')

    # --- frame -------------------------------------------------------------------------------
    def encode_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,H,W,3) -> latent image tokens (B, latent_query_num, width), frozen."""
        with torch.no_grad():
            pixels = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
            output = self.vlm.get_image_features(pixels, interpolate_pos_encoding=self.interpolate,
                                                 return_dict=True)
            return output.pooler_output

    def neck(self, trunk: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        batch = trunk.shape[0]
        device = trunk.device
        ids = text_emb.round().long()
        valid = ids != PAD_ID
        ids = torch.where(valid, ids, torch.full_like(ids, self.pad_token))
        prefix = [self.bos_token] + ([self._image_open] if self._image_open is not None else [])
        suffix = [self._image_close] if self._image_close is not None else []
        embed = self.vlm.get_input_embeddings()
        prefix_ids = torch.tensor(prefix, device=device).expand(batch, -1)
        suffix_ids = torch.tensor(suffix, device=device, dtype=torch.long).expand(batch, -1)
        pieces = [embed(prefix_ids), trunk.to(embed.weight.dtype), embed(suffix_ids), embed(ids),
                  self.act_token.expand(batch, -1, -1).to(embed.weight.dtype)]
        inputs = torch.cat(pieces, dim=1)
        fixed = len(prefix) + trunk.shape[1] + len(suffix)
        mask = torch.cat([torch.ones(batch, fixed, dtype=torch.long, device=device), valid.long(),
                          torch.ones(batch, 1, dtype=torch.long, device=device)], dim=1)
        # positions skip the padded instruction slots, as Kosmos-2 numbers real tokens only
        positions = (torch.cumsum(mask, dim=1) * mask + self.pad_token).long()
        hidden = self.vlm.text_model(inputs_embeds=inputs, attention_mask=mask, position_ids=positions,
                                     use_cache=False, return_dict=True).last_hidden_state
        return self.norm(self.project(hidden[:, -1]))

    # --- instruction -------------------------------------------------------------------------
    def embed_instructions(self, texts: list[str], device: torch.device) -> torch.Tensor:
        ids = self.tokenizer().fixed(list(texts), self.config.kosmos2_max_text_tokens, PAD_ID)
        return torch.from_numpy(ids).to(device=device, dtype=torch.float32)

    # --- frozen weights bookkeeping ----------------------------------------------------------
    def frozen_references(self) -> dict:
        return {'kosmos2': {'package': 'local folder', 'path': str(self.folder),
                            'files': [p.name for p in kosmos2_weight_files(self.folder)],
                            'sha256': kosmos2_checksum(self.folder)}}

    @staticmethod
    def verify_frozen(references: dict, checkpoint_file, config: PolicyConfig | None = None) -> None:
        reference = references.get('kosmos2', {})
        folder = Path(os.path.expanduser(config.kosmos2_path if config else reference.get('path', '')))
        if not folder.is_dir():
            raise ModelLoadError(folder, f'Kosmos-2 folder missing (needed by {checkpoint_file})')
        actual = kosmos2_checksum(folder)
        if actual != reference.get('sha256'):
            raise ModelLoadError(checkpoint_file, f'Kosmos-2 weights in {folder} have sha256 '
                                                  f'{actual[:16]}..., the checkpoint was trained with '
                                                  f'{str(reference.get("sha256"))[:16]}...')
