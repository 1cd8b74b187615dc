#!/usr/bin/env bash
# The 120-minute recipe (issue 12): expert data, a short base, two large DAgger rounds and ONE
# policy trained from scratch on all of it, then publish. The shape of scripts/train_v2.sh's step
# 13 (from scratch on the aggregate beat the fine-tune chain) without its 12 earlier steps: the
# intermediate models only drive the recordings. Stage times and figures: models/default/RECIPE.md.
# Usage: scripts/train_fast.sh            (from the repo root; data/ and runs/ stay untracked)
#   PUBLISH=0 scripts/train_fast.sh       # stop before the test split (a candidate, not published)
#   VALIDATE=0 scripts/train_fast.sh      # skip the validation suite (~4.5 min; model selection)
# Resumable (every step; recipe_common.sh). Seeds, train split: 0 expert training data, 1 expert
# validation bags, 3 round A, 4 round B, 100 the validation suite; test split: seed 0 in `publish`.
set -euo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1   # DDS on loopback
source "$(dirname "$0")/recipe_common.sh"   # train, suite, dagger; PY, TIERS, COMMON
RUNS=${RUNS:-runs/fast}
DATA=${DATA:-data/fast}
PUBLISH=${PUBLISH:-1}
EXPERT_EPISODES=${EXPERT_EPISODES:-1500}
ROUND_A=${ROUND_A:-1800}   # scenes the base policy drives
ROUND_B=${ROUND_B:-1500}   # scenes the round-A policy drives, the expert taking each near miss
BASE=(--set neck_layers=2 --set neck_channels=64 --set state_dim=8)
stage() { echo "[$(date -u +%T)] stage: $* ($((SECONDS / 60)) min so far)"; }

stage "1. expert data"
$PY -m vla_nav record-sim --world v2 --episodes "$EXPERT_EPISODES" --out "$DATA/expert" --split train \
    --seed 0 --workers 2
$PY -m vla_nav record-sim --world v2 --episodes 150 --out "$DATA/expert_val" --split train --seed 1 \
    --workers 2

stage "2. base policy (best epoch by expert-validation MAE)"
train "$RUNS/base" 3 --data "$DATA/expert" --val-data "$DATA/expert_val" --lr 1e-3 --threads 2 "${BASE[@]}"

stage "3. round A: the base policy drives, the expert labels every state it reaches"
dagger "$RUNS/base" 3 "$DATA/roundA" "$ROUND_A"
train "$RUNS/roundA" 2 --init "$RUNS/base" --keep last --threads 2 \
    --data "$DATA/expert" "$DATA/roundA" --val-data "$DATA/expert_val"

stage "4. round B: the round-A policy drives six tiers, the expert takes each near miss (--rescue)"
dagger "$RUNS/roundA" 4 "$DATA/roundB" "$ROUND_B" --rescue \
    --tiers goto,distractor,search,detour,multi_step,relational

stage "5. one policy from scratch on all of it, with six memory slots 1.3-4.3 s old"
train "$RUNS/fast" 3 --keep last --threads 2 --lr 1e-3 "${BASE[@]}" \
    --data "$DATA/expert" "$DATA/roundA" "$DATA/roundB" --val-data "$DATA/expert_val" \
    --set window=14 --set memory_slots=6 --set memory_stride=6
suite "$RUNS/fast"
stage "done training"
[ "$PUBLISH" = 1 ] || exit 0

stage "6. the test split, once: offline MAE, the suite at 200 scenes per tier, the fixed block"
$PY -m vla_nav record-sim --world v2 --split test --seed 0 --episodes 200 --out "$DATA/test" --workers 2
$PY -m vla_nav publish --model "$RUNS/fast" --test-data "$DATA/test" --world v2 \
    --episodes-per-tier 200 --workers 2 --publish models/default --recipe "scripts/train_fast.sh"
$PY -m vla_nav export --model models/default --out models/default/onnx
stage "done"
