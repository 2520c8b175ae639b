#!/usr/bin/env bash
# Runs on the accelerator machine (device tool): regenerates the golden fixtures with the
# reference library and returns them as one archive under $OUT.
#   device run: bash tools/device/make_fixtures.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
python3 -c 'import torch, transformers, tokenizers, safetensors; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'
work=$(mktemp -d)
python3 tools/make_fixtures.py "$work/fixtures" 2>&1 | tee "$OUT/make_fixtures.log"
tar -C "$work" -czf "$OUT/fixtures.tar.gz" fixtures
du -sh "$work/fixtures"/*
