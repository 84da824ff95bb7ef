#!/usr/bin/env bash
# Reproduce the paper's Tables 2-7 (docs/paper.md) for one checkpoint on a machine with K GPUs, after
# tuning a Beta schedule per task on a subset of problems, as the paper did.
#
#   pip install torch==<your CUDA build> && pip install ".[lm-eval,dist]"
#   bash benchmarks/paper_tables.sh GSAI-ML/LLaDA-8B-Base K [OUT_DIR] [LIMIT]
#
# 1. Tune: for each task, K workers (one per GPU, --device cuda:k) share one successive-halving study at
#    N = $TUNE_STEPS (default 32): every Beta grid point on 50 random problems, the best third re-scored on
#    3x larger sets. The study lives in $STORAGE (default a SQLite file in OUT_DIR; give
#    postgresql://user@host/db to add more machines running the same command). Its best (a, b) joins the
#    schedules below as `tuned`.
# 2. Tables: every schedule x step count x task through lm-eval, the requests shared over the K GPUs
#    (accelerate launch --multi_gpu --num_processes K). Finished runs are skipped: rerun to resume.
# 3. OUT_DIR/tables.md: one markdown table per task in the paper's shape, our numbers beside the paper's.
#
# Cost for LLaDA-8B (an estimate from FLOPs, not a measurement): one model call on ~600 tokens is ~10
# TFLOP, ~0.06 s on an A100 at batch 1. The tables call the model sum(N) x problems x 9 schedules times:
# gsm8k ~50, mbpp ~40, humaneval ~13, bbh ~260, hendrycks_math ~400, minerva_math ~400 GPU-hours at batch 1
# (~1,150 in all; batch_size=8 cuts this 3-5x). Tuning adds ~100 grid points x 50 problems plus the
# finalists per task: ~5-15 GPU-hours per task at N = 32. LIMIT=100 gives a first look at 1/10-1/50 of it.
set -euo pipefail
MODEL=${1:?usage: paper_tables.sh CHECKPOINT K [OUT_DIR] [LIMIT]}
K=${2:?usage: paper_tables.sh CHECKPOINT K [OUT_DIR] [LIMIT]}
OUT=${3:-paper-tables}
LIMIT=${4:-}
TUNE_STEPS=${TUNE_STEPS:-32}
BATCH=${BATCH:-8}
mkdir -p "$OUT"
STORAGE=${STORAGE:-sqlite:///$(cd "$OUT" && pwd)/studies.db}
SCHEDULES=("linear" "sine" "sin2" "beta:0.9,0.3" "beta:1,0.2" "beta:0.9,0.9" "beta:0.8,0.8" "beta:0.3,0.9")
# task  generation-length  step counts
TASKS=(
  "mbpp 256 8,16,32,64,128,256"
  "humaneval 256 8,16,32,64,128,256"
  "gsm8k 128 8,16,32,64,128"
  "hendrycks_math 256 8,16,32,64,128,256"
  "minerva_math 256 8,16,32,64,128,256"
  "bbh 128 8,16,32,64,128"
)
if [ "$K" -gt 1 ]; then
  LAUNCH=(accelerate launch --multi_gpu --num_processes "$K" -m mdm_energy lm-eval run)
else
  LAUNCH=(mdm-energy lm-eval run)
fi
for row in "${TASKS[@]}"; do
  read -r task length steps <<<"$row"
  args="pretrained=${MODEL},trust_remote_code=True,gen_length=${length},block_length=${length},batch_size=${BATCH}"
  # 1. tune: K workers on one study; a last pass (nothing left to evaluate) prints the study's best
  tune=(mdm-energy tune --objective lm-eval --tasks "$task" --steps "$TUNE_STEPS" --strategy halving
        --model-args "$args" --storage "$STORAGE" --study "${task}-N${TUNE_STEPS}" --confirm-run-unsafe-code
        ${LIMIT:+--limit "$LIMIT"})
  for ((k = 0; k < K; k++)); do "${tune[@]}" --device "cuda:$k" > "$OUT/tune-${task}-gpu${k}.log" 2>&1 & done
  wait
  "${tune[@]}" --device cuda:0 --json --report "$OUT/tune-${task}" > "$OUT/tune-${task}.json"
  tuned=$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["best"]; print(f"beta:{b["a"]:.4g},{b["b"]:.4g}")' \
          "$OUT/tune-${task}.json")
  echo "$task: tuned schedule $tuned" | tee "$OUT/tuned-${task}.txt"
  # 2. the table's runs
  for spec in "${SCHEDULES[@]}" "$tuned"; do
    for n in ${steps//,/ }; do
      tag="${task}__${spec//[:,]/_}__N${n}"
      [ "$spec" = "$tuned" ] && tag="${task}__tuned__N${n}"
      [ -e "$OUT/$tag/done" ] && continue   # resumable: finished runs are skipped
      "${LAUNCH[@]}" --model mdm_energy \
        --model_args "${args},schedule='${spec}',steps=${n},device=cuda" \
        --tasks "$task" --confirm_run_unsafe_code --output_path "$OUT/$tag" --log_samples ${LIMIT:+--limit "$LIMIT"}
      touch "$OUT/$tag/done"
    done
  done
done
python3 "$(dirname "$0")/paper_tables.py" "$OUT" > "$OUT/tables.md"
echo "wrote $OUT/tables.md"
