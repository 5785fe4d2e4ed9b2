#!/usr/bin/env bash
# Packs what the GPU check (tools/gpu/check.sh) needs beyond the working tree into .device/bundle.tar.xz (ignored by
# git): this machine's Node binary, the runtime node_modules with tsx (without the benchmark peers and type
# packages), and models/attend-mini-draft. Run from anywhere:  bash tools/gpu/bundle.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build >/dev/null
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/pack" .device
cp "$(command -v node)" "$stage/bin/node"
strip "$stage/bin/node" 2>/dev/null || true
paths=$(ls -d node_modules/* | grep -vE 'onnxruntime|@typescript|/typescript$|usearch|playwright|vega|/d3-|@types|/\.')
tar -cf - $paths models/attend-mini-draft | tar -xf - -C "$stage/pack"
tar -cJf .device/bundle.tar.xz -C "$stage" .
rm -rf "$stage"
echo ".device/bundle.tar.xz: $(du -m .device/bundle.tar.xz | cut -f1) MiB"
