#!/usr/bin/env bash
# The checks that need a GPU, in one short run (~6-8 minutes on an H200), each figure printed
# beside its goal by the benchmark that measures it:
#   1. the tests that skip without CUDA (spectra of CUDA tensors in bf16/fp16, batched GPU
#      eigvalsh vs CPU float64, the untrained LLM built on the device vs on the CPU);
#   2. bench_spectral: batched eigvalsh on the GPU vs the CPU in float64, exactness;
#   3. bench_pipeline at the real widths AND real depths of LLaVA-1.5-7B and Qwen2.5-VL-7B
#      (random weights, built on the GPU) in bfloat16 and float16: metrics' share of the
#      forward time (goal: forward + metrics within 1.1x of the forward), samples/s vs batch size;
#   4. bench_score: score() end to end on the GPU, memory steady state, samples/s vs batch size;
#   5. bench_sweep at the real widths and depths in bfloat16: a 3-projector sweep against three
#      score runs (vision tower calls, time, the saving projected to 1000 samples).
# On a machine without CUDA it runs the same tests (the GPU ones report as skipped) and the
# CPU benchmarks' quick variants, and says so. Exits non-zero if any step fails or misses.
#
# Usage: scripts/gpu_check.sh            (from the repository root, its virtual env active)
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1

failed=()
step() {  # step NAME COMMAND...: run, time, and record a failure without stopping
    local name=$1; shift
    echo; echo "=== $name: $*"
    local t0=$SECONDS
    "$@"; local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    gpu=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
    gpu=0
    echo "NO CUDA DEVICE: GPU tests will be reported as skipped and the GPU benchmarks are"
    echo "replaced by their quick CPU variants; the GPU figures are NOT measured by this run."
fi

step "tests needing CUDA" python -m pytest -q -p no:cacheprovider -rs \
    tests/test_spectral.py tests/test_perf_spectral.py tests/test_seeded_init.py -k "cuda or device"

if [ "$gpu" -eq 1 ]; then
    step "bench_spectral" python scripts/bench_spectral.py --repeats 5 --no-official
    for dtype in bfloat16 float16; do
        step "bench_pipeline $dtype" python scripts/bench_pipeline.py --device cuda --dtype "$dtype" \
            --depth real --batch 1,8,32 --repeats 3
    done
    step "bench_score" python scripts/bench_score.py --family llava --device cuda --dtype bfloat16 \
        --sizes 16,256 --batch-size 8 --batch-sizes 1,8,32
    step "bench_sweep" python scripts/bench_sweep.py --device cuda --dtype bfloat16 --depth real \
        --n 3 --limit 32 --batch 8
else
    step "bench_spectral (CPU)" python scripts/bench_spectral.py --repeats 3 --no-official --threads 1
fi

echo
if [ "${#failed[@]}" -eq 0 ]; then
    echo "gpu_check: PASS$([ "$gpu" -eq 1 ] || echo ' (CPU only: no GPU figure measured)')"
else
    echo "gpu_check: FAILED/MISSED: ${failed[*]}"
    exit 1
fi
