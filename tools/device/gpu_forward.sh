#!/usr/bin/env bash
# Issue 6 on the GPU machine, one call: unpack the carried Debian -dev packages, configure + build
# (Release, -j16), run every GPU test (kernels, whole model vs the CPU reference), compute-sanitizer
# memcheck on the whole-model tests, a CLI smoke test (logits on the GPU vs the CPU reference through
# the gdnserve binary), then the full-scale benchmark bench_forward and the PyTorch/transformers
# reference on the same shapes (tools/bench/torch_reference.py). Logs, gtest output and the
# benchmark JSON go to $OUT; a short summary goes to stdout.
#
#   here:   the .debs listed in tools/device/gpu_linear.sh, downloaded into .deps/debs
#   device: run(command="bash tools/device/gpu_forward.sh", carry=[".deps/debs"])
#
# Knobs: GDN_TIME_BUDGET (seconds, default 570), GDN_STAGES (default "build tests sanitize cli bench torch";
# also "profile": per-kernel ncu times of GDN_PROFILES, default "fp8:decode:1 fp8:decode:64 fp8:prefill:8192"),
# GDN_TEST_FILTER (gtest filter), GDN_BENCH_ARGS (extra bench_forward flags, e.g. "--layouts fp8 --quick").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source tools/device/common.sh
gdn_script_setup gpu_forward "build tests sanitize cli bench torch"

gdn_unpack_deps "$DEPS" || note "deps: no .deps/debs carried; using the system's packages"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } | sed 's/^/[gpu_forward] gpu: /' | tee -a "$SUMMARY"
GPU="$(gdn_gpu_id)"

if has_stage build; then
  t0=$SECONDS
  if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
       "${CMAKE_DEPS[@]}" >/tmp/gdn_build.log 2>&1 &&
     ninja -C "$BUILD" -j16 gdn_gpu_tests bench_forward gdnserve >>/tmp/gdn_build.log 2>&1; then
    note "build: ok in $((SECONDS - t0)) s"
  else
    cp /tmp/gdn_build.log "$OUT/build.log"
    grep -E 'error|Error|FAILED' -A3 "$OUT/build.log" | head -80 || tail -40 "$OUT/build.log"
    note "build: FAILED (see build.log)"
    exit 1
  fi
fi

if has_stage tests; then
  t0=$SECONDS
  budget=$(( $(left) - ${GDN_RESERVE_AFTER_TESTS:-300} ))
  ((budget < 60)) && budget=60
  set +e
  timeout -k 10 "$budget" "$BUILD/gdn_gpu_tests" ${GDN_TEST_FILTER:+--gtest_filter="$GDN_TEST_FILTER"} >"$OUT/tests.log" 2>&1
  rc=$?
  set -e
  note "tests: rc=$rc in $((SECONDS - t0)) s: $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/tests.log" | head -2 | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -40 | tee -a "$SUMMARY" || true
  grep -E '^\[ (stats|perf) ' "$OUT/tests.log" | tee -a "$SUMMARY" >/dev/null || true
  grep -E 'Failure|error:|what\(\)|C\+\+ exception' -B2 -A4 "$OUT/tests.log" | head -80 >/tmp/gdn_failures.txt || true
fi

if has_stage sanitize; then
  t0=$SECONDS
  set +e
  timeout -k 10 "${GDN_SANITIZE_S:-200}" compute-sanitizer --tool memcheck --error-exitcode 86 "$BUILD/gdn_gpu_tests" \
    --gtest_filter="${GDN_SANITIZE_FILTER:-GpuModel.*:All/GpuModelFixtures.MatchesCpuReference/quant_ct_nvfp4:All/GpuModelFixtures.IncrementalMatchesFull/quant_qwen_fp8_block:AttnPrefill.SmallDims:AttnDecode.SmallDims:AttnPrefill.VarlenMixedPaddingFp8:GdnDeltaRule.FixtureDims:GdnDeltaRule.MixedPrefillAndDecode:GdnConv.*:GdnNorm.*:OpsFp8Out.*:Sampling.SmallOddVocab:Sampling.Determinism:Layouts/LinearOdd.TailsAndOddM/nvfp4_a4:Layouts/Nvfp4Gemv.*:Layouts/FusedLinear.OddPartBoundaries/nvfp4_w4a16:OpsNvfp4Out.*:GpuModel.FusedNvfp4ActQuantEqualsPreKernel:AttnPrefill.ManyOddSequencesBf16:AttnPrefill.ChunkAfter700Bf16:OpsSwiglu.*:OpsRmsnorm.*:GdnConv.Bf16InputEqualsFp32:GdnNorm.Bf16ZEqualsFp32:Layouts/LinearBf16Out.*}" \
    >/tmp/gdn_sanitizer.log 2>&1
  rc=$?
  set -e
  head -c 200000 /tmp/gdn_sanitizer.log >"$OUT/sanitizer.log"
  note "sanitizer: rc=$rc in $((SECONDS - t0)) s (86 = memcheck errors, 124 = time budget): $(grep -E 'ERROR SUMMARY' /tmp/gdn_sanitizer.log | tail -1)"
  grep -E '^=+ (Invalid|Address|Program hit)' -A6 /tmp/gdn_sanitizer.log | head -30 >>"$SUMMARY" || true
fi

if has_stage cli; then
  # gdnserve logits on the GPU vs the CPU reference through the binary, and a GPU generate.
  set +e
  M=tests/fixtures/qwen35-wrapper-bf16
  T=1,5,9,33,2,7,100,3,250,17,8,64,12,90,4,11
  "$BUILD/gdnserve" logits --model $M --tokens $T --backend cpu --out /tmp/l_cpu.bin 2>/tmp/gdn_cli.log &&
  "$BUILD/gdnserve" logits --model $M --tokens $T --backend cuda --out /tmp/l_gpu.bin 2>>/tmp/gdn_cli.log &&
  python3 - /tmp/l_cpu.bin /tmp/l_gpu.bin <<'PY' | tee -a "$SUMMARY"
import sys, struct, math
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
x = struct.unpack(f'{len(a)//4}f', a); y = struct.unpack(f'{len(b)//4}f', b)
d = math.sqrt(sum((p-q)**2 for p, q in zip(x, y)) / max(1e-30, sum(p*p for p in x)))
print(f"[gpu_forward] cli: logits --backend cuda vs cpu: {len(x)} values, relative L2 difference {d:.3e}")
PY
  "$BUILD/gdnserve" generate --model $M --tokens $T --max-tokens 24 --ids --backend cuda >/tmp/gen_gpu.txt 2>>/tmp/gdn_cli.log
  "$BUILD/gdnserve" generate --model $M --tokens $T --max-tokens 24 --ids --backend cpu >/tmp/gen_cpu.txt 2>>/tmp/gdn_cli.log
  note "cli: generate gpu: $(cat /tmp/gen_gpu.txt)"
  note "cli: generate cpu: $(cat /tmp/gen_cpu.txt)"
  tail -3 /tmp/gdn_cli.log | sed 's/^/[gpu_forward] cli: /' | tee -a "$SUMMARY"
  set -e
fi

if has_stage bench; then
  t0=$SECONDS
  budget=$(( $(left) - 15 ))
  ((budget < 60)) && budget=60
  set +e
  timeout -k 10 "$budget" "$BUILD/bench_forward" --gpu "$GPU" --out "$OUT/forward-$GPU.json" --budget-s "$((budget - 40))" \
    ${GDN_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1
  note "bench: rc=$? in $((SECONDS - t0)) s"
  set -e
  mkdir -p bench/results && cp -f "$OUT/forward-$GPU.json" "bench/results/forward-$GPU.json" 2>/dev/null || true
fi

if has_stage profile && (( $(left) > 90 )); then
  # Kernel-by-kernel GPU time of a decode step and a prefill (tools/device/profile_step.sh, ncu).
  t0=$SECONDS
  set +e
  GDN_NO_BUILD=1 PROFILES="${GDN_PROFILES:-fp8:decode:1 fp8:decode:64 fp8:prefill:8192}" timeout -k 5 "$(( $(left) - 30 ))" \
    bash tools/device/profile_step.sh >"$OUT/profile.log" 2>&1
  note "profile: rc=$? in $((SECONDS - t0)) s"
  set -e
fi

if has_stage torch && (( $(left) > 60 )); then
  # PyTorch/transformers on the same shapes, same machine, same call (tools/bench/torch_reference.py).
  t0=$SECONDS
  set +e
  timeout -k 5 "$(( $(left) - 10 ))" python3 tools/bench/torch_reference.py --out "$OUT/torch-reference-$GPU.json" >"$OUT/torch.log" 2>&1
  note "torch reference: rc=$? in $((SECONDS - t0)) s"
  set -e
  cp -f "$OUT/torch-reference-$GPU.json" "bench/results/torch-reference-$GPU.json" 2>/dev/null || true
fi

echo
echo "================ summary ================"
cat "$SUMMARY"
[[ -s /tmp/gdn_failures.txt ]] && { echo "--- first failures"; head -60 /tmp/gdn_failures.txt; }
[[ -f "$OUT/bench.log" ]] && { echo "--- bench"; cat "$OUT/bench.log" | head -80; }
[[ -f "$OUT/profile.log" ]] && { echo "--- profile"; grep -v '^==PROF==' "$OUT/profile.log" | head -90; }
[[ -f "$OUT/torch.log" ]] && { echo "--- torch reference"; grep -E 'extrapolated|decode batch 1|prefill +[0-9]|floor|copy_' "$OUT/torch.log" | head -12; }
echo "total $SECONDS s"
