#!/usr/bin/env bash
# One command for a fresh Debian machine: install dependencies, build gdnserve, write the
# embedded demo model (RANDOM weights, real Qwen3.5 architecture and layout) and run it.
set -euo pipefail
cd "$(dirname "$0")"
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build gdnserve
[ -f demo-model/tokenizer.json ] || ./build/gdnserve make-demo-model --out demo-model
echo
./build/gdnserve inspect --model demo-model
echo
echo "== a chat turn on the demo model: tokenizer, chat template, prefill, sampling, streaming"
echo "== (its weights are RANDOM: the reply is noise)"
./build/gdnserve generate --model demo-model --chat --prompt "Hello! What can you do?" \
  --max-tokens 48 --temperature 0.7 --top-p 0.8 --top-k 20 --seed 42
