#!/usr/bin/env bash
# Runs on the accelerator machine: regenerates the quantized-layout fixtures (issue 3) with the
# reference library and returns them as one archive under $OUT.
set -euo pipefail
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
python3 tools/make_quant_fixtures.py "$work/quant" 2>&1 | grep -v "Loading weights\|Writing model" | tee "$OUT/make_quant_fixtures.log"
tar -C "$work" -czf "$OUT/quant_fixtures.tar.gz" quant
du -sh "$work/quant"/*
