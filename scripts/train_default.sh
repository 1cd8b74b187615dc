#!/usr/bin/env bash
# Reproduce models/default: record expert data, train, record DAgger data with that model driving,
# train again on both, evaluate, publish.
# Usage: scripts/train_default.sh   (from the repo root; data/ and runs/ stay untracked)
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
TRAIN_EPISODES=${TRAIN_EPISODES:-1500}
DAGGER_EPISODES=${DAGGER_EPISODES:-1500}
VAL_EPISODES=${VAL_EPISODES:-150}
TEST_EPISODES=${TEST_EPISODES:-200}
# what both training stages share (the trunk cache of each data folder is built once)
RECIPE=(--val-data data/val --seed 0 --epochs 10 --batch-size 64 --lr 1e-3 --hold-ticks 10
        --text-noise 0.025 --paraphrases sim --instruction-loss 0.1
        --set neck_layers=2 --set neck_channels=64)

# 1. expert data (not counted in the training budget; resumable). Validation is a separate
#    train-split recording (other seed): the best epoch is chosen on unseen train-split scenes,
#    never on test.
$PY -m vla_nav record-sim --episodes "$TRAIN_EPISODES" --out data/train --split train --seed 0 --workers 2
$PY -m vla_nav record-sim --episodes "$VAL_EPISODES" --out data/val --split train --seed 1 --workers 2
$PY -m vla_nav record-sim --episodes "$TEST_EPISODES" --out data/test --split test --seed 0 --workers 2

# 2. stage 1: behaviour cloning on the expert's own drives (~16 min)
$PY -m vla_nav train --data data/train --out runs/stage1 --max-minutes 18 "${RECIPE[@]}"

# 3. DAgger data: the stage-1 policy drives new train-split scenes (seed 3), the expert labels
#    every state it reaches (~5 min; recording, not counted in the training budget)
$PY -m vla_nav record-sim --episodes "$DAGGER_EPISODES" --out data/dagger --split train --seed 3 \
    --workers 2 --driver runs/stage1

# 4. stage 2: the same recipe on the expert data + the DAgger data (~25 min)
$PY -m vla_nav train --data data/train data/dagger --out runs/default --max-minutes 27 "${RECIPE[@]}"

# 5. evaluation + publish (offline MAE, eval-sim, fixed block -> models/default/eval.json)
$PY -m vla_nav.training.default_model --model runs/default --test-data data/test \
    --episodes 100 --seed 0 --publish models/default \
    --recipe "scripts/train_default.sh (TRAIN_EPISODES=$TRAIN_EPISODES, DAGGER_EPISODES=$DAGGER_EPISODES)"
