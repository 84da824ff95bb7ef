#!/usr/bin/env bash
# The one prepared training run for a GPU machine (a device draw): train the task models larger (CONFIGS) or
# longer (CONFIGS empty) on the GPU and bring back what the export writes.
#
# Larger (the default): each task in $TASKS (countdown,pycode) runs `python benchmarks/train_task_models.py
# --configs $CONFIGS --sweep-minutes $SWEEP_MINUTES --final-minutes $MINUTES --device $DEVICE`: a model of each
# configuration D:LAYERS:LR:BATCH trained from scratch (default 192:6:1e-3:256, 2.7M parameters against the
# committed 0.8M; a forward pass on 2 CPU cores takes 2.6 times as long, 528 against 201 ms for 256 countdown
# rows and 1.81 against 0.70 s for 256 pycode rows, so the CPU reruns of the benchmarks on it still fit a
# session), the best continued to $MINUTES in all; its cosine horizon is a 12-step speed probe on the device
# times the minutes. Its best weights replace checkpoints/<task>/ only where they beat the committed ones on the
# same held-out set, both in half precision (TRAINING.md then says what they replaced); otherwise the folder
# comes back unchanged and <task>-record.json says by how much it lost.
#
# Longer (CONFIGS= empty): `--continue-minutes $MINUTES`: the committed weights warm-started with a new AdamW and
# a warm-up + cosine schedule, stopping after 12 validations without a new best, exported the same way (only
# where they beat the committed ones; TRAINING.md with every stage, trainer.json with every stage's logs).
#
# The task folders come back as one file, $OUT/checkpoints.tar, to unpack over this repository's checkpoints/
# (`tar -xf checkpoints.tar -C checkpoints`), beside the logs: device.txt (torch and the GPU), device_train.log
# and <task>-train.log (every command and the trainer's output), and <task>-record.json for a larger run.
#
# The pools (training examples) must travel with the run: countdown's 400,000 take about 13 minutes to build on
# one CPU core, most of a device session. Build them here first and pack them (57 MB of pools are 6.7 MB packed,
# inside the 64 MiB a device call carries) into the ignored folder .pools/, then carry it:
#
#   python benchmarks/train_task_models.py --prepare-only --tasks countdown,pycode --work /tmp/w --cache /tmp/pools
#   mkdir -p .pools && tar -czf .pools/pools.tgz -C /tmp/pools .
#   (then the device run, carrying [".pools"]:)  bash benchmarks/device_train.sh
#
# A dry run of the plumbing on a CPU (tiny pools, a tiny model or CONFIGS= to continue, a copy of the
# checkpoints; nothing in the repository changes):
#
#   OUT=/tmp/dry DEVICE=cpu MINUTES=0.3 POOL_SCALE=0.001 VALID_EVERY=20 EXPORT=/tmp/dry/checkpoints \
#       CACHE=/tmp/dry/pools CONFIGS=32:2:1e-3:16 bash benchmarks/device_train.sh
#
# Settings (environment): OUT (where the tar goes; the device tool sets it), DEVICE (cuda), MINUTES (3.5 per
# task: two tasks fit one 10-minute device command with the export), CONFIGS (192:6:1e-3:256; empty: continue
# the committed models), SWEEP_MINUTES (with several CONFIGS, each one's first minutes; default MINUTES, i.e. one
# configuration trains once), TASKS, POOLS (.pools/pools.tgz, unpacked
# into CACHE when it exists), CACHE (the pool folder: a new one under WORK), EXPORT
# (checkpoints: on the device machine that is its own copy of the tree), WORK (a new temporary folder),
# POOL_SCALE and VALID_EVERY (unset: the recipe's pools and validation cadence).
set -euo pipefail
: "${OUT:?set OUT to the folder that collects the results}"
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-3.5}
CONFIGS=${CONFIGS-192:6:1e-3:256}  # set but empty: continue the committed models instead
SWEEP_MINUTES=${SWEEP_MINUTES:-$MINUTES}
TASKS=${TASKS:-countdown,pycode}
EXPORT=${EXPORT:-checkpoints}
WORK=${WORK:-$(mktemp -d)}
CACHE=${CACHE:-$WORK/pools}
POOLS=${POOLS:-.pools/pools.tgz}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT/src:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$CACHE" "$WORK"
if [ -f "$POOLS" ]; then tar -xzf "$POOLS" -C "$CACHE"; fi  # pools missing there are built (slowly) by the run
IFS=, read -r -a tasks <<<"$TASKS"
for task in "${tasks[@]}"; do  # a dry run exports into a copy of the committed checkpoint, never over it
    if [ ! -e "$EXPORT/$task" ]; then mkdir -p "$EXPORT" && cp -r "checkpoints/$task" "$EXPORT/$task"; fi
done
scale=()  # a dry run's tiny pools and validation cadence
if [ -n "${POOL_SCALE:-}" ]; then scale+=(--pool-scale "$POOL_SCALE"); fi
if [ -n "${VALID_EVERY:-}" ]; then scale+=(--valid-every "$VALID_EVERY"); fi
python3 -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")' | tee "$WORK/device.txt"
if [ -n "$CONFIGS" ]; then
    mode=(--configs "$CONFIGS" --sweep-minutes "$SWEEP_MINUTES" --final-minutes "$MINUTES")
else
    mode=(--continue-minutes "$MINUTES")
fi
python3 benchmarks/train_task_models.py "${mode[@]}" --device "$DEVICE" --tasks "$TASKS" \
    --work "$WORK" --cache "$CACHE" --export "$EXPORT" "${scale[@]}" 2>&1 | tee "$WORK/device_train.log"
cp "$WORK/device.txt" "$WORK/device_train.log" "$OUT/"
for task in "${tasks[@]}"; do
    cp "$WORK/$task/train.log" "$OUT/$task-train.log"
    if [ -f "$WORK/$task/record.json" ]; then cp "$WORK/$task/record.json" "$OUT/$task-record.json"; fi
done
tar -cf "$OUT/checkpoints.tar" -C "$EXPORT" "${tasks[@]}"
echo "wrote $OUT: checkpoints.tar (below), device.txt, device_train.log and each task's train log"
tar -tvf "$OUT/checkpoints.tar"
