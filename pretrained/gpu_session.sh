#!/usr/bin/env bash
# The one command run on a lent GPU machine (2026-11-26): longer training of the shipped
# recipe than the 2-core CPU affords, plus a seed spread of the shipped stage 5 on the machine's CPU cores.
#
#   A  stage 4's recipe continued from runs/mnist_k512_stage4 (no lateral penalty) for as many epochs as
#      fit the time left, on the GPU (--device cuda). Its length is chosen from a measured step time.
#   B  one epoch of the lateral L1 penalty from A, lateral_l1 = 60 (the shipped stage 5's) and 40,
#      two processes side by side on the GPU.
#   S  beside A, on the CPU cores: stage 5 (lateral_l1 60, one epoch, default numerics) from stage 4 at
#      seeds 4..7, each evaluated like the shipped model (T = 64, 10k test images, probe fit on 60k).
#
# It expects the device tool's layout: python3 with torch, the bundled MNIST pickle under
# .devcarry/site/mnist and runs/mnist_k512_stage4 carried. Everything it makes lands in
# $OUT/results.tar.gz. DRY=1 runs the same steps tiny, on the CPU, to check the script itself.
set -u
START=$(date +%s)
REPO=$PWD
OUT=${OUT:-$REPO/out/gpu_session}
BUDGET=${BUDGET:-540}          # seconds this script may take, end to end
DEVICE=${DEVICE:-cuda}
DRY=${DRY:-0}
WORK=$REPO/out/gpu_work
mkdir -p "$OUT" "$WORK"
elapsed() { echo $(( $(date +%s) - START )); }
log() { echo "[$(elapsed) s] $*"; }

if [ "$DRY" = 1 ]; then
    LIMIT='"train_limit": 1000,'; EVAL_ARGS="--limit 200 --probe-train 1000"; BATCHES_PER_EPOCH=10
else
    LIMIT=''; EVAL_ARGS="--probe-train 60000"; BATCHES_PER_EPOCH=600
fi

. "$REPO/pretrained/device_env.sh"

# config NAME INIT SEED EPOCHS LATERAL_L1 DEVICE: stage 4's recipe with these changes, default numerics.
config() {
    cat > "$WORK/$1.json" <<EOF
{"model": {"family": "poisson", "n_latents": 512, "max_spike_count": 15, "u_max": 4.0, "hard_upper_clamp": true},
 "train": {"data": "mnist", $LIMIT "epochs": $4, "batch_size": 100, "t_train": 16, "learning_rate": 0.0005,
           "temperature_end": 0.07, "grad_clip": 300.0, "beta": 0.7, "seed": $3, "num_threads": 2,
           "init_from": "$2", "temperature_start": 0.07, "beta_start": 0.7, "warm_start_max": 64,
           "lateral_l1": $5, "device": "$6"}}
EOF
}

calc() { "$PY" -c "import math; print($1)"; }

# S: the seed spread of stage 5, on the CPU cores (3 threads each), in the background.
SIDE_PIDS=()
for seed in ${SIDE_SEEDS:-4 5 6 7}; do
    config "s5_seed$seed" runs/mnist_k512_stage4 "$seed" 1 60.0 cpu
    (OMP_NUM_THREADS=3 ipvae train --config "$WORK/s5_seed$seed.json" --out "$WORK/s5_seed$seed" --threads 3 --no-progress \
        > "$WORK/s5_seed$seed.train.log" 2>&1 \
     && OMP_NUM_THREADS=3 ipvae eval "$WORK/s5_seed$seed" --t-test 64 $EVAL_ARGS --json \
        > "$WORK/s5_seed$seed.eval.json" 2> "$WORK/s5_seed$seed.eval.log") &
    SIDE_PIDS+=($!)
done

# A's step time: 10 and 60 steps, so that start-up (CUDA, data) cancels.
config probe runs/mnist_k512_stage4 4 1 0.0 "$DEVICE"
timed() { local t0; t0=$(date +%s.%N); "$@" > /dev/null 2>"$WORK/probe.err" || { tail -5 "$WORK/probe.err"; return 1; }; calc "$(date +%s.%N) - $t0"; }
T10=$(timed ipvae train --config "$WORK/probe.json" --out "$WORK/probe10" --max-steps 10 --no-progress) || exit 1
T60=$(timed ipvae train --config "$WORK/probe.json" --out "$WORK/probe60" --max-steps 60 --no-progress) || exit 1
STEP=$(calc "max(($T60 - $T10) / 50, 1e-3)")
log "probe: 10 steps $T10 s, 60 steps $T60 s, $STEP s per step on $DEVICE"

# A gets what is left after B (one epoch, two processes at once: 1.5x, plus start-up) and a margin.
LEFT=$(( BUDGET - $(elapsed) ))
B_SECONDS=$(calc "int($STEP * $BATCHES_PER_EPOCH * 1.5 + 30)")
A_SECONDS=$(( LEFT - B_SECONDS - 40 ))
A_EPOCHS=$(calc "max(0, min(30, int(($A_SECONDS - 15) / ($STEP * $BATCHES_PER_EPOCH + 0.5))))")
log "left $LEFT s: A $A_EPOCHS epochs in about $A_SECONDS s, B about $B_SECONDS s"
if [ "$A_EPOCHS" -ge 1 ]; then
    config stageA runs/mnist_k512_stage4 4 "$A_EPOCHS" 0.0 "$DEVICE"
    timeout -s INT "$A_SECONDS" "$PY" -m ipvae.cli train --config "$WORK/stageA.json" --out "$WORK/stageA" --no-progress \
        > "$WORK/stageA.log" 2>&1
    log "A exit $?: $(tail -1 "$WORK/stageA.log")"
    B_PIDS=()
    for l1 in 60 40; do
        config "stageB_l1_$l1" "$WORK/stageA" 5 1 "$l1.0" "$DEVICE"
        ipvae train --config "$WORK/stageB_l1_$l1.json" --out "$WORK/stageB_l1_$l1" --no-progress \
            > "$WORK/stageB_l1_$l1.log" 2>&1 &
        B_PIDS+=($!)
    done
    wait "${B_PIDS[@]}"
    log "B done: $(tail -qn1 "$WORK"/stageB_*.log | tr '\n' ' ')"
fi
any_alive() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
while [ "$(elapsed)" -lt $(( BUDGET - 15 )) ] && any_alive "${SIDE_PIDS[@]}"; do sleep 2; done
for pid in "${SIDE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && { log "side job $pid still running: stopped"; pkill -P "$pid"; }; done
log "all done"
for run in "$WORK"/stageA "$WORK"/stageB_* "$WORK"/s5_seed*; do
    [ -d "$run" ] && rm -f "$run/train_state.safetensors"
done
rm -rf "$SHIM" "$WORK"/probe10 "$WORK"/probe60
tar -czf "$OUT/results.tar.gz" -C "$WORK/.." "$(basename "$WORK")"
log "results: $(du -h "$OUT/results.tar.gz" | cut -f1)"
