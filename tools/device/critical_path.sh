#!/usr/bin/env bash
# What each non-GEMM operation costs on the critical path of a decode step, one call on the GPU
# machine: a copy of the tree (never this one) gets an early return at the top of the host function
# of each operation below, switched by an environment variable; then tools/device/ab.sh times the
# same steps with each operation skipped, and with all of them skipped. A skipped operation leaves
# its outputs stale, so the numbers are timings only (the GEMMs stream the same bytes either way).
#   run(command="bash tools/device/critical_path.sh", carry=[".deps/debs"])
# Knobs: GDN_CP_FORWARD (bench_forward argument lists as for ab.sh's GDN_AB_FORWARD; default FP8
#   batch 1 and 64, NVFP4 batch 1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
COPY="$(mktemp -d /tmp/gdn-critical-path.XXXXXX)"
cd "$ROOT"
git ls-files -z | xargs -0 cp --parents -t "$COPY"
[[ -d .deps ]] && cp -r .deps "$COPY/"
cd "$COPY"

# file : host function : variable suffix
OPS="ops.cu:add_rmsnorm:NORM ops.cu:swiglu:SWIGLU gdn_recurrent.cu:gdn_gated_rmsnorm:GNORM
gdn_conv.cu:gdn_conv1d_silu:CONV gdn_recurrent.cu:gdn_delta_rule:DELTA attention_decode.cu:paged_attention:ATTN"
variants=base
for op in $OPS; do
  IFS=: read -r file fn var <<<"$op"
  f="src/kernels/cuda/$file"
  perl -0pi -e "s/(\nvoid $fn\([^{]*\{)/\$1 if (getenv(\"GDN_CP_SKIP_$var\") || getenv(\"GDN_CP_SKIP_ALL\")) return;/" "$f"
  grep -q "GDN_CP_SKIP_$var" "$f" || { echo "critical_path: could not patch $fn in $f"; exit 1; }
  grep -q '^#include <cstdlib>' "$f" || sed -i '1i #include <cstdlib>' "$f"
  variants="$variants|GDN_CP_SKIP_$var=1"
done
variants="$variants|GDN_CP_SKIP_ALL=1"

OUT="${OUT:-$ROOT/build-gpu/out}" GDN_BUILD_DIR="$COPY/build-gpu" GDN_AB_TESTS= GDN_AB_GEMM= GDN_AB_VARIANTS="$variants" \
  GDN_AB_FORWARD="${GDN_CP_FORWARD:---profile --profile-batch 1 --layouts fp8|--profile --profile-batch 64 --layouts fp8|--profile --profile-batch 1 --layouts nvfp4}" \
  bash tools/device/ab.sh
