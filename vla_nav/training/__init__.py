"""Training and offline metrics for vla_nav policies (torch).

    feature_cache  the frozen trunk runs ONCE per frame: trunk outputs (fp16) and instruction
                   embeddings (one per unique string) are cached on disk, keyed by the data and
                   the trunk's checksum, so epochs train only the neck + head
    trainer        AdamW over cached windows: validation split by episode, metrics CSV, best
                   checkpoint by validation MAE, resumable (safetensors + JSON), seeded
    metrics        masked chunk MAE in physical units per chunk step / dimension / overall

The CLI verbs `python -m vla_nav train` and `eval` (vla_nav/tools) are thin shells over these.
"""
