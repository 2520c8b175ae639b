#!/usr/bin/env bash
# Nsight Compute on chosen kernels, one call on the GPU machine. By default it builds bench_gemm and
# profiles its --profile calls (27B shapes, BF16 / FP8 block / NVFP4 at M = 1 and 16); any other
# program of the build can be the target (GDN_NCU_TARGET). For the kernels matching a regex it
# prints what explains a kernel's speed:
#  * speed of light, occupancy and pipe utilization;
#  * the warp-state breakdown;
#  * the instructions with the most stall samples (ncu_hot.py on the source page).
#   run(command="GDN_NCU_KERNELS='nvfp4_gemv' bash tools/device/ncu_kernel.sh", carry=[".deps/debs"])
#   the chunked delta rule of an 8K prefill (27B shapes):
#   GDN_NCU_TARGET='gdn_gpu_tests --gtest_filter=GdnPerf.Timings27B'
#   GDN_NCU_KERNELS='gdn_chunk_prep_kernel|gdn_chunk_recurrence_kernel' GDN_NCU_COUNT=2
# Knobs: GDN_NCU_KERNELS (kernel-name regex), GDN_NCU_COUNT (launches profiled, default 6),
#   GDN_NCU_ENV (space-separated NAME=VALUE set for the profiled run), GDN_NCU_BASE (what the regex
#   matches: function (default), demangled — e.g. 'decode_kernel<.*SmFmt\)3' — or mangled),
#   GDN_NCU_TARGET (a program of the build and its arguments; default 'bench_gemm --profile').
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_script_setup ncu_kernel "build profile"
gdn_unpack_deps "$DEPS" || note "deps: no .deps/debs carried; using the system's packages"

read -r -a target <<<"${GDN_NCU_TARGET:-bench_gemm --profile}"
t0=$SECONDS
if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
     "${CMAKE_DEPS[@]}" >"$OUT/build.log" 2>&1 && ninja -C "$BUILD" -j16 "${target[0]}" >>"$OUT/build.log" 2>&1; then
  note "build: ok in $((SECONDS - t0)) s"
else
  grep -E 'error' -A3 "$OUT/build.log" | head -40 || tail -30 "$OUT/build.log"
  note "build: FAILED"
  exit 1
fi

KR="${GDN_NCU_KERNELS:-nvfp4_gemv|decode_kernel}"
read -r -a envs <<<"${GDN_NCU_ENV:-}"
set +e
env "${envs[@]}" timeout -k 10 300 ncu --clock-control none --set full --import-source yes \
  --kernel-name-base "${GDN_NCU_BASE:-function}" -k "regex:$KR" -c "${GDN_NCU_COUNT:-6}" -o "$OUT/prof" "$BUILD/${target[0]}" "${target[@]:1}" >"$OUT/ncu_run.log" 2>&1
rc=$?
set -e
note "ncu: rc=$rc in $((SECONDS - t0)) s"
[[ -f "$OUT/prof.ncu-rep" ]] || { tail -20 "$OUT/ncu_run.log"; exit 1; }
ncu -i "$OUT/prof.ncu-rep" --page details >"$OUT/details.txt" 2>&1 || true
ncu -i "$OUT/prof.ncu-rep" --page source --csv --print-source sass >"$OUT/source.csv" 2>/dev/null || true

echo "================ details (selected) ================"
grep -E '^  [a-z_:<>0-9, ]*(kernel|Kernel)|^  [^ ].*\(|Duration|DRAM Throughput|Memory Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Mem Busy|Max Bandwidth|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy|Block Limit|Issue Slots Busy|No Eligible|Active Warps Per|Eligible Warps|Warp Cycles Per Issued|Executed Ipc A|L1/TEX Hit|L2 Hit|Grid Size|Dynamic Shared' \
  "$OUT/details.txt" | head -150
echo "================ pipe utilization / stalls ================"
grep -E 'pipe|Pipe|Stall|stall' "$OUT/details.txt" | grep -vE '^ *-' | head -60
echo "================ hottest instructions ================"
python3 tools/device/ncu_hot.py "$OUT/source.csv" 25 2>&1 | head -120 || true
echo "total $SECONDS s"
