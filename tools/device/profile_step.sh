#!/usr/bin/env bash
# Where a step of the 27B (random weights) spends its GPU time, kernel by kernel: builds
# bench_forward and runs it under Nsight Compute (kernel duration only) over its CUDA profiler range:
#   decode:  2 decode steps at context 1024, batch B (default 1; CUDA-graph nodes profiled one by one);
#   prefill: one N-token prefill (after a warm-up one).
# Kernels are serialized under ncu, so the sum is GPU busy time without overlap (no launch gaps).
# Usage on the GPU machine:
#   run(command="bash tools/device/profile_step.sh [fp8|nvfp4|bf16|fp8-block] [decode B|prefill N]", carry=[".deps/debs"])
# Several profiles in one call: PROFILES="fp8:decode:1 fp8:decode:64 fp8:prefill:8192" bash tools/device/profile_step.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/build-gpu/out}"
BUILD="${GDN_BUILD_DIR:-$ROOT/build-gpu}"
mkdir -p "$OUT"
source tools/device/common.sh
if [[ ! -x "$BUILD/bench_forward" || -z "${GDN_NO_BUILD:-}" ]]; then
  gdn_unpack_deps /tmp/gdn-deps || true
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${CMAKE_DEPS[@]}" >/tmp/b.log 2>&1
  ninja -C "$BUILD" -j16 bench_forward >>/tmp/b.log 2>&1 || { tail -30 /tmp/b.log; exit 1; }
fi
command -v ncu >/dev/null || { echo "ncu not found"; exit 1; }

profile_one() {  # layout mode [tokens | batch]
  local layout="$1" mode="$2" n="$3" tag args
  if [[ "$mode" == prefill ]]; then
    args=(--profile-prefill "${n:-8192}"); tag="$layout-prefill-${n:-8192}"
  else
    args=(--profile --profile-batch "${n:-1}"); tag="$layout-decode-b${n:-1}"
  fi
  echo "== $tag"
  ncu --csv --profile-from-start off --metrics gpu__time_duration.sum \
    "$BUILD/bench_forward" "${args[@]}" --layouts "$layout" >"/tmp/ncu-$tag.csv" 2>/tmp/ncu.err || tail -5 /tmp/ncu.err
  python3 - "/tmp/ncu-$tag.csv" "$mode" <<'PY' | tee "$OUT/profile-$tag.txt"
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 5]
h = rows[0]; data = rows[1:]
ni, vi = h.index('Kernel Name'), h.index('Metric Value')
agg = collections.defaultdict(lambda: [0, 0.0])
for r in data:
    try: v = float(r[vi].replace(',', ''))
    except ValueError: continue
    name = r[ni].split('(')[0][:90]
    agg[name][0] += 1; agg[name][1] += v
tot = sum(v for _, v in agg.values())
steps = 2 if sys.argv[2] == 'decode' else 1
print(f"{len(data)} kernels, {tot/1e6/steps:.3f} ms of kernel time per step (ncu duration, serialized)")
for name, (n, v) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:32]:
    print(f"{100*v/tot:5.1f}%  {n//steps:5d} x {v/n/1e3:8.2f} us  {v/steps/1e6:7.3f} ms  {name}")
PY
}

if [[ -n "${PROFILES:-}" ]]; then
  for p in $PROFILES; do IFS=: read -r l m n <<<"$p"; profile_one "$l" "$m" "$n"; done
else
  profile_one "${1:-fp8}" "${2:-decode}" "${3:-}"
fi
