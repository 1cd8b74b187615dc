"""The `kosmos2` backbone: Kosmos-2 (the paper's VLM) from a LOCAL folder, RoboVLMs-style.

Per frame the language model reads
    <s> <image> [latent image tokens] </image> [instruction tokens] [ACT]
and the last hidden state at the learnable [ACT] token is the frame's feature (projected to
feature_dim). Never downloads: `config.kosmos2_path` must hold a transformers Kosmos-2 model
(config.json + *.safetensors, Kosmos2Model or Kosmos2ForConditionalGeneration) and its
tokenizer.json; preprocessor_config.json (CLIP mean/std) is optional.

Split (as for the edge backbone): encode_trunk = vision encoder + image-to-text projection
(frozen, cacheable: (B, latent tokens, text width)); the neck = the [ACT] embedding, the frozen
language model (gradients flow through it to [ACT]) and the trainable projection. The whole
Kosmos-2 stays frozen and out of checkpoints (sha256 of its weight files is recorded): RoboVLMs
fine-tunes the VLM, which a 1.6B model on a CPU cannot; LoRA would be the next step.

The instruction "embedding" of a kosmos2 policy is its token ids (B, kosmos2_max_text_tokens),
-1 padded, as float: the VLM reads the words itself. Runtime: torch backend only (the ONNX engine
refuses kosmos2 with a clear error; the model also misses the edge target of 750 steps/s).
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


def kosmos2_weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob('*.safetensors'))
    if not files:
        raise ModelLoadError(folder, 'no *.safetensors weights in the Kosmos-2 folder')
    return files


def kosmos2_checksum(folder: Path) -> str:
    """One sha256 over the weight files' own checksums (sharded checkpoints included)."""
    digest = hashlib.sha256()
    for path in kosmos2_weight_files(folder):
        digest.update(f'{path.name}:{sha256_file(path)}\n'.encode())
    return digest.hexdigest()


class Kosmos2Backbone(nn.Module):
    frozen_prefix = 'vlm.'

    def __init__(self, config: PolicyConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        from transformers import Kosmos2Config, Kosmos2Model
        from transformers.utils import logging as transformers_logging
        transformers_logging.disable_progress_bar()
        self.config = config
        self.folder = Path(os.path.expanduser(config.kosmos2_path))
        if not (self.folder / 'config.json').is_file():
            raise ModelLoadError(self.folder, 'not a Kosmos-2 folder (config.json missing); kosmos2 '
                                              'models are only loaded from a local folder')
        try:
            if load_pretrained:
                self.vlm = Kosmos2Model.from_pretrained(str(self.folder), local_files_only=True)
            else:
                self.vlm = Kosmos2Model(Kosmos2Config.from_pretrained(str(self.folder)))
        except Exception as error:
            raise ModelLoadError(self.folder, f'cannot load Kosmos-2: {error}') from error
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
