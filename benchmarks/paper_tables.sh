#!/usr/bin/env bash
# Reproduce the paper's Tables 2-7 (docs/paper.md) for one checkpoint on a GPU machine with lm-eval.
#
#   pip install torch==<your CUDA build> && pip install ".[lm-eval]"
#   bash benchmarks/paper_tables.sh GSAI-ML/LLaDA-8B-Base [OUT_DIR] [LIMIT]
#
# For every task, schedule and step count it runs
#   lm_eval --model mdm_energy --model_args "pretrained=...,schedule='SPEC',steps=N,gen_length=L,block_length=L" ...
# (LLaDA's sampler with only the per-step counts changed, as in the paper), then writes one markdown
# table per task in the paper's shape, our numbers beside the paper's, to OUT_DIR/tables.md.
# LIMIT (optional) evaluates the first LIMIT problems of each task, for a quick look.
set -euo pipefail
MODEL=${1:?usage: paper_tables.sh CHECKPOINT [OUT_DIR] [LIMIT]}
OUT=${2:-paper-tables}
LIMIT=${3:-}
mkdir -p "$OUT"
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
for row in "${TASKS[@]}"; do
  read -r task length steps <<<"$row"
  for spec in "${SCHEDULES[@]}"; do
    for n in ${steps//,/ }; do
      tag="${task}__${spec//[:,]/_}__N${n}"
      [ -e "$OUT/$tag/done" ] && continue   # resumable: finished runs are skipped
      lm_eval --model mdm_energy \
        --model_args "pretrained=${MODEL},schedule='${spec}',steps=${n},gen_length=${length},block_length=${length},device=cuda" \
        --tasks "$task" --confirm_run_unsafe_code --output_path "$OUT/$tag" ${LIMIT:+--limit "$LIMIT"}
      touch "$OUT/$tag/done"
    done
  done
done
python3 "$(dirname "$0")/paper_tables.py" "$OUT" > "$OUT/tables.md"
echo "wrote $OUT/tables.md"
