#!/usr/bin/env bash
# One command for a fresh Debian machine: install dependencies, build gdnserve, write the
# embedded demo model (RANDOM weights, real Qwen3.5 architecture and layout) and run it.
set -euo pipefail
cd "$(dirname "$0")"
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build gdnserve
[ -f demo-model/config.json ] || ./build/gdnserve make-demo-model --out demo-model
echo
./build/gdnserve inspect --model demo-model
echo
echo "== greedy generation on the demo model (random weights: the ids are noise)"
./build/gdnserve generate --model demo-model --tokens 248045,872,198,9707,11,1879,0,248046,198,248045,74455,198 \
  --max-tokens 32 --ignore-eos --ids
