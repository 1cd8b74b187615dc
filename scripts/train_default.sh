#!/usr/bin/env bash
# Reproduce models/default: record expert data, train with the default recipe, evaluate, publish.
# Usage: scripts/train_default.sh   (from the repo root; data/ and runs/ stay untracked)
set -euo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1   # DDS stays on loopback
PY=${PYTHON:-.venv/bin/python}
TRAIN_EPISODES=${TRAIN_EPISODES:-1500}   # per training recording (two of them: seeds 0 and 2)
VAL_EPISODES=${VAL_EPISODES:-150}
TEST_EPISODES=${TEST_EPISODES:-200}

# 1. data (not counted in the training budget; resumable). Two training recordings (train split,
#    seeds 0 and 2: each gets its own trunk cache). Validation is a third train-split recording
#    (seed 1): the best epoch is chosen on unseen train-split scenes, never on test.
$PY -m vla_nav record-sim --episodes "$TRAIN_EPISODES" --out data/train --split train --seed 0 --workers 2
$PY -m vla_nav record-sim --episodes "$TRAIN_EPISODES" --out data/train2 --split train --seed 2 --workers 2
$PY -m vla_nav record-sim --episodes "$VAL_EPISODES" --out data/val --split train --seed 1 --workers 2
$PY -m vla_nav record-sim --episodes "$TEST_EPISODES" --out data/test --split test --seed 0 --workers 2

# 2. the default recipe (trunk caches + training; ~30 min of the 45-minute budget on 2 CPU cores)
$PY -m vla_nav train --data data/train data/train2 --val-data data/val --out runs/default --seed 0 \
    --max-minutes 45 --epochs 10 --batch-size 64 --lr 1e-3 --hold-ticks 10 --text-noise 0.025 \
    --paraphrases sim --instruction-loss 0.1 --set neck_layers=2 --set neck_channels=64

# 3. evaluation + publish (offline MAE, eval-sim, fixed block -> models/default/eval.json)
$PY -m vla_nav publish --model runs/default --test-data data/test \
    --episodes 100 --seed 0 --publish models/default \
    --recipe "scripts/train_default.sh (TRAIN_EPISODES=$TRAIN_EPISODES x 2)"
