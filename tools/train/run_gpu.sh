#!/usr/bin/env bash
# attend-mini on the GPU machine (see tools/train/README.md).
#
#   bash tools/train/run_gpu.sh start [train.py args]   launch the full run in the background (setsid)
#   bash tools/train/run_gpu.sh wait MINUTES            print the log until the run is done or MINUTES pass
#   bash tools/train/run_gpu.sh post [MINUTES]          wait for the run, then remake the test references of the
#                                                       new export (bundled logits; press oracle if .oracle/ is there;
#                                                       trained press parts with PARTS_TEXT=FILE)
#   bash tools/train/run_gpu.sh collect [FIRST_PART]    copy results (<= 4 parts of 15 MiB + logs) to $OUT
#   bash tools/train/run_gpu.sh status
#   bash tools/train/run_gpu.sh smoke                   short end-to-end test (~3 min), results to $OUT
#
# The run directory (default /tmp/attend-run) lives on the GPU machine's disk while it is held;
# ckpt.pt there is a full checkpoint (train.py --resume /tmp/attend-run/ckpt.pt).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN_DIR="${RUN_DIR:-/tmp/attend-run}"
OUT="${OUT:-/tmp/attend-out}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
mkdir -p "$RUN_DIR" "$OUT"
mode="${1:-}"; shift || true

pack() {
  # export/ (laid out like the repository) -> result.tar.xz -> parts of 15 MiB
  cd "$RUN_DIR" || return 1
  cp -f train.log export/tools/train/run/train.log 2>/dev/null
  rm -rf parts result.tar.xz; mkdir -p parts
  tar -C export -cf - . | xz -T0 -6 --block-size=4MiB > result.tar.xz
  split -b 15M -d -a 2 result.tar.xz parts/result.tar.xz.part
  (cd parts && sha256sum result.tar.xz.part* > ../MANIFEST.txt)
  sha256sum result.tar.xz >> MANIFEST.txt
  ls -la parts
  cd - >/dev/null
}

case "$mode" in
  _run)
    python3 tools/train/train.py --out "$RUN_DIR" "$@"
    rc=$?
    echo "train.py exit code $rc"
    if [ -d "$RUN_DIR/export" ]; then pack; fi
    echo "$rc" > "$RUN_DIR/DONE"
    ;;
  start)
    if [ -f "$RUN_DIR/pid" ] && kill -0 "$(cat "$RUN_DIR/pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$RUN_DIR/pid"))"; exit 0
    fi
    rm -rf "$RUN_DIR/DONE" "$RUN_DIR/MANIFEST.txt" "$RUN_DIR/parts" "$RUN_DIR/result.tar.xz" "$RUN_DIR/export"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    setsid nohup bash tools/train/run_gpu.sh _run "$@" > "$RUN_DIR/train.log" 2>&1 < /dev/null &
    echo $! > "$RUN_DIR/pid"
    echo "started pid $(cat "$RUN_DIR/pid"), log $RUN_DIR/train.log"
    ;;
  wait)
    mins="${1:-9}"
    end=$(( $(date +%s) + ${mins%.*} * 60 ))
    [ "${mins#*.}" != "$mins" ] && end=$(( end + 6 * ${mins#*.} ))
    shown=0
    while :; do
      if [ -f "$RUN_DIR/train.log" ]; then
        n=$(wc -l < "$RUN_DIR/train.log")
        if [ "$n" -gt "$shown" ]; then sed -n "$((shown + 1)),${n}p" "$RUN_DIR/train.log"; shown=$n; fi
      fi
      if [ -f "$RUN_DIR/DONE" ]; then echo "RUN DONE (exit $(cat "$RUN_DIR/DONE"))"; break; fi
      if [ "$(date +%s)" -ge "$end" ]; then echo "WAIT TIMEOUT (run still going)"; break; fi
      sleep 10
    done
    ;;
  collect)
    first="${1:-0}"
    if [ ! -f "$RUN_DIR/DONE" ]; then echo "run not finished yet (no $RUN_DIR/DONE): use wait first"; tail -3 "$RUN_DIR/train.log"; exit 1; fi
    if [ ! -f "$RUN_DIR/MANIFEST.txt" ]; then
      if [ -d "$RUN_DIR/export" ]; then pack; else echo "nothing to collect"; tail -30 "$RUN_DIR/train.log"; exit 1; fi
    fi
    cp -f "$RUN_DIR/MANIFEST.txt" "$OUT/"
    cp -f "$RUN_DIR/train.log" "$OUT/" 2>/dev/null
    cp -f "$RUN_DIR/export/tools/train/run/eval.json" "$OUT/" 2>/dev/null
    i=0
    for p in "$RUN_DIR"/parts/result.tar.xz.part*; do
      idx=$((10#${p##*part}))
      if [ "$idx" -ge "$first" ] && [ "$i" -lt 4 ]; then cp "$p" "$OUT/"; i=$((i + 1)); last=$idx; fi
    done
    total=$(ls "$RUN_DIR"/parts | wc -l)
    echo "collected parts ${first}..${last:-none} of $total (0-based); $( [ $(( ${last:-0} + 1 )) -lt "$total" ] && echo "NEXT: collect $(( ${last:-0} + 1 ))" || echo "all parts collected")"
    ls -la "$OUT"
    ;;
  post)
    # Idempotent: each step is skipped when its output exists, so a call cut short can be repeated.
    bash "$0" wait "${1:-9}"
    [ -f "$RUN_DIR/DONE" ] || exit 1
    E="$RUN_DIR/export"
    if [ ! -f "$E/test/fixtures/bundled/attend-mini-draft/reference.json" ]; then
      python3 tools/fixtures/make_model_reference.py "$E/test/fixtures/bundled" \
        "$E/models/attend-mini" "$E/models/attend-mini-draft" || exit 1
      rm -f "$RUN_DIR/MANIFEST.txt"
    fi
    if [ -d .oracle/kvpress ] && [ ! -f "$E/test/fixtures/press-oracle/attend-mini/oracle.json" ]; then
      python3 tools/fixtures/make_press_oracle.py --kvpress .oracle/kvpress --kvpress-commit "${KVPRESS_COMMIT:-8bb29b9}" \
        --h2o .oracle/modify_llama.py --h2o-commit "${H2O_COMMIT:-ac75c2a}" \
        --model "$E/models/attend-mini" --out "$E/test/fixtures/press-oracle/attend-mini" || exit 1
      # the RestoreKV case's adapter names its base model by the path it was run with: the repository's, in the tree
      sed -i "s|\"$E/models/attend-mini\"|\"models/attend-mini\"|" "$E/test/fixtures/press-oracle/attend-mini/trained/restorekv/adapter_config.json"
      rm -f "$RUN_DIR/MANIFEST.txt"
    fi
    # PARTS_TEXT=FILE: also the trained press parts of the new export (tools/press_training/run_all.sh)
    if [ -n "${PARTS_TEXT:-}" ] && [ -d .oracle/kvpress ] && [ ! -d "$E/models/press-parts/attend-mini" ]; then
      bash tools/press_training/run_all.sh "$E/models/attend-mini" "$PARTS_TEXT" "$RUN_DIR/parts-work"
      mkdir -p "$E/models/press-parts/attend-mini" "$E/tools/press_training/runs/attend-mini"
      for d in "$RUN_DIR"/parts-work/*/; do cp -r "$d" "$E/models/press-parts/attend-mini/"; done
      # the logs as the repository keeps them (*.log is ignored): runs/attend-mini/<press>.txt
      for f in "$RUN_DIR"/parts-work/*.log; do grep -v "Loading weights" "$f" > "$E/tools/press_training/runs/attend-mini/$(basename "$f" .log).txt"; done
      rm -f "$RUN_DIR/MANIFEST.txt"
    fi
    [ -f "$RUN_DIR/MANIFEST.txt" ] || pack
    ;;
  status)
    ls -la "$RUN_DIR"; tail -5 "$RUN_DIR/train.log" 2>/dev/null; cat "$RUN_DIR/DONE" 2>/dev/null
    ;;
  smoke)
    # ~3 minutes: real data pipeline + tokenizer training, eager and compiled throughput of the real
    # model shapes, then a tiny end-to-end run (train, eval, export, transformers reload check).
    S=/tmp/attend-smoke; rm -rf "$S"; mkdir -p "$S/c"
    {
      date +%T
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)"
      ST="${SMOKE_STAGES:-ABC}"
      if [[ $ST == *A* ]]; then
        timeout 20 python3 tools/train/bench_attn.py || echo "ATTN BENCH FAILED"
        echo "== A: tokenizer + eager throughput (mini + draft, 2K and 8K)  $(date +%T)"
        timeout -s TERM 55 python3 tools/train/train.py --out "$S/r" --bench 6 --compile 0 --workers 8 --bench-tag bench_eager || echo "STAGE A FAILED/TIMEOUT"
      fi
      if [[ $ST == *B* ]]; then
        echo "== B: compiled throughput at 8K  $(date +%T)"
        timeout -s TERM 45 python3 tools/train/train.py --out "$S/r" --reuse-tokens 1 --bench 5 --compile 1 --short-seq-len 8192 \
          --workers 8 --bench-tag bench_compiled || echo "STAGE B FAILED/TIMEOUT"
      fi
      if [[ $ST == *C* ]]; then
        echo "== C: tiny end-to-end  $(date +%T)"
        cp "$S/r/train_tokens.npy" "$S/r/heldout_tokens.npz" "$S/r/tokenizer.json" "$S/c/" 2>/dev/null
        timeout -s TERM 70 python3 tools/train/train.py --out "$S/c" --reuse-tokens 1 --preset tiny \
          --seq-len 1024 --short-seq-len 512 --short-frac 0.3 --tokens-per-step 16384 --max-steps 40 --train-minutes 0.4 \
          --warmup 10 --compile 0 --workers 4 --eval-lengths 512,1024 --eval-n-depth 1 --eval-n-other 2 --gen-budget-s 6 \
          --ppl-max-windows 20 --quick-eval-minutes 0.05 --ckpt-minutes 0.1 || echo "STAGE C FAILED"
        ls -la "$S/c" "$S/c/export/models/attend-mini" "$S/c/export/models/attend-mini-draft"
        (RUN_DIR="$S/c"; cd "$S/c" && tar -C export -cf - . | xz -T0 -6 | wc -c | xargs echo "packed export bytes:")
      fi
      date +%T
    } 2>&1 | tee "$OUT/smoke.log"
    cp -f "$S/r/tokenizer.json" "$OUT/" 2>/dev/null
    cp -f "$S/c/export/models/attend-mini/config.json" "$OUT/config_tiny.json" 2>/dev/null
    cp -f "$S/r/bench_eager.json" "$S/r/bench_compiled.json" "$OUT/" 2>/dev/null
    cp -f "$S/c/export/tools/train/run/eval.json" "$OUT/eval_tiny.json" 2>/dev/null
    cp -f "$S/c/export/models/attend-mini/README.md" "$OUT/card_tiny.md" 2>/dev/null
    cp -f "$S/c/export/models/attend-mini/loss.png" "$OUT/loss_tiny.png" 2>/dev/null
    ls -la "$OUT"
    ;;
  *)
    sed -n 2,12p "$0"; exit 2
    ;;
esac
