#!/usr/bin/env bash
# The v2-world candidate recipe (issue 12, in progress): record expert data in the v2 world, train
# a goal-feature policy (state_dim 8), and score it on the VALIDATION suite (train split, seed 100).
# The test split is not touched here: it is run once, by `publish`, for a model that is published.
# Usage: scripts/train_v2.sh   (from the repo root; data/ and runs/ stay untracked; resumable:
# record-sim skips episodes already written, the trunk cache is reused, `train --resume` continues)
set -euo pipefail
# DDS stays on loopback (nothing here starts ROS nodes, but any tool that did would use these)
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
PY=${PYTHON:-.venv/bin/python}
TRAIN_EPISODES=${TRAIN_EPISODES:-1500}
VAL_EPISODES=${VAL_EPISODES:-150}
SUITE_EPISODES=${SUITE_EPISODES:-40}      # per tier, validation seeds
OUT=${OUT:-runs/v2}
RESUME=()
[ -f "$OUT/training_state/state.json" ] && RESUME=(--resume)

# 1. data: train split, seed 0 (training) and seed 1 (epoch selection); never the test split
$PY -m vla_nav record-sim --world v2 --episodes "$TRAIN_EPISODES" --out data/v2train --split train --seed 0 --workers 2
$PY -m vla_nav record-sim --world v2 --episodes "$VAL_EPISODES" --out data/v2val --split train --seed 1 --workers 2

# 2. train: the v1 default's architecture (FiLM neck 64 x 2, LSTM head) + the goal features
$PY -m vla_nav train --data data/v2train --val-data data/v2val --out "$OUT" --seed 0 "${RESUME[@]}" \
    --max-minutes 60 --epochs 8 --batch-size 64 --lr 1e-3 --hold-ticks 10 --text-noise 0.025 \
    --set neck_layers=2 --set neck_channels=64 --set state_dim=8

# 3. the validation suite (model selection only; figures go to $OUT/suite_validation)
#    (the held-out tiers are test-only; turn and forward with any angle / distance stand in for numbers)
$PY -m vla_nav eval-sim --suite --validation --model "$OUT" --episodes-per-tier "$SUITE_EPISODES" \
    --tiers goto,distractor,retarget,search,detour,multi_step,stop,relational,turn,forward \
    --workers 2 --out "$OUT/suite_validation"
