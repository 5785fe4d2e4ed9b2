#!/usr/bin/env bash
# End to end on the GPU machine: a random bf16 Llama of the given shape (written by transformers), Attend's CUDA
# backend (tools/gpu/bench-e2e.ts) and transformers with SDPA (tools/gpu/bench_e2e_torch.py) on the same weights
# and lengths in the same run; prints prefill and decode tokens/s for both and their ratio.
#   SHAPE=1b LENGTHS="1024 4096" bash tools/gpu/bench.sh     (SHAPE: mini, 1b, 8b; ALENGTHS="" skips the kernels)
set -uo pipefail
cd "$(dirname "$0")/../.."
ALENGTHS="${ALENGTHS-4096 16384 65536 131072}"
if [ -n "$ALENGTHS" ]; then
  python3 tools/gpu/bench_attention_torch.py --lengths $ALENGTHS > /tmp/attn.json
  node --import tsx tools/gpu/bench-attention.ts --lengths $ALENGTHS --torch /tmp/attn.json
fi
SHAPE="${SHAPE:-1b}"
LENGTHS="${LENGTHS:-1024 4096 16384}"
DIR=/tmp/attend-bench-$SHAPE
[ -f "$DIR/config.json" ] || python3 tools/gpu/bench_e2e_torch.py --make "$DIR" --shape "$SHAPE" --tokenizer models/attend-mini-draft
python3 tools/gpu/bench_e2e_torch.py --model "$DIR" --lengths $LENGTHS --decode 64 > /tmp/torch.json
node --import tsx tools/gpu/bench-e2e.ts --model "$DIR" --lengths $LENGTHS --decode 64 --torch /tmp/torch.json
# Where the time goes (each launch synchronised: slower, for the breakdown only).
[ "${PROFILE:-1}" = 1 ] && ATTEND_CUDA_PROFILE=1 node --import tsx tools/gpu/bench-e2e.ts --model "$DIR" --lengths 4096 --decode 16
