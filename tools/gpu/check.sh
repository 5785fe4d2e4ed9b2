#!/usr/bin/env bash
# The whole GPU check, on the GPU machine from the repository root (after tools/gpu/bundle.sh here, with .device
# carried): unpacks Node and the runtime modules, runs the CUDA test suite (npm run test:gpu) and the end-to-end
# benchmark beside PyTorch (tools/gpu/bench.sh), and leaves the logs in $OUT (or /tmp/attend-gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/attend-gpu}"
mkdir -p "$OUT" /tmp/attend-node
tar -xJf .device/bundle.tar.xz -C /tmp/attend-node && cp -r /tmp/attend-node/pack/. . && export PATH=/tmp/attend-node/bin:$PATH
export ATTEND_CACHE_DIR=/tmp/attend-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
node --version
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  node --import tsx --test --test-concurrency=1 --test-reporter=spec test/gpu/*.test.ts > "$OUT/gpu-test.log" 2>&1
  echo "test:gpu exit $?"
  grep -E "^# |✖|failing|pass |fail " "$OUT/gpu-test.log" | head -60
fi
[ "${SKIP_BENCH:-0}" = 1 ] || bash tools/gpu/bench.sh 2>&1 | tee "$OUT/gpu-bench.log"
