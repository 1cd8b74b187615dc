"""vla_nav.model: the VLA policy (torch). See policy.py for the model API, config.py for
PolicyConfig, checkpoint.py for save/load, export.py for ONNX export.

This package's __init__ imports nothing heavy: `vla_nav.model.config` is torch-free and is read by
the ONNX runtime, which must never import torch.
"""
