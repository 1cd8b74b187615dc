"""What one control step costs: parameters and FLOPs of the per-step graphs (torch).

Computed when the graphs are exported and stored in export.json ("cost"), so `bench` reports them
on a torch-free robot install too.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def policy_cost(policy) -> dict[str, float]:
    """{'params_m', 'gflops_per_step'} of the policy: trunk + neck + head.

    params_m counts the policy's modules (the frozen text encoder is built lazily and not one of
    them); FLOPs = 2 x multiply-adds of one frame encode + one head pass (LSTM counted
    analytically, since torch's FLOP counter does not see inside aten::lstm); the text encoder
    runs once per goal and is excluded.
    """
    cfg = policy.config
    params = sum(p.numel() for p in policy.parameters())
    instruction = torch.zeros(1, cfg.text_dim)
    instruction[0, 0] = 1.0
    states = torch.zeros(1, cfg.window, cfg.state_dim) if cfg.state_dim else None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        spec = cfg.engine_spec()
        policy.encode_frame(torch.zeros(1, spec.image_height, spec.image_width, 3, dtype=torch.uint8),
                            instruction)
        policy.predict_chunk(torch.zeros(1, cfg.window, cfg.feature_dim), instruction, states)
    flops = counter.get_total_flops()
    if cfg.head in ('lstm', 'discrete', 'flow'):   # the LSTM window body
        in_dim = policy.head_input.out_dim
        for layer in range(cfg.head_layers):
            width = in_dim if layer == 0 else cfg.head_hidden
            flops += 2 * cfg.window * 4 * cfg.head_hidden * (width + cfg.head_hidden)
    return {'params_m': params / 1e6, 'gflops_per_step': flops / 1e9}
