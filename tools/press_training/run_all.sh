#!/usr/bin/env bash
# Every trained press part for one model on the GPU machine: qfilter, kvzap, fastkvzip and lukv, one after another,
# each with its own log and time limit, one failure not stopping the others (restorekv is not trainable: its
# docstring says why). Writes OUT/<press>/ (the part) and OUT/<press>.log, prints each script's tail.
#   bash tools/press_training/run_all.sh MODEL_DIR TEXT OUT [PRESSES]     (PRESSES default "qfilter kvzap fastkvzip lukv")
# Needs .oracle/kvpress (the kvpress package of NVIDIA/kvpress at 8bb29b9).
set -uo pipefail
cd "$(dirname "$0")/../.."
model="$1"; text="$2"; out="$3"; presses="${4:-qfilter kvzap fastkvzip lukv}"
limit="${PART_LIMIT_S:-240}"
mkdir -p "$out"
for p in $presses; do
  start=$(date +%s)
  timeout -s TERM "$limit" python3 "tools/press_training/$p.py" --kvpress .oracle/kvpress --model "$model" \
    --text "$text" --out "$out/$p" > "$out/$p.log" 2>&1
  rc=$?
  echo "== $p: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$out/$p.log"
  tail -n 4 "$out/$p.log"
done
