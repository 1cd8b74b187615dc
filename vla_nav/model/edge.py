"""The `edge` backbone: frozen EfficientNet-Lite0 trunk + trainable FiLM neck + frozen MiniLM.

Frame path: uint8 RGB -> trunk (first `trunk_blocks` MBConv blocks, ImageNet weights, frozen:
its output is what training caches) -> 1x1 conv to `neck_channels` -> FiLM from the instruction
embedding (scale and shift per channel, so "red cone" and "blue ball" select different channels)
-> ReLU [-> (neck_layers - 1) x residual (1x1 conv -> FiLM -> ReLU)] -> flatten the WHOLE
spatial map (keeps left/right/up/down: the policy must know where the target is) -> linear ->
LayerNorm -> feature (feature_dim).

Instruction path: MiniLM tokens -> mean pool -> L2 normalise (384), once per goal.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vla_nav.model.config import MINILM_DIM, PolicyConfig
from vla_nav.model.pretrained import (
    EFFICIENTNET_PACKAGE,
    MINILM_PACKAGE,
    EfficientNetTrunk,
    MiniLMEncoder,
    efficientnet_weights_path,
    frozen_reference,
    minilm_tokenizer_path,
    minilm_weights_path,
    verify_frozen_reference,
)


class EdgeBackbone(nn.Module):
    frozen_prefix = 'trunk.'   # state-dict keys under this prefix are never saved in checkpoints

    def __init__(self, config: PolicyConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        self.trunk = (FoveaTrunk(config, load_pretrained) if config.fovea_rows else
                      EfficientNetTrunk(config.image_size, config.trunk_blocks, load_weights=load_pretrained))
        channels, (height, width) = self.trunk.out_channels, self.trunk.out_hw
        self.trunk_shape = (channels, height, width)
        self.reduce = nn.Conv2d(channels, config.neck_channels, kernel_size=1)
        self.film = nn.Linear(MINILM_DIM, 2 * config.neck_channels)
        nn.init.zeros_(self.film.weight)  # starts as identity modulation
        nn.init.zeros_(self.film.bias)
        self.mix = nn.ModuleList(nn.Conv2d(config.neck_channels, config.neck_channels, kernel_size=1)
                                 for _ in range(config.neck_layers - 1))
        self.mix_film = nn.ModuleList(nn.Linear(MINILM_DIM, 2 * config.neck_channels)
                                      for _ in range(config.neck_layers - 1))
        for film in self.mix_film:
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(config.neck_channels * height * width, config.feature_dim)
        self.norm = nn.LayerNorm(config.feature_dim)
        self._text: tuple | None = None  # (tokenizer, MiniLMEncoder), built on first use, not saved

    # --- frame -------------------------------------------------------------------------------
    def encode_trunk(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.trunk(images)

    @staticmethod
    def _modulate(x: torch.Tensor, film: nn.Linear, text_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = film(text_emb.to(x.dtype)).chunk(2, dim=-1)
        return torch.relu(x * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None])

    def neck(self, trunk: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        x = self._modulate(self.reduce(trunk.to(self.reduce.weight.dtype)), self.film, text_emb)
        for conv, film in zip(self.mix, self.mix_film, strict=True):
            x = x + self._modulate(conv(x), film, text_emb)
        x = self.dropout(x.flatten(1))
        return self.norm(self.project(x))

    def adopt(self, state: dict[str, torch.Tensor], other: EdgeBackbone, prefix: str) -> dict:
        """`other`'s trained weights for this backbone, whose trunk map may have more rows (a fovea
        added): the projection's columns of the new cells start at zero, so the features are
        unchanged until training uses them."""
        key = prefix + 'project.weight'
        (_, rows, width), (_, new_rows, new_width) = other.trunk_shape, self.trunk_shape
        channels = self.config.neck_channels
        if key not in state or (rows, width) == (new_rows, new_width):
            return state
        if other.config.neck_channels != channels or width != new_width or new_rows < rows:
            raise ValueError(f'cannot carry a {other.trunk_shape} trunk map\'s projection '
                             f'to {self.trunk_shape}')
        old = state[key].reshape(-1, channels, rows, width)
        widened = old.new_zeros(old.shape[0], channels, new_rows, width)
        widened[:, :, :rows] = old
        return {**state, key: widened.reshape(old.shape[0], -1)}

    # --- instruction -------------------------------------------------------------------------
    def text_encoder(self) -> tuple:
        if self._text is None:
            from vla_nav.model.text import InstructionTokenizer
            tokenizer = InstructionTokenizer(minilm_tokenizer_path(), self.config.text_max_tokens)
            self._text = (tokenizer, MiniLMEncoder())
        return self._text

    def embed_instructions(self, texts: list[str], device: torch.device) -> torch.Tensor:
        tokenizer, encoder = self.text_encoder()
        encoder.to(device)
        ids, mask = tokenizer(list(texts))
        with torch.no_grad():
            return encoder(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.text_encoder()[0](list(texts))

    # --- frozen weights bookkeeping ----------------------------------------------------------
    @staticmethod
    def frozen_references() -> dict:
        return {'image_trunk': frozen_reference(EFFICIENTNET_PACKAGE, efficientnet_weights_path()),
                'text_encoder': frozen_reference(MINILM_PACKAGE, minilm_weights_path())}

    @staticmethod
    def verify_frozen(references: dict, checkpoint_file, config: PolicyConfig | None = None) -> None:
        paths = {'image_trunk': efficientnet_weights_path(), 'text_encoder': minilm_weights_path()}
        for name, path in paths.items():
            verify_frozen_reference(references.get(name, {}), path, checkpoint_file)


class FoveaTrunk(nn.Module):
    """The frozen trunk over the full view and, separately (each part with its own static
    padding), over the fovea strip under it; the two maps are stacked along the height."""

    def __init__(self, config: PolicyConfig, load_pretrained: bool) -> None:
        super().__init__()
        self.size = config.image_size
        self.full = EfficientNetTrunk(config.image_size, config.trunk_blocks, load_weights=load_pretrained)
        self.strip = EfficientNetTrunk((config.fovea_rows, config.image_size), config.trunk_blocks,
                                       load_weights=load_pretrained)
        # one copy of the (identical) weights in memory; each part keeps its own static paddings
        # and BatchNorm buffers (the trunk's shape probe at construction runs in training mode and
        # nudges them per input size: part of the frozen trunk's definition), so the ONNX export,
        # which folds each part's BatchNorm into its convolutions, holds two folded copies
        for mine, theirs in zip(self.full.modules(), self.strip.modules(), strict=True):
            theirs._parameters.update(mine._parameters)
        self.out_channels = self.full.out_channels
        self.out_hw = (self.full.out_hw[0] + self.strip.out_hw[0], self.full.out_hw[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.full(images[:, :self.size]), self.strip(images[:, self.size:])], dim=2)
