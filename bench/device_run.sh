#!/usr/bin/env bash
# Issue 26 on one GPU in under 10 minutes: every measurement the CPU could not make, each
# written into $OUT the moment it exists (a run cut short keeps what it finished).
#
#   bash bench/device_run.sh            # from the repository root, on the GPU machine
#
# Before the call, on the machine that sends the working tree (../shared does not travel, a
# shared/ folder inside the checkout does):
#   mkdir -p shared/bench && cp ../shared/bench/ref_darts_unet.py shared/bench/
# or set REF=PATH. Without the reference, bench.search_step is skipped (its ratios need it).
#
# Python packages. The GPU image has torch 2.11, pandas, tabulate, scipy, matplotlib, pillow,
# opencv and pytest, but not nibabel, SimpleITK, pydicom, albumentations or thop. `import data`
# needs none of them (data.io.lazy imports the file formats' packages at their first file), and
# the benches and cuda tests build networks and synthetic data only. What reads the sample data
# needs some: `search.py --dataset dsb2018` (step 6) reads PNGs with SimpleITK and augments with
# albumentations; the `lwnas predict` CUDA test reads them too. For Python 3.12:
#   simpleitk==2.5.7 (52.8 MB) albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4
#   pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 simsimd==6.5.16
#   stringzilla==5.3.2                   (nibabel and pydicom only for the volume data sets)
# fetched into .whl/ with bench/device_wheels.sh, and `.whl` named in the call's carry (64 MiB
# with the tree: the script prints the size; WITH_SIMPLEITK=0 leaves SimpleITK out, and step 6
# then says "skipped"). This script installs whatever .whl/ holds.
#
# Steps, in order of importance, each within its own time limit and all within BUDGET seconds
# (default 540; the device tool stops a command at 600):
#   1. environment (GPU, driver, torch, which packages are missing)
#   2. bench.search_step at the issue configuration (b2, 256x256, C16, 2/3/2, 8 ops, first
#      order): reference, fused, batched, batched K=4, and the four CUDA-graph variants
#      (fused, batched, batched K=4, batched with checkpointed cells: the memory target)
#   3. bench.search_first_steps: the search loop with dsb2018's default flags, first step and
#      steady step: defaults, --cells batched, --cuda-graph, both (what decides the default
#      cells and whether --cuda-graph earns a place in the presets), --deterministic, bf16
#   4. bench.op_latency --precision fp32 bf16: per op, fused op and kernel, cuDNN autotuning
#      on and off: names what makes the bf16 search slow
#   5. pytest -m cuda (the cuda test files; the search loop with --cuda-graph among them)
#   6. search.py --dataset dsb2018 --device cuda, 3 epochs: default flags, --cells batched,
#      --cuda-graph (if SimpleITK and albumentations import); log.csv's seconds per epoch
#   7. bench.models3d (unet3d, mfsnet, dmfnet; fp32 and bf16)
#   8. bench.search_step at the CHAOS preset's layout (3/3/3, 256x256): the 2 GPU-hour target
#   9. bench.search_step's other variants (per-edge, channels-last, compile, bf16), as time allows
# Files in $OUT (at most 8 come back): device.md (every bench section, as BENCHMARKS.md takes
# them), run.log (all output), pytest.txt, search_log_{default,batched,cuda_graph}.csv (step 6).
#
# DEVICE=cpu SMOKE=1 bash bench/device_run.sh runs every step at toy sizes on a CPU, to check
# the script itself before spending device time on it.
set -u
DEVICE=${DEVICE:-cuda}
if [ "${SMOKE:-0}" = 1 ]; then
    SMALL_STEP=(--size 16 --layout 1/0/1 --steps 1 --warmup 1)
    SMALL_OPS=(--size 16 --repeats 1 --warmup 1)
    SMALL_FIRST=(--size 16 --steps 4)
    SMALL_3D=(--size 16 --volume 24x24x16 --repeats 1)
    # a CPU's search.py spends ~20 s of CPU time on start-up, data checks and costs alone
    SMALL_SEARCH=(--epochs 1 --image-size 32 --layout 1/0/1 --channels 8) SEARCH_LIMIT=120
    # on a shared CPU, OpenMP threads spin on barriers while descheduled (a 16x16 search step
    # took 12 s on 2 threads at load 5, 0.5 s on one)
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    SMALL_STEP=() SMALL_OPS=() SMALL_FIRST=() SMALL_3D=()
    SMALL_SEARCH=(--epochs 3) SEARCH_LIMIT=40
fi
OUT=${OUT:-runs/device}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-540}
START=$(date +%s)
MD="$OUT/device.md"
LOG="$OUT/run.log"
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
REF=${REF:-}
for candidate in shared/bench/ref_darts_unet.py ../shared/bench/ref_darts_unet.py; do
    [ -z "$REF" ] && [ -f "$candidate" ] && REF=$candidate
done

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME LIMIT COMMAND...: run within min(LIMIT, what the budget has left), log, summarise
step() {
    local name=$1 limit=$2
    shift 2
    local remaining
    remaining=$(left)
    if [ "$remaining" -lt 20 ]; then
        echo "SKIPPED $name: the ${BUDGET} s budget is spent" | tee -a "$LOG"
        return
    fi
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    echo "=== $name (limit ${limit} s, $(date +%T))" | tee -a "$LOG"
    local began=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" >>"$LOG" 2>&1
    local code=$?
    local status="exit $code"
    [ $code -eq 124 ] && status="stopped at its ${limit} s limit"
    echo "--- $name: $status after $(( $(date +%s) - began )) s" | tee -a "$LOG"
}

# 1. environment
{
    echo "## environment ($(date -u +%F))"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    "$PY" - <<'EOF'
import importlib.util, platform, torch
print(f"Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
def absent(name):
    try:
        return importlib.util.find_spec(name) is None
    except ImportError:
        return True
missing = [m for m in ("nibabel", "SimpleITK", "pydicom", "albumentations", "thop", "pandas",
                       "tabulate", "pytest") if absent(m)]
print("missing packages:", ", ".join(missing) or "none")
EOF
    echo "reference supernet: ${REF:-not found (search_step skipped)}"
} 2>&1 | tee -a "$LOG"

SEARCH_STEP=(-m bench.search_step --device "$DEVICE" --steps 5 --warmup 2 --variant-timeout 40
    --output "$MD" ${SMALL_STEP[@]+"${SMALL_STEP[@]}"})
if [ -n "$REF" ]; then
    step search_step 170 "$PY" "${SEARCH_STEP[@]}" --reference "$REF" --variants reference \
        "ours, fused edges" "ours, batched" "ours, batched + partial channels K=4" \
        "ours, fused + CUDA graph" "ours, batched + CUDA graph" "ours, batched + K=4 + CUDA graph" \
        "ours, batched + checkpointed + CUDA graph"
fi
step search_first_steps 150 "$PY" -m bench.search_first_steps --device "$DEVICE" --variant-timeout 35 \
    --output "$MD" ${SMALL_FIRST[@]+"${SMALL_FIRST[@]}"} --variants defaults "--cells batched" \
    "--cuda-graph (one graph an epoch)" "--cells batched --cuda-graph" \
    "--deterministic (no cuDNN autotuning)" \
    "--precision bf16 (the old CUDA default)"
step op_latency 70 "$PY" -m bench.op_latency --device "$DEVICE" --precision fp32 bf16 --repeats 5 \
    --warmup 2 --variant-timeout 10 --output "$MD" ${SMALL_OPS[@]+"${SMALL_OPS[@]}"}
step pytest_cuda 80 bash -c "'$PY' -m pytest -m cuda -p no:cacheprovider -q -ra \
    tests/supernet/test_cuda.py tests/models/test_cuda.py tests/ops/test_cuda.py \
    tests/nas/train/test_cuda_graph.py tests/nas/search/test_cuda.py tests/nas/run/test_predict_cuda.py \
    2>&1 | tee '$OUT/pytest.txt'"
# the real command on the sample data; on a CPU (SMOKE) --cuda-graph is refused in one line
if "$PY" -c "import SimpleITK, albumentations" >/dev/null 2>&1; then
    for flags in "default:" "batched:--cells batched" "cuda_graph:--cuda-graph"; do
        name=${flags%%:*}
        # shellcheck disable=SC2086
        step "search_py_$name" "$SEARCH_LIMIT" "$PY" search.py --dataset dsb2018 --device "$DEVICE" --no-progress \
            --no-pictures ${flags#*:} "${SMALL_SEARCH[@]}" --out "/tmp/search-dsb2018-$name"
        cp "/tmp/search-dsb2018-$name/log.csv" "$OUT/search_log_$name.csv" 2>/dev/null
    done
else
    echo "SKIPPED search_py: SimpleITK or albumentations does not import here (bring the wheels above)" \
        | tee -a "$LOG"
fi
step models3d 50 "$PY" -m bench.models3d --device "$DEVICE" --models unet3d mfsnet dmfnet \
    --precisions fp32 bf16 --repeats 3 --warmup 1 --variant-timeout 15 --output "$MD" \
    ${SMALL_3D[@]+"${SMALL_3D[@]}"}
if [ -n "$REF" ]; then
    step search_step_chaos 50 "$PY" "${SEARCH_STEP[@]}" --reference "$REF" --layout 3/3/3 \
        --variants reference "ours, fused edges" "ours, batched + CUDA graph" \
        "ours, batched + K=4 + CUDA graph"
fi
if [ -n "$REF" ]; then
    step search_step_more 120 "$PY" "${SEARCH_STEP[@]}" --reference "$REF" --variants reference \
        "ours" "ours, fused + partial channels K=4" "ours, channels-last" \
        "ours, fused + channels-last" "ours, batched + compile (reduce-overhead)" \
        "ours, fused + bf16" "ours, batched + bf16" "ours, bf16" "ours, half the ops pruned" \
        "ours, batched + checkpointed cells"
fi
echo "=== done after $(( $(date +%s) - START )) s; results in $MD" | tee -a "$LOG"
grep -E "^\| |^## " "$MD" 2>/dev/null | cut -c1-220
