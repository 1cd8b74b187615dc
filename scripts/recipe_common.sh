# Shared steps of the recipe scripts (sourced by train_v2.sh and train_fast.sh; not run alone).
# Every function takes its paths as arguments; PYTHON, SUITE_EPISODES and VALIDATE come from the env.
# Each step is resumable: a finished train is skipped (its metrics.csv has every epoch) and an
# interrupted one resumes; record-sim skips the episodes already written; a finished suite is kept.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1   # DDS on loopback
PY=${PYTHON:-.venv/bin/python}
SUITE_EPISODES=${SUITE_EPISODES:-80}    # validation suite, per tier (seed 100, episodes 0..N-1)
VALIDATE=${VALIDATE:-1}
TIERS=goto,distractor,retarget,search,detour,multi_step,stop,relational,turn,forward
COMMON=(--batch-size 64 --hold-ticks 10 --text-noise 0.025 --seed 0 --threads 1)

train() {  # OUT EPOCHS ARGS...: skip when done, resume when interrupted
    local out=$1 epochs=$2; shift 2
    if [ -f "$out/metrics.csv" ] && [ "$(tail -n 1 "$out/metrics.csv" | cut -d, -f1)" = "$epochs" ]; then
        echo "train: $out is done"; return
    fi
    local resume=(); [ -f "$out/training_state/state.json" ] && resume=(--resume)
    $PY -m vla_nav train --out "$out" --epochs "$epochs" "${COMMON[@]}" "${resume[@]}" "$@"
}
suite() {  # MODEL: the validation suite (model selection only; VALIDATE=0 skips it in a rerun)
    [ "$VALIDATE" = 1 ] || return 0
    [ -f "$1/suite_validation/summary.json" ] && { echo "suite: $1 is done"; return; }
    $PY -m vla_nav eval-sim --suite --validation --model "$1" --episodes-per-tier "$SUITE_EPISODES" \
        --tiers "$TIERS" --workers 2 --out "$1/suite_validation"
}
dagger() {  # DRIVER SEED OUT EPISODES [ARGS...]: scenes the policy drives, labelled by the expert
    $PY -m vla_nav record-sim --world v2 --driver "$1" --episodes "$4" --split train --seed "$2" \
        --out "$3" --workers 2 "${@:5}"
}
