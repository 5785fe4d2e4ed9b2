#!/usr/bin/env bash
# End to end on the GPU machine: a random bf16 Llama of the given shape (written by transformers), Attend's CUDA
# backend (tools/gpu/bench-e2e.ts) and transformers with SDPA (tools/gpu/bench_e2e_torch.py) on the same weights
# and lengths in the same run; prints prefill and decode tokens/s for both and their ratio.
#   SHAPE=1b LENGTHS="1024 4096" bash tools/gpu/bench.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
SHAPE="${SHAPE:-1b}"
LENGTHS="${LENGTHS:-1024 4096 16384}"
DIR=/tmp/attend-bench-$SHAPE
[ -f "$DIR/config.json" ] || python3 tools/gpu/bench_e2e_torch.py --make "$DIR" --shape "$SHAPE" --tokenizer models/attend-mini-draft
python3 tools/gpu/bench_e2e_torch.py --model "$DIR" --lengths $LENGTHS --decode 64 > /tmp/torch.json
node --import tsx tools/gpu/bench-e2e.ts --model "$DIR" --lengths $LENGTHS --decode 64 --torch /tmp/torch.json
