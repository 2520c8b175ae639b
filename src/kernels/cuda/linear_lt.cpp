// cuBLASLt glue for the large-M path. Row-major y[m][n] = x[m][:]·W[n][:] is the column-major
// "TN" product D(n×m) = op(A)·B with A = W stored K×N (lda = weight row stride, transposed) and
// B = x stored K×M (ldb = activation row stride), D = y with ldd = N (formats.md §13).
// FP8 scaling: OUTER_VEC_32F on both (per-channel × per-token), or BLK128x128_32F on the weight
// with VEC128_32F on the activations (128×128 blocks × per-token 128-groups).
// Algorithms are looked up once per problem shape/alignment and cached; a problem cuBLASLt
// declines is remembered too, so callers fall back without asking again.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda::detail {

namespace {

cublasLtHandle_t lt_handle() {
  static std::once_flag once;
  static cublasLtHandle_t h = nullptr;
  std::call_once(once, [] { GDN_CUBLAS_CHECK(cublasLtCreate(&h)); });
  return h;
}

int alignment_class(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int c = 0;
  while (c < 8 && ((a >> c) & 1) == 0) ++c;  // log2 of the alignment, capped at 256 bytes
  return c;
}

struct CacheEntry {
  bool ok = false;
  cublasLtMatmulAlgo_t algo{};
};
using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, int, bool>;

// Descriptor owner (cuBLASLt objects are plain host allocations; creating them per call costs
// microseconds of host time, invisible under CUDA graphs).
struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// GDN_LT_FAST_ACCUM=0|1 overrides the caller's choice (A/B experiments in one build).
bool fast_accum_on(bool requested) {
  static const int env = [] {
    const char* e = std::getenv("GDN_LT_FAST_ACCUM");
    return e ? (std::strcmp(e, "0") != 0 ? 1 : 0) : -1;
  }();
  return env < 0 ? requested : env == 1;
}

// GDN_LT_TUNE=N (experiments): time up to N of the heuristic's algorithms on the first call of each
// problem (outside stream capture) and keep the fastest, printing what it gained.
constexpr int kMaxTuned = 32;
int tune_count(cudaStream_t s) {
  static const int n = [] {
    const char* e = std::getenv("GDN_LT_TUNE");
    return e ? std::max(1, std::min(kMaxTuned, std::atoi(e))) : 1;
  }();
  if (n <= 1) return 1;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  GDN_CUDA_CHECK(cudaStreamIsCapturing(s, &cs));
  return cs == cudaStreamCaptureStatusNone ? n : 1;
}

cublasLtMatmulAlgo_t fastest(const LtProblem& p, const Descs& d, const cublasLtMatmulHeuristicResult_t* r, int found,
                             void* workspace, size_t workspace_bytes, cudaStream_t s) {
  cudaEvent_t e0, e1;
  GDN_CUDA_CHECK(cudaEventCreate(&e0));
  GDN_CUDA_CHECK(cudaEventCreate(&e1));
  const float beta = 0.f;
  int best = 0;
  float best_ms = 0.f, first_ms = 0.f;
  for (int i = 0; i < found; ++i) {
    float ms = 1e30f;
    for (int rep = 0; rep < 3; ++rep) {  // best of 3 (the first also warms up)
      GDN_CUDA_CHECK(cudaEventRecord(e0, s));
      const cublasStatus_t st = cublasLtMatmul(lt_handle(), d.op, &p.alpha, p.a, d.a, p.b, d.b, &beta, p.d, d.c, p.d,
                                               d.c, &r[i].algo, workspace, workspace_bytes, s);
      GDN_CUDA_CHECK(cudaEventRecord(e1, s));
      GDN_CUDA_CHECK(cudaEventSynchronize(e1));
      if (st != CUBLAS_STATUS_SUCCESS) break;
      float t = 0.f;
      GDN_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
      ms = std::min(ms, t);
    }
    if (i == 0) first_ms = ms;
    if (i == 0 || ms < best_ms) best = i, best_ms = ms;
  }
  GDN_CUDA_CHECK(cudaEventDestroy(e0));
  GDN_CUDA_CHECK(cudaEventDestroy(e1));
  std::fprintf(stderr, "[gdn cuda] cuBLASLt tuned n=%lld m=%lld k=%lld: algorithm %d of %d, %.1f us (heuristic's first %.1f us)\n",
               (long long)p.n, (long long)p.m, (long long)p.k, best, found, 1000.0 * best_ms, 1000.0 * first_ms);
  return r[best].algo;
}

}  // namespace

bool lt_matmul(const LtProblem& p, void* workspace, size_t workspace_bytes, cudaStream_t s) {
  static std::mutex mu;
  static std::map<Key, CacheEntry> cache;

  // Our own guard (seen on H100: cuBLASLt offered an FP8 algorithm for ldd = 1 that computed only
  // the first token): leading dimensions and pointers 16-byte aligned, as its docs require.
  const int64_t elem = p.type == LtType::Bf16 ? 2 : 1;
  const auto misaligned = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) != 0; };
  if ((p.lda * elem) % 16 || (p.ldb * elem) % 16 || (p.ldd * (p.d_bf16 ? 2 : 4)) % 16 || misaligned(p.a) || misaligned(p.b) ||
      misaligned(p.d) || (p.a_scale && misaligned(p.a_scale)) || (p.b_scale && misaligned(p.b_scale)))
    return false;

  Descs d;
  GDN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  GDN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  GDN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (p.type == LtType::Fp8 && fast_accum_on(p.fast_accum)) {
    const int8_t on = 1;
    GDN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &on, sizeof on));
  }
  if (p.scale != LtScale::None) {
    const int32_t amode = p.scale == LtScale::OuterVec ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                                                       : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t bmode = p.scale == LtScale::OuterVec ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                                                       : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    GDN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode));
    GDN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode));
    GDN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &p.a_scale, sizeof p.a_scale));
    GDN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &p.b_scale, sizeof p.b_scale));
  }
  const cudaDataType_t ab = p.type == LtType::Bf16 ? CUDA_R_16BF : CUDA_R_8F_E4M3;
  GDN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.a, ab, uint64_t(p.k), uint64_t(p.n), p.lda));
  GDN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.b, ab, uint64_t(p.k), uint64_t(p.m), p.ldb));
  GDN_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&d.c, p.d_bf16 ? CUDA_R_16BF : CUDA_R_32F, uint64_t(p.n), uint64_t(p.m), p.ldd));

  const Key key{int(p.type), int(p.scale), p.n, p.m, p.k, p.lda, p.ldb, p.ldd, alignment_class(p.a),
                alignment_class(p.b), alignment_class(p.d), int(p.type == LtType::Fp8 && fast_accum_on(p.fast_accum)),
                p.d_bf16};
  CacheEntry e;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      e = it->second;
    } else {
      GDN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
      GDN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &workspace_bytes, sizeof workspace_bytes));
      cublasLtMatmulHeuristicResult_t r[kMaxTuned] = {};
      int found = 0;
      const int want = tune_count(s);
      const cublasStatus_t st =
          cublasLtMatmulAlgoGetHeuristic(lt_handle(), d.op, d.a, d.b, d.c, d.c, d.pref, want, r, &found);
      e.ok = st == CUBLAS_STATUS_SUCCESS && found > 0;
      if (e.ok) e.algo = found > 1 ? fastest(p, d, r, found, workspace, workspace_bytes, s) : r[0].algo;
      if (!e.ok)
        std::fprintf(stderr, "[gdn cuda] cuBLASLt declines %s %s n=%lld m=%lld k=%lld (status %d): falling back\n",
                     p.type == LtType::Bf16 ? "BF16" : "FP8",
                     p.scale == LtScale::None ? "" : p.scale == LtScale::OuterVec ? "outer-vec" : "blk128/vec128",
                     (long long)p.n, (long long)p.m, (long long)p.k, int(st));
      cache.emplace(key, e);
    }
  }
  if (!e.ok) return false;
  const float beta = 0.f;
  const cublasStatus_t st = cublasLtMatmul(lt_handle(), d.op, &p.alpha, p.a, d.a, p.b, d.b, &beta, p.d, d.c, p.d, d.c,
                                           &e.algo, workspace, workspace_bytes, s);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    // The heuristic offered an algorithm the launch then refuses: remember the problem as declined.
    std::lock_guard<std::mutex> lock(mu);
    cache[key].ok = false;
    std::fprintf(stderr, "[gdn cuda] cuBLASLt declines at launch n=%lld m=%lld k=%lld (status %d): falling back\n",
                 (long long)p.n, (long long)p.m, (long long)p.k, int(st));
    return false;
  }
  GDN_CUBLAS_CHECK(st);
  return true;
}

}  // namespace gdn::cuda::detail
