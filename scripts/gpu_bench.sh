#!/usr/bin/env bash
# The GPU figures of the README ("Measured on a data-centre GPU"): bench of models/default and of the
# full-size Kosmos-2 backbone (random weights) on ONNX Runtime's CPU, CUDA and TensorRT providers.
# Needs onnxruntime-gpu (its CUDA 13 build: 1.31.1 was used) in place of onnxruntime, the CUDA 13
# libraries it loads (cuBLAS, cuDNN, cuRAND, cudart: e.g. the nvidia-* wheels a CUDA torch brings,
# on LD_LIBRARY_PATH), TensorRT 10's libnvinfer for the tensorrt rows, and torch + transformers
# for the one-off Kosmos-2 export (about 7 GB under $VLA_NAV_CACHE).
# Usage: scripts/gpu_bench.sh [OUT]      (one JSON per run in OUT, default runs/gpu_bench)
set -uo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
PY=${PYTHON:-python3}
OUT=${1:-runs/gpu_bench}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt"
$PY -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())" > "$OUT/onnxruntime.txt"
run() {  # name, bench arguments...
    local name=$1; shift
    $PY -m vla_nav bench --json "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
    echo "$name: exit $? $(grep -o '"provider": "[A-Za-z]*"' "$OUT/$name.json")"
}
run default_cpu_fp32 --provider cpu
run default_cuda_fp32 --provider cuda
run default_cuda_fp16 --provider cuda --precision fp16
run default_tensorrt_fp16 --provider tensorrt
run kosmos2_cuda_fp32 --backbone kosmos2 --provider cuda --steps 50
run kosmos2_cuda_fp16 --backbone kosmos2 --provider cuda --precision fp16 --steps 50
run kosmos2_tensorrt_fp16 --backbone kosmos2 --provider tensorrt --steps 50
