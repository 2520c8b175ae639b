#!/usr/bin/env bash
# A/B measurements on the GPU machine, one call: build the GPU tests and both benchmarks, run a
# gtest filter once, then the same benchmark commands under each environment variant, so kernel
# choices switched by environment variables are compared in one process image on one GPU.
#   run(command="GDN_AB_VARIANTS='base|GDN_SMALLM_PERSISTENT=1' bash tools/device/ab.sh", carry=[".deps/debs"])
# Knobs: GDN_AB_VARIANTS ('|'-separated; each a space-separated list of NAME=VALUE, 'base' = none),
#   GDN_AB_TESTS (gtest filter, empty = skip), GDN_AB_FORWARD ('|'-separated bench_forward argument
#   lists, default: batch-1 and batch-8 decode steps of nvfp4 and fp8), GDN_AB_GEMM (bench_gemm
#   arguments, empty = skip; default --quick), GDN_AB_GEMM_MAXM (largest M printed, default 16),
#   GDN_AB_GEMM_LAYOUT (only rows of layouts containing this string), GDN_AB_TEST_TIMEOUT (s, default 240).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_script_setup ab "build"
gdn_unpack_deps "$DEPS" || note "deps: no .deps/debs carried; using the system's packages"

t0=$SECONDS
if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
     "${CMAKE_DEPS[@]}" >"$OUT/build.log" 2>&1 &&
   ninja -C "$BUILD" -j16 gdn_gpu_tests bench_gemm bench_forward >>"$OUT/build.log" 2>&1; then
  note "build: ok in $((SECONDS - t0)) s"
else
  grep -E 'error' -A3 "$OUT/build.log" | head -40 || tail -30 "$OUT/build.log"
  note "build: FAILED"
  exit 1
fi

TESTS="${GDN_AB_TESTS-*Linear*:*Codec*}"
if [[ -n "$TESTS" ]]; then
  t0=$SECONDS
  set +e
  timeout -k 10 "${GDN_AB_TEST_TIMEOUT:-240}" "$BUILD/gdn_gpu_tests" --gtest_filter="$TESTS" >"$OUT/tests.log" 2>&1
  rc=$?
  set -e
  note "tests ($TESTS): rc=$rc in $((SECONDS - t0)) s: $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/tests.log" | head -2 | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -10 | tee -a "$SUMMARY" || true
fi

IFS='|' read -r -a VARIANTS <<<"${GDN_AB_VARIANTS:-base}"
IFS='|' read -r -a FORWARD <<<"${GDN_AB_FORWARD:---profile --profile-batch 1 --layouts nvfp4|--profile --profile-batch 8 --layouts nvfp4|--profile --profile-batch 1 --layouts fp8}"
GEMM="${GDN_AB_GEMM---quick}"
for i in "${!VARIANTS[@]}"; do
  v="${VARIANTS[$i]}"
  envs=()
  [[ "$v" != base ]] && read -r -a envs <<<"$v"
  for f in "${FORWARD[@]}"; do
    [[ -z "$f" ]] && continue
    read -r -a args <<<"$f"
    r="$(env "${envs[@]}" timeout -k 5 120 "$BUILD/bench_forward" "${args[@]}" 2>&1 | grep -E '^\[profile\]' | tail -1 || true)"
    note "[$v] $f: ${r:-FAILED}"
  done
  if [[ -n "$GEMM" ]]; then
    read -r -a gargs <<<"$GEMM"
    env "${envs[@]}" timeout -k 5 200 "$BUILD/bench_gemm" "${gargs[@]}" --out "$OUT/gemm-$i.json" >"$OUT/gemm-$i.log" 2>&1 || true
    GDN_AB_GEMM_MAXM="${GDN_AB_GEMM_MAXM:-16}" GDN_AB_GEMM_LAYOUT="${GDN_AB_GEMM_LAYOUT:-}" \
      python3 - "$OUT/gemm-$i.json" "$v" <<'PY' | tee -a "$SUMMARY"
import json, os, sys
maxm, lay = int(os.environ["GDN_AB_GEMM_MAXM"]), os.environ["GDN_AB_GEMM_LAYOUT"]
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"[ab] [{sys.argv[2]}] gemm: no JSON ({e})"); sys.exit(0)
for r in d["rows"]:
    if r["M"] <= maxm and lay in r["layout"]:
        print(f"[ab] [{sys.argv[2]}] {r['shape']:16s} {r['layout']:12s} M={r['M']:<3d} {r['us']:8.2f} us  graph {r['graph_us'] or 0:8.2f} us  {r['GBps']:7.0f} GB/s")
PY
  fi
done
echo "================ summary ================"
cat "$SUMMARY"
echo "total $SECONDS s"
