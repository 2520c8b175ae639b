#!/usr/bin/env bash
# Where a batch-1 decode step of the 27B (random FP8 weights) spends its time: builds bench_forward and
# runs `bench_forward --profile` under Nsight Systems (CUDA-graph kernels traced per node), then
# prints the kernel time summary. Usage on the GPU machine:
#   run(command="bash tools/device/profile_decode.sh [fp8|nvfp4|bf16|fp8-block]", carry=[".deps/debs"])
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/build-gpu/out}"
BUILD="${GDN_BUILD_DIR:-$ROOT/build-gpu}"
mkdir -p "$OUT"
source tools/device/common.sh
gdn_unpack_deps /tmp/gdn-deps || true
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${CMAKE_DEPS[@]}" >/tmp/b.log 2>&1
ninja -C "$BUILD" -j16 bench_forward >>/tmp/b.log 2>&1 || { tail -30 /tmp/b.log; exit 1; }
NSYS="$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1 || true)"
"$BUILD/bench_forward" --profile --layouts "${1:-fp8}"
if [[ -n "$NSYS" ]]; then
  "$NSYS" profile -o /tmp/decode --force-overwrite true --cuda-graph-trace=node --trace=cuda "$BUILD/bench_forward" --profile --layouts "${1:-fp8}" >/tmp/nsys.log 2>&1 || tail -20 /tmp/nsys.log
  "$NSYS" stats --report cuda_gpu_kern_sum --format csv /tmp/decode.nsys-rep >"$OUT/kernels.csv" 2>/dev/null || true
  python3 - "$OUT/kernels.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
hdr = next(i for i, r in enumerate(rows) if r and r[0].startswith('Time'))
h = rows[hdr]; data = rows[hdr + 1:]
ti, ni, ci, ai = h.index('Total Time (ns)'), h.index('Name'), h.index('Instances'), h.index('Avg (ns)')
tot = sum(float(r[ti]) for r in data)
print(f"total kernel time {tot/1e6:.1f} ms over the profiled run")
for r in sorted(data, key=lambda r: -float(r[ti]))[:25]:
    print(f"{100*float(r[ti])/tot:5.1f}%  {int(r[ci]):6d} x {float(r[ai])/1e3:8.1f} us  {r[ni][:110]}")
PY
elif command -v ncu >/dev/null; then
  # No Nsight Systems: Nsight Compute's kernel duration for ~2 decode steps' worth of kernels after
  # the model's warm-up prefill and the first steps (graph nodes are profiled one by one).
  ncu --csv --metrics gpu__time_duration.sum --launch-skip "${GDN_SKIP:-3000}" --launch-count "${GDN_COUNT:-1700}" \
    "$BUILD/bench_forward" --profile --layouts "${1:-fp8}" >"$OUT/ncu.csv" 2>/tmp/ncu.err || tail -5 /tmp/ncu.err
  python3 - "$OUT/ncu.csv" <<'PY'
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
print(f"{len(data)} kernels, {tot/1e6:.2f} ms total (ns units)")
for name, (n, v) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:30]:
    print(f"{100*v/tot:5.1f}%  {n:5d} x {v/n/1e3:8.2f} us  {name}")
PY
else
  echo "neither nsys nor ncu found"
fi
