"""Policy heads (as in RoboVLMs): a window of per-frame inputs -> one chunk per window position.

Every head maps (B, W, in_dim) to a raw output for EVERY window position, so training supervises
each position with its own chunk and inference reads the newest position:
  lstm      LSTM over the window + MLP (the default; RoboVLMs' best head)
  fc        MLP on each position alone: no history
  gpt       small causal transformer over the window with learned positions
  discrete  LSTM body, 256 (configurable) bins per action dimension, cross-entropy
  flow      LSTM body gives a context; a tiny MLP velocity field over the flattened chunk is
            integrated by `flow_steps` Euler steps (rectified flow / flow matching, see FlowHead)
Continuous heads return (B, W, chunk*action_dim) pre-tanh values; the discrete head returns
(B, W, chunk*action_dim*bins) logits; the flow head returns the integrated chunk, already in the
normalised action space. The policy applies tanh (clamp for flow) / reshapes (policy.py).

`HeadInput` builds the per-position input: the frame feature, the instruction embedding projected
to `text_head_dim` (repeated over the window) and the scaled robot state when state_dim > 0.
Everything here is plain torch ops that export to ONNX.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vla_nav.model.config import PolicyConfig


class HeadInput(nn.Module):
    """concat(feature, projected instruction, scaled state) for every window position."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.use_text = config.backbone == 'edge' and config.text_head_dim > 0
        self.text_projection = (nn.Linear(config.text_dim, config.text_head_dim)
                                if self.use_text else None)
        self.state_dim = config.state_dim
        self.register_buffer('state_scale', torch.tensor(config.state_scale[:config.state_dim] or [0.0],
                                                         dtype=torch.float32), persistent=False)
        self.out_dim = (config.feature_dim + (config.text_head_dim if self.use_text else 0)
                        + config.state_dim)

    def forward(self, features: torch.Tensor, text_emb: torch.Tensor,
                states: torch.Tensor | None) -> torch.Tensor:
        parts = [features]
        if self.text_projection is not None:
            text = self.text_projection(text_emb.to(features.dtype))
            parts.append(text.unsqueeze(1).expand(-1, features.shape[1], -1))
        if self.state_dim:
            if states is None:
                raise ValueError(f'this policy takes robot states (state_dim={self.state_dim}); got None')
            parts.append(states.to(features.dtype) * self.state_scale.to(features.dtype))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else features


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class LSTMBody(nn.Module):
    def __init__(self, in_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, config.head_hidden, num_layers=config.head_layers, batch_first=True,
                            dropout=config.dropout if config.head_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class MLPBody(nn.Module):
    def __init__(self, in_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(config.head_layers):
            layers += [nn.Linear(in_dim if index == 0 else config.head_hidden, config.head_hidden),
                       nn.GELU(), nn.Dropout(config.dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t sees positions <= t (explicit ops: exports cleanly)."""

    def __init__(self, width: int, heads: int, window: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        blocked = torch.triu(torch.ones(window, window, dtype=torch.bool), diagonal=1)
        self.register_buffer('blocked', blocked, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        shape = (batch, length, self.heads, width // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(width // self.heads)
        scores = scores.masked_fill(self.blocked[:length, :length], float('-inf'))
        attended = self.dropout(scores.softmax(dim=-1)) @ v
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class TransformerBlock(nn.Module):
    def __init__(self, width: int, heads: int, window: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, window, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = _mlp(width, 4 * width, width, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPTBody(nn.Module):
    def __init__(self, in_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, config.head_hidden)
        self.positions = nn.Parameter(torch.zeros(1, config.window, config.head_hidden))
        nn.init.normal_(self.positions, std=0.02)
        self.blocks = nn.Sequential(*[
            TransformerBlock(config.head_hidden, config.head_attention_heads, config.window, config.dropout)
            for _ in range(config.head_layers)])
        self.norm = nn.LayerNorm(config.head_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.positions.shape[1]:
            raise ValueError(f'window of {x.shape[1]} frames exceeds the trained {self.positions.shape[1]}')
        x = self.embed(x) + self.positions[:, :x.shape[1]]
        return self.norm(self.blocks(x))


BODIES = {'lstm': LSTMBody, 'fc': MLPBody, 'gpt': GPTBody, 'discrete': LSTMBody}


class PolicyHead(nn.Module):
    """Body over the window + MLP to every position's flattened chunk (or chunk logits)."""

    def __init__(self, in_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        self.kind = config.head
        outputs = config.chunk * config.action_dim
        if config.head == 'discrete':
            outputs *= config.discrete_bins
        self.body = BODIES[config.head](in_dim, config)
        self.out = _mlp(config.head_hidden, config.head_hidden, outputs, config.dropout)

    def forward(self, x: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        hidden = self.body(x)
        # inference needs the newest position only: skip the output MLP on the others
        return self.out(hidden[:, -1:] if newest_only else hidden)


FLOW_START_SEED = 0      # the seed of the flow head's fixed starting sample (see FlowHead)
FLOW_TIME_FREQUENCIES = 4  # sin/cos pairs of the time embedding


class FlowHead(nn.Module):
    """Flow matching (rectified flow) over the flattened, normalised chunk: a fifth head.

    A regression head predicts the mean chunk, so two equally good chunks (pass an obstacle on the
    left or on the right) average into a collision. This head learns a velocity field
    v(x_t, t, context) that carries a sample of N(0, I) to the data along straight lines:

        training   x_t = (1 - t) noise + t action, t ~ U(0, 1); loss |v(x_t, t) - (action - noise)|^2
        inference  x_0 = start; x_{k+1} = x_k + v(x_k, k / K) / K for K = config.flow_steps

    The context is the LSTM window summary (the same body as the lstm head, so the head stays
    tiny); it is projected once and the velocity MLP (2 hidden layers of head_hidden) runs K times.
    The Euler loop has a fixed K, so the exported ONNX graph holds K unrolled passes.

    Determinism: inference starts from ONE fixed noise sample, `start` (drawn once from N(0, I)
    with seed FLOW_START_SEED and stored in the checkpoint), not from fresh noise. The same window
    always gives the same chunk (reproducible tests, closed-loop evaluation and ONNX parity) and
    the robot does not flip between the left and the right mode from one step to the next. The
    price: no diversity across calls, the mode is the one whose basin holds `start` for this
    context. Starting from zeros would also be deterministic, but zero is the symmetric point of
    the noise: for a symmetric pair of modes the flow from it can stay between them, the very
    average this head exists to avoid; a generic fixed sample breaks that symmetry.

    In training, `flow_loss` draws noise and t from the global torch RNG (seeded and resumed by
    the trainer); in eval mode from a fixed generator, so a validation loss is reproducible.
    """

    def __init__(self, in_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        self.steps = config.flow_steps
        self.size = config.chunk * config.action_dim
        hidden = config.head_hidden
        self.body = LSTMBody(in_dim, config)
        self.context = nn.Linear(config.head_hidden, hidden)
        self.sample_in = nn.Linear(self.size, hidden, bias=False)
        self.time_in = nn.Linear(2 * FLOW_TIME_FREQUENCIES, hidden, bias=False)
        self.velocity = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                      nn.Linear(hidden, self.size))
        frequencies = math.pi * 2.0 ** torch.arange(FLOW_TIME_FREQUENCIES, dtype=torch.float32)
        self.register_buffer('frequencies', frequencies, persistent=False)
        # the Euler steps' times are fixed: their embeddings are constants of the inference graph
        steps = torch.arange(self.steps, dtype=torch.float32).unsqueeze(-1) / self.steps
        self.register_buffer('step_times', self._embed_time(steps), persistent=False)
        start = torch.randn(self.size, generator=torch.Generator().manual_seed(FLOW_START_SEED))
        self.register_buffer('start', start)

    def _embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """t (..., 1) in [0, 1] -> (..., 2 * FLOW_TIME_FREQUENCIES) sin/cos features."""
        angles = t * self.frequencies.to(t.dtype)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def _velocity(self, sample: torch.Tensor, time: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """v(sample, t) given the time embedding and the already projected context."""
        return self.velocity(context + self.sample_in(sample) + self.time_in(time))

    def integrate(self, context: torch.Tensor) -> torch.Tensor:
        """K Euler steps from `start` under the projected context (…, hidden) -> (…, size).

        `start` and the step times enter unexpanded (they broadcast), so the exporter folds the
        first step's input projection and every time projection into constants."""
        sample = self.start.to(context.dtype)
        for step in range(self.steps):
            time = self.step_times[step].to(context.dtype)
            sample = sample + self._velocity(sample, time, context) / self.steps
        return sample

    def forward(self, x: torch.Tensor, newest_only: bool = False) -> torch.Tensor:
        hidden = self.body(x)
        return self.integrate(self.context(hidden[:, -1:] if newest_only else hidden))

    def flow_loss(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-element squared velocity error, integrated prediction (no grad)), both shaped like
        `target` (B, W, size) in the normalised action space."""
        context = self.context(self.body(x))
        generator = None
        if not self.training:
            generator = torch.Generator(device=target.device).manual_seed(FLOW_START_SEED + 1)
        noise = torch.randn(target.shape, generator=generator, device=target.device, dtype=target.dtype)
        t = torch.rand((*target.shape[:-1], 1), generator=generator, device=target.device,
                       dtype=target.dtype)
        sample = (1.0 - t) * noise + t * target
        error = (self._velocity(sample, self._embed_time(t), context) - (target - noise)).square()
        with torch.no_grad():
            prediction = self.integrate(context.detach())
        return error, prediction


def build_head(in_dim: int, config: PolicyConfig) -> nn.Module:
    """The head module that config.head names."""
    return FlowHead(in_dim, config) if config.head == 'flow' else PolicyHead(in_dim, config)
