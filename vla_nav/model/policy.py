"""VLAPolicy: pi(chunk | window of 8 frames, instruction[, robot state]).

    frames ──encode_trunk (frozen, cacheable)──▶ trunk ──encode_frame_from_trunk (trainable neck,
    FiLM with the instruction)──▶ feature (F) ──8 per window──▶ head_forward ──▶ chunk per position

API (shapes: B batch, W window=8, F feature_dim, C chunk=10, D action_dim=2, S state_dim):
  embed_instructions(texts) -> (B, text_dim)          once per goal; edge: L2-normalised MiniLM
                                                      embedding (384); kosmos2: the instruction's
                                                      Kosmos-2 token ids, -1 padded (the VLM reads
                                                      the words itself), as float
  encode_trunk(images uint8 (B,H,W,3) RGB at image_size) -> trunk tensor   FROZEN, no grad;
                                                      training may cache it per frame
  encode_frame_from_trunk(trunk, text_emb) -> (B, F)  trainable neck
  encode_frame(images, text_emb) -> (B, F)            both of the above
  encode_window_from_trunk(trunk (B,W,...), text_emb) -> (B, W, F)
  head_forward(features (B,W,F), text_emb, states (B,W,S)|None) -> (B, W, C, D) in [-1, 1]
                                                      (discrete head: logits (B, W, C, D, bins);
                                                      flow head: the chunk its Euler steps reach)
  compute_loss(features, text_emb, states, target_chunks (B,W,C,D) PHYSICAL, mask (B,W,C) bool)
      -> (loss, {'loss', 'mae_linear', 'mae_angular', ...})   every window position is
                                                      supervised with its own chunk; masked steps
                                                      (past an episode's end) count for nothing.
                                                      Loss: Huber (delta config.huber_delta, in
                                                      the normalised [-1, 1] space; 'l1' optional),
                                                      cross-entropy over bins for 'discrete', the
                                                      flow-matching MSE of the velocity for 'flow'
                                                      (masked steps' targets replaced by a stop,
                                                      so padding never enters its noisy input).
  predict_chunk(features, text_emb, states) -> (B, C, D) physical, newest window position
  normalise_actions(physical) / denormalise_actions(normalised)   clip to [action_low,
                                                      action_high], map linearly to [-1, 1]

The frozen parts (image trunk, text encoder / Kosmos-2) stay in eval mode and out of checkpoints
(see checkpoint.py); `trainable_state_dict()` is what is saved.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from vla_nav.model.config import PolicyConfig
from vla_nav.model.heads import HeadInput, build_head

ACTION_NAMES = ('linear', 'angular')


def build_backbone(config: PolicyConfig, load_pretrained: bool) -> nn.Module:
    if config.backbone == 'edge':
        from vla_nav.model.edge import EdgeBackbone
        return EdgeBackbone(config, load_pretrained=load_pretrained)
    from vla_nav.model.kosmos2 import Kosmos2Backbone
    return Kosmos2Backbone(config, load_pretrained=load_pretrained)


class VLAPolicy(nn.Module):
    """Backbone (frozen trunk + trainable neck) and a head over the window; see module docstring."""

    def __init__(self, config: PolicyConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        spec = config.engine_spec()
        self.image_shape = (spec.image_height, spec.image_width, 3)   # what encode_trunk accepts
        self.backbone = build_backbone(config, load_pretrained)
        self.head_input = HeadInput(config)
        self.head = build_head(self.head_input.out_dim, config)
        self.register_buffer('action_low', torch.tensor(config.action_low, dtype=torch.float32),
                             persistent=False)
        self.register_buffer('action_high', torch.tensor(config.action_high, dtype=torch.float32),
                             persistent=False)
        if config.head == 'discrete':
            self.register_buffer('bin_centres', torch.linspace(-1.0, 1.0, config.discrete_bins),
                                 persistent=False)

    @property
    def device(self) -> torch.device:
        return self.action_low.device

    @property
    def frozen_prefix(self) -> str:
        return 'backbone.' + self.backbone.frozen_prefix

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything except the frozen pretrained parts: what a checkpoint stores."""
        return {name: tensor for name, tensor in self.state_dict().items()
                if not name.startswith(self.frozen_prefix)}

    def load_trained(self, other: VLAPolicy) -> None:
        """`other`'s trained weights, read in this config (a fine-tune that changes only
        FINE_TUNABLE_FIELDS: the same tensors, or a projection widened for a fovea)."""
        state = other.trainable_state_dict()
        if hasattr(self.backbone, 'adopt'):
            state = self.backbone.adopt(state, other.backbone, 'backbone.')
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as error:   # a tensor of another shape (e.g. the gpt head's positions)
            raise ValueError(f'weights do not fit: {error}') from error
        missing = [key for key in missing if not key.startswith(self.frozen_prefix)]
        if missing or unexpected:
            raise ValueError(f'weights do not fit: missing {missing}, unexpected {unexpected}')

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters()
                if p.requires_grad and not name.startswith(self.frozen_prefix)]

    # --- instruction -------------------------------------------------------------------------
    def embed_instructions(self, texts: list[str]) -> torch.Tensor:
        """(B, text_dim) float32 on the policy's device; computed once per goal (no grad)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.backbone.embed_instructions(list(texts), self.device)

    # --- frames ------------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> None:
        height, width, _ = self.image_shape
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f'images must be (B, {height}, {width}, 3) RGB, got {tuple(images.shape)}')

    def encode_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen part: uint8 (B,H,W,3) -> cacheable trunk tensor (no gradient)."""
        self._check_images(images)
        return self.backbone.encode_trunk(images.to(self.device))

    def encode_frame_from_trunk(self, trunk: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Trainable neck: trunk (B, ...) + instruction (B, text_dim) -> (B, feature_dim)."""
        if text_emb.shape[0] != trunk.shape[0]:
            text_emb = text_emb.expand(trunk.shape[0], -1)
        return self.backbone.neck(trunk, text_emb)

    def encode_frame(self, images: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self.encode_frame_from_trunk(self.encode_trunk(images), text_emb)

    def encode_window_from_trunk(self, trunk: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """trunk (B, W, ...) -> features (B, W, F), the instruction shared across the window."""
        batch, window = trunk.shape[:2]
        flat_text = text_emb.unsqueeze(1).expand(-1, window, -1).reshape(batch * window, -1)
        features = self.encode_frame_from_trunk(trunk.reshape(batch * window, *trunk.shape[2:]), flat_text)
        return features.reshape(batch, window, -1)

    # --- head --------------------------------------------------------------------------------
    def _head_input(self, features: torch.Tensor, text_emb: torch.Tensor,
                    states: torch.Tensor | None) -> torch.Tensor:
        """Shape checks + the per-position head input (B, W, head_input.out_dim)."""
        cfg = self.config
        if features.dim() != 3 or features.shape[-1] != cfg.feature_dim:
            raise ValueError(f'features must be (B, W, {cfg.feature_dim}), got {tuple(features.shape)}')
        if cfg.state_dim and (states is None or tuple(states.shape) != (*features.shape[:2], cfg.state_dim)):
            got = None if states is None else tuple(states.shape)
            raise ValueError(f'states must be (B, W, {cfg.state_dim}) for this policy, got {got}')
        return self.head_input(features, text_emb, states if cfg.state_dim else None)

    def head_forward(self, features: torch.Tensor, text_emb: torch.Tensor,
                     states: torch.Tensor | None = None, newest_only: bool = False) -> torch.Tensor:
        """(B,W,F) -> (B,W,chunk,dim) in [-1,1], or logits (B,W,chunk,dim,bins) for 'discrete'.

        newest_only: compute the newest position only (W becomes 1): what inference needs."""
        cfg = self.config
        raw = self.head(self._head_input(features, text_emb, states), newest_only=newest_only)
        batch, window = raw.shape[:2]
        if cfg.head == 'discrete':
            return raw.reshape(batch, window, cfg.chunk, cfg.action_dim, cfg.discrete_bins)
        bounded = raw.clamp(-1.0, 1.0) if cfg.head == 'flow' else torch.tanh(raw)
        return bounded.reshape(batch, window, cfg.chunk, cfg.action_dim)

    def normalised_prediction(self, head_output: torch.Tensor) -> torch.Tensor:
        """head_forward output -> (…, chunk, dim) in [-1, 1] (discrete: expectation over bins)."""
        if self.config.head == 'discrete':
            return head_output.softmax(dim=-1) @ self.bin_centres.to(head_output.dtype)
        return head_output

    def predict_chunk(self, features: torch.Tensor, text_emb: torch.Tensor,
                      states: torch.Tensor | None = None) -> torch.Tensor:
        """Newest window position's chunk in physical units: (B, chunk, dim)."""
        newest = self.head_forward(features, text_emb, states, newest_only=True)[:, -1]
        return self.denormalise_actions(self.normalised_prediction(newest))

    # --- normalisation -----------------------------------------------------------------------
    def normalise_actions(self, actions: torch.Tensor) -> torch.Tensor:
        low, high = self.action_low.to(actions), self.action_high.to(actions)
        clipped = torch.maximum(torch.minimum(actions, high), low)
        return 2.0 * (clipped - low) / (high - low) - 1.0

    def denormalise_actions(self, normalised: torch.Tensor) -> torch.Tensor:
        low, high = self.action_low.to(normalised), self.action_high.to(normalised)
        return low + (normalised.clamp(-1.0, 1.0) + 1.0) * 0.5 * (high - low)

    # --- training ----------------------------------------------------------------------------
    def compute_loss(self, features: torch.Tensor, text_emb: torch.Tensor, states: torch.Tensor | None,
                     target_chunks: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Masked loss over every window position's own chunk; see module docstring."""
        cfg = self.config
        expected = (*features.shape[:2], cfg.chunk, cfg.action_dim)
        if tuple(target_chunks.shape) != expected:
            raise ValueError(f'target_chunks must be {expected} (physical units), got '
                             f'{tuple(target_chunks.shape)}')
        if tuple(mask.shape) != expected[:3]:
            raise ValueError(f'mask must be {expected[:3]}, got {tuple(mask.shape)}')
        target = self.normalise_actions(target_chunks.to(features.dtype))
        weights = mask.to(features.dtype).unsqueeze(-1).expand_as(target)
        count = weights.sum().clamp(min=1.0)
        if cfg.head == 'flow':
            output, per_element = self._flow_loss(features, text_emb, states, target, mask)
        else:
            output = self.head_forward(features, text_emb, states)
            per_element = self._per_element_loss(output, target)
        loss = (per_element * weights).sum() / count
        with torch.no_grad():
            error = (self.denormalise_actions(self.normalised_prediction(output)) -
                     target_chunks.to(features.dtype).clamp(self.action_low, self.action_high)).abs()
            error = error * weights
            dims = weights.sum(dim=(0, 1, 2)).clamp(min=1.0)
            per_dim = error.sum(dim=(0, 1, 2)) / dims
            metrics = {'loss': float(loss.detach()), 'valid_steps': int(mask.sum())}
            for index in range(cfg.action_dim):
                name = ACTION_NAMES[index] if index < len(ACTION_NAMES) else f'dim{index}'
                metrics[f'mae_{name}'] = float(per_dim[index])
        return loss, metrics

    def _per_element_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.head == 'discrete':
            bins = cfg.discrete_bins
            target_bins = ((target + 1.0) * 0.5 * (bins - 1)).round().long().clamp(0, bins - 1)
            return F.cross_entropy(output.reshape(-1, bins), target_bins.reshape(-1),
                                   reduction='none').reshape(target.shape)
        if cfg.loss == 'huber':
            return F.huber_loss(output, target, reduction='none', delta=cfg.huber_delta)
        return (output - target).abs()

    def _flow_loss(self, features: torch.Tensor, text_emb: torch.Tensor, states: torch.Tensor | None,
                   target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow head: (integrated chunk (no grad), per-element flow-matching error), both shaped
        like `target`. Masked steps become a stop: whatever padding they hold never reaches the
        noisy input of the velocity field (their error is weighted 0 anyway)."""
        stop = self.normalise_actions(torch.zeros_like(target))
        filled = torch.where(mask.unsqueeze(-1), target, stop)
        error, prediction = self.head.flow_loss(self._head_input(features, text_emb, states),
                                                filled.flatten(-2))
        return prediction.clamp(-1.0, 1.0).reshape(target.shape), error.reshape(target.shape)
