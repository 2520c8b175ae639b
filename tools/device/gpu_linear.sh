#!/usr/bin/env bash
# Issue 5 on the GPU machine, one call: unpack the carried Debian -dev packages (the device image has
# CUDA, CMake, ninja but not our C++ deps), configure + build (Release, -j16), run gdn_gpu_tests,
# compute-sanitizer memcheck on a reduced set, bench_gemm, then a short summary. Logs, gtest XML and
# the benchmark JSON go to $OUT. A failing stage is reported and the next one still runs.
#
#   here:   mkdir -p .deps/debs && (cd .deps/debs && apt-get download nlohmann-json3-dev libfmt-dev libfmt9 \
#             libspdlog-dev libspdlog1.10 libcli11-dev libgtest-dev googletest libpcre2-dev libpcre2-8-0 \
#             libutf8proc-dev libutf8proc2 pkgconf pkgconf-bin libpkgconf3)
#   device: run(command="bash tools/device/gpu_linear.sh", carry=[".deps/debs"])
#
# Knobs: GDN_TIME_BUDGET (seconds for the whole script, default 570), GDN_STAGES (default
# "build tests sanitize profile bench"; profile = Nsight Compute on a few small-M calls), GDN_BENCH_ARGS (extra bench_gemm flags, e.g. --quick),
# GDN_TEST_FILTER (gtest filter of the full test run), GDN_NCU_KERNELS / GDN_NCU_COUNT (profile stage: kernel
# name regex, number of launches).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_script_setup gpu_linear "build tests sanitize profile bench"

# --- 1. dependencies (tools/device/common.sh)
if gdn_unpack_deps "$DEPS"; then
  note "deps: $(ls .deps/debs/*.deb | wc -l) packages unpacked into $DEPS"
else
  note "deps: no .deps/debs carried; using the system's packages"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader || true; } | sed 's/^/[gpu_linear] gpu: /' | tee -a "$SUMMARY"
GPU="$(gdn_gpu_id)"

# --- 2. configure + build (our targets only)
if has_stage build; then
  t0=$SECONDS
  if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
       "${CMAKE_DEPS[@]}" >"$OUT/build.log" 2>&1 &&
     ninja -C "$BUILD" -j16 gdn_gpu_tests bench_gemm bench_upload >>"$OUT/build.log" 2>&1; then
    note "build: ok in $((SECONDS - t0)) s"
    # What the small-M kernels compiled to: tensor-core ops and 16-byte loads per instance.
    { cuobjdump -sass "$BUILD/libgdn_kernels_cuda.a" 2>/dev/null | awk '
        /Function :/ { if (name) printf "%s HMMA=%d QMMA=%d LDG128=%d LDL=%d\n", name, h, q, l, ll; name=$3; h=q=l=ll=0 }
        /HMMA/ { h++ } /QMMA/ { q++ } /LDG.E.*128/ { l++ } /LDL/ { ll++ }
        END { if (name) printf "%s HMMA=%d QMMA=%d LDG128=%d LDL=%d\n", name, h, q, l, ll }' |
      grep small_m_kernel | sed -E 's/.*small_m_kernelILNS1_5SmFmtE([0-9])ELi([0-9])ELi([0-9])E.* (HMMA.*)/[gpu_linear] sass fmt\1 MT\2 NT\3 \4/' | tee -a "$SUMMARY"; } || true
  else
    grep -E 'error|Error|FAILED' -A3 "$OUT/build.log" | head -60 || tail -40 "$OUT/build.log"
    note "build: FAILED (see build.log)"
    exit 1
  fi
fi

# --- 3. tests
TESTS_RC=skipped
if has_stage tests; then
  t0=$SECONDS
  budget=$(( $(left) - 210 ))
  ((budget < 60)) && budget=60
  set +e
  timeout -k 10 "$budget" "$BUILD/gdn_gpu_tests" ${GDN_TEST_FILTER:+--gtest_filter="$GDN_TEST_FILTER"} \
    >"$OUT/tests.log" 2>&1
  TESTS_RC=$?
  set -e
  grep -E '^\[ stats' "$OUT/tests.log" >"$OUT/test_stats.txt" || true
  note "tests: rc=$TESTS_RC in $((SECONDS - t0)) s: $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/tests.log" | head -2 | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -20 | tee -a "$SUMMARY" || true
  grep -E 'Failure|error:|what\(\)|C\+\+ exception|worst row|differ|got ' "$OUT/tests.log" | head -40 >/tmp/gdn_test_failures.txt || true
fi

# --- 4. compute-sanitizer memcheck on a reduced set (small shapes, fewer M)
if has_stage sanitize; then
  t0=$SECONDS
  budget=$(( $(left) - 150 ))
  ((budget < 45)) && budget=45
  set +e
  GDN_GPU_TEST_QUICK=1 timeout -k 10 "$budget" compute-sanitizer --tool memcheck --error-exitcode 86 \
    "$BUILD/gdn_gpu_tests" \
    --gtest_filter='CodecActQuant.*:Device.*:LinearDeterminism.*:Layouts/LinearOdd.*:Layouts/CodecWeightDecode.*:Fixtures/FixtureLinears.MatchCpu/quant_ct_nvfp4_declared:Fixtures/FixtureLinears.MatchCpu/quant_qwen_fp8_block_declared-Device.CheckedCallNamesSiteAndError' \
    2>&1 | head -3000 >"$OUT/sanitizer.log"
  SAN_RC=${PIPESTATUS[0]}
  set -e
  note "sanitizer: rc=$SAN_RC in $((SECONDS - t0)) s (86 = memcheck errors, 124 = time budget): $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)"
fi

# --- 5. Nsight Compute on a few small-M calls (speed of light, occupancy, stall reasons)
if has_stage profile && command -v ncu >/dev/null; then
  t0=$SECONDS
  set +e
  timeout -k 10 120 ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats --section InstructionStats --section MemoryWorkloadAnalysis \
    -k "regex:${GDN_NCU_KERNELS:-small_m_kernel|decode_kernel}" -c "${GDN_NCU_COUNT:-40}" \
    "$BUILD/bench_gemm" --profile >"$OUT/ncu.txt" 2>&1
  NCU_RC=$?
  set -e
  note "profile: rc=$NCU_RC in $((SECONDS - t0)) s (ncu.txt)"
fi

# --- 6. benchmark
if has_stage bench; then
  t0=$SECONDS
  budget=$(( $(left) - 20 ))
  ((budget < 30)) && budget=30
  set +e
  timeout -k 10 "$((budget + 5))" "$BUILD/bench_gemm" --gpu "$GPU" --out "$OUT/gemm-$GPU.json" --budget-s "$((budget - 25))" \
    ${GDN_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1
  BENCH_RC=$?
  set -e
  note "bench: rc=$BENCH_RC in $((SECONDS - t0)) s"
  mkdir -p bench/results && cp -f "$OUT/gemm-$GPU.json" "bench/results/gemm-$GPU.json" 2>/dev/null || true
fi

# --- 7. summary (the device tool returns the tail of the output)
echo
echo "================ summary ================"
cat "$SUMMARY"
[[ -f "$OUT/test_stats.txt" ]] && { echo "--- accuracy (worst per weight and path)"; awk '{print $(NF-2), $0}' "$OUT/test_stats.txt" | sort -g -r | cut -d' ' -f2- | head -6; }
{ grep -h '^\[ diag' "$OUT/tests.log" 2>/dev/null; } || true
[[ -s /tmp/gdn_test_failures.txt ]] && { echo "--- first failures"; head -25 /tmp/gdn_test_failures.txt; }
{ grep -h "cuBLASLt declines" "$OUT"/tests.log "$OUT"/bench.log 2>/dev/null | sort | uniq -c | head -10; } || true
[[ -f "$OUT/bench.log" ]] && { echo "--- bench"; grep -E '^ceilings|^Summary|^  M' "$OUT/bench.log" || tail -20 "$OUT/bench.log"; }
echo "total $SECONDS s"
