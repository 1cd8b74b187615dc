"""Training and offline metrics for vla_nav policies (torch).

    feature_cache  the frozen trunk runs ONCE per frame: trunk outputs (fp16) and instruction
                   embeddings (one per unique string) are cached on disk, keyed by the data and
                   the trunk's checksum, so epochs train only the neck + head
    samples        every tick of every episode as a window; batches of windows as tensors
    paraphrases    equivalent wordings of the recorded instructions, drawn per training window
    state          training_state/ for resume (safetensors + JSON, kill-safe) and metrics.csv
    step           one optimisation step (TrainingStep + train_step) and a validation pass
    distributed    one process or several (torchrun / accelerate / srun): ranks, collectives
    trainer        AdamW over cached windows: validation split by episode, metrics CSV, best
                   checkpoint by validation MAE, resumable, seeded; DDP under torchrun
    metrics        masked chunk MAE in physical units per chunk step / dimension / overall

The CLI verbs `python -m vla_nav train`, `eval` and `publish` (vla_nav/tools) are thin shells
over these.
"""

KEEP_CHOICES = ('best', 'last')   # TrainConfig.keep / train --keep: which epoch the output holds
