// Gated DeltaNet GPU kernels (deltanet_cuda.h) against the CPU reference steps of
// model/layers.cpp deltanet_block: causal_conv1d_silu, l2norm_scale, the gates, delta_rule_recurrent
// (1-token sequences) / delta_rule_chunked (longer ones), rmsnorm_gated.
//
// Tolerances, per row = one (token, value head) output vector of DV, or one row (head, k) of a state:
// ‖Δ‖₂ / max(‖ref‖₂, f·RMS row norm). States: f = 1e-3 (rows do not cancel). Delta-rule outputs:
// f = 1 — an output o = Sᵀq can be much smaller than the products it is made of (q nearly
// orthogonal to the stored values); its rounding error is that of the terms (‖q‖·‖S‖ ~ the typical
// row), so it is measured against the typical row size. Measured on H100: such rows reach 5–15%
// of their own norm on the TF32 path while every state is within 7e-4.
//  * conv output: fp32 on both sides, same tap order; only FMA contraction differs → 1e-5.
//    Conv state: a copy of inputs → bit-exact.
//  * recurrent (decode) path: fp32, same formulation (o = α·Sᵀq + (k·q)·δ) → 1e-5, also after 200
//    chained steps (the state is contracted by α ≤ 1 and (I − βkkᵀ), so rounding does not grow).
//  * chunked (prefill) path: tensor-core matmuls in TF32 (operands rounded to 10-bit mantissa,
//    relative 2⁻¹¹ ≈ 4.9e-4 per operand, fp32 accumulation), T = (I+A)⁻¹ and S in fp32. Each product
//    of the WY form is thus off by ~5e-4 relative to the size of its terms; a few chained products
//    and the state carried over chunks give ~1e-3 on outputs and states → held to 1e-2. A layout
//    or masking bug is O(1).
//  * gated RMSNorm: bf16 output → at most one bf16 ulp (≤ 2⁻⁷ relative) from the fp32 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <cuda_bf16.h>

#include "core/dtype.h"
#include "gpu_test_util.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/delta_rule.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/deltanet_cuda.h"

namespace gdn::test {
namespace {

using cuda::GdnDims;

constexpr double kConvTol = 1e-5, kRecurrentTol = 1e-5, kChunkedTol = 1e-2;

GdnDims make_dims(int hk, int hv, int dk, int dv) {
  GdnDims d;
  d.key_heads = hk, d.value_heads = hv, d.key_dim = dk, d.value_dim = dv, d.conv_kernel = 4, d.norm_eps = 1e-6f;
  return d;
}
const GdnDims k27B = make_dims(16, 48, 128, 128);
// The fixture configs (tests/fixtures/*/config.json, quant/*): HV/HK 3 and 2, DK 16..64, DV 24/32.
const GdnDims kFixtureDims[] = {make_dims(1, 3, 32, 32), make_dims(2, 4, 16, 24), make_dims(2, 6, 32, 32),
                                make_dims(2, 4, 64, 32)};

std::string dims_str(const GdnDims& d) {
  return "HK" + std::to_string(d.key_heads) + " HV" + std::to_string(d.value_heads) + " DK" +
         std::to_string(d.key_dim) + " DV" + std::to_string(d.value_dim);
}

std::vector<float> rand_vec(int64_t n, uint64_t seed, float amp, float offset = 0.f) {
  std::vector<float> v(static_cast<size_t>(n));
  parallel_fill(n, seed, [&](int64_t i, uint64_t h) { v[size_t(i)] = offset + amp * unit_float(h); });
  return v;
}

struct LayerParams {
  std::vector<float> conv_w, neg_exp_A, dt_bias;  // conv_w [K, C]
};

LayerParams make_params(const GdnDims& d, uint64_t seed) {
  LayerParams p;
  p.conv_w = rand_vec(int64_t(d.conv_kernel) * d.conv_dim(), seed, 0.6f);
  p.dt_bias = rand_vec(d.value_heads, seed + 1, 1.f);
  const std::vector<float> a_log = rand_vec(d.value_heads, seed + 2, 2.f, -1.f);  // A_log ∈ [−3, 1)
  for (float x : a_log) p.neg_exp_A.push_back(-std::exp(x));
  return p;
}

struct HostState {
  std::vector<float> conv, rec;  // [slots, K−1, C], [slots, HV, DK, DV]
  int64_t conv_slot = 0, rec_slot = 0;
  float* conv_at(int s) { return conv.data() + int64_t(s) * conv_slot; }
  float* rec_at(int s) { return rec.data() + int64_t(s) * rec_slot; }
  const float* conv_at(int s) const { return conv.data() + int64_t(s) * conv_slot; }
  const float* rec_at(int s) const { return rec.data() + int64_t(s) * rec_slot; }
};

HostState make_state(const GdnDims& d, int slots, bool random, uint64_t seed) {
  HostState h;
  h.conv_slot = int64_t(d.conv_kernel - 1) * d.conv_dim();
  h.rec_slot = int64_t(d.value_heads) * d.key_dim * d.value_dim;
  h.conv = random ? rand_vec(slots * h.conv_slot, seed, 1.5f) : std::vector<float>(size_t(slots * h.conv_slot));
  h.rec = random ? rand_vec(slots * h.rec_slot, seed + 1, 0.5f) : std::vector<float>(size_t(slots * h.rec_slot));
  return h;
}

// Token inputs of a step: x = in_proj_qkv output rows (ld C + 4), ba rows (ld 2·HV + 1).
struct Tokens {
  int64_t T = 0, ldx = 0, ldba = 0;
  std::vector<float> x, ba;
};
float round_bf16(float v) { return bf16_to_float(float_to_bf16(v)); }

// x values are BF16-exact: the conv takes its input as BF16 holds it (deltanet_cuda.h), so these
// compare with the CPU on the same numbers (GdnConv.Bf16InputEqualsFp32 checks the rounding).
Tokens make_tokens(const GdnDims& d, int64_t T, uint64_t seed) {
  Tokens t;
  t.T = T, t.ldx = d.conv_dim() + 4, t.ldba = 2 * d.value_heads + 1;
  t.x = rand_vec(T * t.ldx, seed, 1.5f);
  for (float& v : t.x) v = round_bf16(v);
  t.ba = rand_vec(T * t.ldba, seed + 1, 3.f);
  return t;
}

// CPU reference of one sequence of n tokens (rows r0.. of tk): deltanet_block between the input
// projections and the gated norm. conv_out [n, C], o [n, HV·DV].
void cpu_sequence(const GdnDims& d, const LayerParams& w, const Tokens& tk, int64_t r0, int64_t n, float* conv_state,
                  float* rec_state, float* conv_out, float* o) {
  const int64_t C = d.conv_dim(), HK = d.key_heads, HV = d.value_heads, DK = d.key_dim, DV = d.value_dim;
  const int64_t KD = HK * DK, VD = HV * DV;
  std::vector<float> x(size_t(n * C));
  for (int64_t t = 0; t < n; ++t) std::copy_n(tk.x.data() + (r0 + t) * tk.ldx, C, x.data() + t * C);
  causal_conv1d_silu(x.data(), n, C, w.conv_w.data(), d.conv_kernel, conv_state, conv_out);
  std::vector<float> q(size_t(n * KD)), k(size_t(n * KD)), v(size_t(n * VD)), beta(size_t(n * HV)), g(size_t(n * HV));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = conv_out + t * C;
    std::copy_n(row, KD, q.data() + t * KD);
    std::copy_n(row + KD, KD, k.data() + t * KD);
    std::copy_n(row + 2 * KD, VD, v.data() + t * VD);
    const float* ba = tk.ba.data() + (r0 + t) * tk.ldba;
    for (int64_t j = 0; j < HV; ++j) {
      beta[size_t(t * HV + j)] = sigmoid(ba[j]);
      g[size_t(t * HV + j)] = w.neg_exp_A[size_t(j)] * softplus(ba[HV + j] + w.dt_bias[size_t(j)]);
    }
  }
  l2norm_scale(q.data(), n * HK, DK, 1e-6f, 1.f / std::sqrt(float(DK)));
  l2norm_scale(k.data(), n * HK, DK, 1e-6f, 1.f);
  const DeltaRuleShape shape{n, HK, HV, DK, DV};
  if (n == 1)
    delta_rule_recurrent(shape, q.data(), k.data(), v.data(), g.data(), beta.data(), rec_state, o, pool());
  else
    delta_rule_chunked(shape, q.data(), k.data(), v.data(), g.data(), beta.data(), rec_state, o, pool());
}

// Device buffers of one layer: parameters, state slots, one step's inputs and outputs.
struct Gpu {
  GdnDims d;
  int slots = 0, max_tokens = 0;
  GpuCtx g;
  float *x, *w, *ba, *neg_a, *dtb, *conv_state, *rec_state, *qkv, *o;
  int32_t *cu, *sl;
  void* ws = nullptr;  // gdn_delta_rule workspace (the split chunked form's scratch)
  size_t ws_bytes = 0;

  static size_t bytes(const GdnDims& d, int slots, int max_tokens, int max_seqs) {
    const size_t C = size_t(d.conv_dim()), ldx = C + 4, ldba = size_t(2 * d.value_heads + 1);
    return (size_t(max_tokens) * (ldx + ldba + C + size_t(d.value_heads * d.value_dim)) +
            size_t(d.conv_kernel) * C + 2 * size_t(d.value_heads)) * 4 +
           size_t(slots) * cuda::gdn_slot_bytes(d) + 2 * size_t(max_seqs + 1) * 4 +
           size_t(max_tokens) * size_t(d.value_heads * d.value_dim) * 2 + (size_t(16) << 20) +  // + bf16 y (perf)
           cuda::gdn_workspace_bytes(d, max_tokens, max_seqs);
  }
  Gpu(const GdnDims& dims, int slots_, int max_tokens_, int max_seqs)
      : d(dims), slots(slots_), max_tokens(max_tokens_), g(bytes(dims, slots_, max_tokens_, max_seqs)) {
    const size_t C = size_t(d.conv_dim());
    x = g.arena.allocate_n<float>(size_t(max_tokens) * (C + 4));
    ba = g.arena.allocate_n<float>(size_t(max_tokens) * size_t(2 * d.value_heads + 1));
    qkv = g.arena.allocate_n<float>(size_t(max_tokens) * C);
    o = g.arena.allocate_n<float>(size_t(max_tokens) * size_t(d.value_heads * d.value_dim));
    w = g.arena.allocate_n<float>(size_t(d.conv_kernel) * C);
    neg_a = g.arena.allocate_n<float>(size_t(d.value_heads));
    dtb = g.arena.allocate_n<float>(size_t(d.value_heads));
    conv_state = g.arena.allocate_n<float>(size_t(slots) * size_t(d.conv_kernel - 1) * C);
    rec_state = g.arena.allocate_n<float>(size_t(slots) * size_t(d.value_heads * d.key_dim * d.value_dim));
    cu = g.arena.allocate_n<int32_t>(size_t(max_seqs + 1));
    sl = g.arena.allocate_n<int32_t>(size_t(max_seqs));
    ws_bytes = cuda::gdn_workspace_bytes(d, max_tokens, max_seqs);
    ws = ws_bytes ? g.arena.allocate(ws_bytes) : nullptr;
  }
  template <typename T>
  void up(T* dst, const T* src, size_t n) {
    GDN_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, g.stream));
  }
  template <typename T>
  void down(T* dst, const T* src, size_t n) {
    GDN_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
  }
  void set_params(const LayerParams& p) {
    up(w, p.conv_w.data(), p.conv_w.size());
    up(neg_a, p.neg_exp_A.data(), p.neg_exp_A.size());
    up(dtb, p.dt_bias.data(), p.dt_bias.size());
  }
  void set_state(const HostState& h) {
    up(conv_state, h.conv.data(), h.conv.size());
    up(rec_state, h.rec.data(), h.rec.size());
  }
  HostState get_state(const HostState& like) {
    HostState h = like;
    down(h.conv.data(), conv_state, h.conv.size());
    down(h.rec.data(), rec_state, h.rec.size());
    return h;
  }
  // Uploads rows [r0, r0 + T) of tk and the step's sequences; returns the meta of that step.
  cuda::StepMeta stage(const Tokens& tk, int64_t r0, const std::vector<int>& lens, const std::vector<int>& slot_of) {
    std::vector<int32_t> cuh(lens.size() + 1, 0);
    for (size_t s = 0; s < lens.size(); ++s) cuh[s + 1] = cuh[s] + lens[s];
    const int T = cuh.back();
    EXPECT_LE(T, max_tokens);
    up(x, tk.x.data() + r0 * tk.ldx, size_t(T * tk.ldx));
    up(ba, tk.ba.data() + r0 * tk.ldba, size_t(T * tk.ldba));
    up(cu, cuh.data(), cuh.size());
    std::vector<int32_t> slh(slot_of.begin(), slot_of.end());
    up(sl, slh.data(), slh.size());
    cuda::StepMeta m;
    m.num_seqs = int(lens.size());
    m.num_tokens = T;
    m.max_q_len = *std::max_element(lens.begin(), lens.end());
    m.cu_seqlens = cu;
    m.state_slots = sl;
    return m;
  }
  cuda::GdnStateView view() { return {conv_state, rec_state, slots}; }
  void conv(const cuda::StepMeta& m, int64_t ldx) {
    cuda::gdn_conv1d_silu(d, x, ldx, w, m, view(), qkv, g.stream);
  }
  void delta(const cuda::StepMeta& m, int64_t ldba) {
    cuda::gdn_delta_rule(d, qkv, ba, ldba, neg_a, dtb, m, view(), o, ws, ws_bytes, g.stream);
  }
  // conv + delta rule of one step with poisoned outputs; qkv_out [T, C], o_out [T, HV·DV].
  void step(const Tokens& tk, int64_t r0, const std::vector<int>& lens, const std::vector<int>& slot_of,
            std::vector<float>& qkv_out, std::vector<float>& o_out) {
    const cuda::StepMeta m = stage(tk, r0, lens, slot_of);
    const size_t C = size_t(d.conv_dim()), VD = size_t(d.value_heads * d.value_dim);
    GDN_CUDA_CHECK(cudaMemsetAsync(qkv, 0xFF, size_t(m.num_tokens) * C * 4, g.stream));
    GDN_CUDA_CHECK(cudaMemsetAsync(o, 0xFF, size_t(m.num_tokens) * VD * 4, g.stream));
    conv(m, tk.ldx);
    delta(m, tk.ldba);
    GDN_CUDA_CHECK_LAUNCH();
    qkv_out.resize(size_t(m.num_tokens) * C);
    o_out.resize(size_t(m.num_tokens) * VD);
    down(qkv_out.data(), qkv, qkv_out.size());
    down(o_out.data(), o, o_out.size());
  }
};

// Worst per-row relative error (see the header comment), with the row where it occurs.
struct RowErr {
  double worst = 0;
  int64_t row = -1, nonfinite = 0;
  std::string str() const {
    char b[160];
    std::snprintf(b, sizeof b, "worst row rel %.3g (row %lld), non-finite %lld", worst, (long long)row,
                  (long long)nonfinite);
    return b;
  }
};
constexpr double kStateFloor = 1e-3, kOutputFloor = 1.0;
RowErr row_err(const float* got, const float* want, int64_t rows, int64_t width, double floor_frac = kStateFloor) {
  double tot = 0;
  for (int64_t i = 0; i < rows * width; ++i) tot += double(want[i]) * want[i];
  const double floor = floor_frac * std::sqrt(tot / double(std::max<int64_t>(rows, 1)));
  RowErr e;
  for (int64_t r = 0; r < rows; ++r) {
    double d2 = 0, r2 = 0;
    for (int64_t c = 0; c < width; ++c) {
      const double gv = got[r * width + c], wv = want[r * width + c];
      if (!std::isfinite(gv)) {
        ++e.nonfinite;
        continue;
      }
      d2 += (gv - wv) * (gv - wv);
      r2 += wv * wv;
    }
    const double rel = std::sqrt(d2) / std::max(std::sqrt(r2), floor > 0 ? floor : 1e-30);
    if (rel > e.worst) e.worst = rel, e.row = r;
  }
  return e;
}

// A step of a scenario: sequences (length, slot; slot −1 = padding).
struct Seq {
  int len, slot;
};

// Runs the steps on the GPU and, sequence by sequence, on the CPU from the same initial states;
// checks conv outputs, delta-rule outputs, all states after every step, and that slots no
// sequence names are bit-identical to their initial contents. Returns the worst chunked error.
double run_scenario(const GdnDims& d, int slots, bool random_state, const std::vector<std::vector<Seq>>& steps,
                    uint64_t seed, const std::string& label) {
  const LayerParams params = make_params(d, seed);
  HostState ref = make_state(d, slots, random_state, seed + 10);
  const HostState init = ref;
  int max_t = 0, max_s = 0;
  for (const auto& st : steps) {
    int T = 0;
    for (const Seq& s : st) T += s.len;
    max_t = std::max(max_t, T), max_s = std::max(max_s, int(st.size()));
  }
  Gpu gpu(d, slots, max_t, max_s);
  gpu.set_params(params);
  gpu.set_state(ref);
  std::vector<bool> used(size_t(slots), false), chunked(size_t(slots), false);
  const int64_t C = d.conv_dim(), VD = int64_t(d.value_heads) * d.value_dim;
  double worst_chunked = 0, worst_rec = 0, worst_conv = 0;
  for (size_t si = 0; si < steps.size(); ++si) {
    const auto& st = steps[si];
    int T = 0;
    std::vector<int> lens, slot_of;
    for (const Seq& s : st) T += s.len, lens.push_back(s.len), slot_of.push_back(s.slot);
    const Tokens tk = make_tokens(d, T, seed + 100 + si);
    std::vector<float> gq, go;
    gpu.step(tk, 0, lens, slot_of, gq, go);
    int64_t r0 = 0;
    for (size_t s = 0; s < st.size(); r0 += st[s].len, ++s) {
      const int n = st[s].len, slot = st[s].slot;
      if (slot < 0 || n == 0) continue;
      used[size_t(slot)] = true;
      if (n > 1) chunked[size_t(slot)] = true;  // this state has passed the TF32 path
      std::vector<float> cq(size_t(n * C)), co(size_t(n * VD));
      cpu_sequence(d, params, tk, r0, n, ref.conv_at(slot), ref.rec_at(slot), cq.data(), co.data());
      const RowErr ec = row_err(gq.data() + r0 * C, cq.data(), n, C);
      const RowErr eo = row_err(go.data() + r0 * VD, co.data(), int64_t(n) * d.value_heads, d.value_dim, kOutputFloor);
      const bool tf32 = chunked[size_t(slot)];
      const double tol = tf32 ? kChunkedTol : kRecurrentTol;
      EXPECT_TRUE(ec.nonfinite == 0 && ec.worst <= kConvTol)
          << label << " step " << si << " seq " << s << " (len " << n << ") conv: " << ec.str();
      EXPECT_TRUE(eo.nonfinite == 0 && eo.worst <= tol)
          << label << " step " << si << " seq " << s << " (len " << n << ") delta-rule output: " << eo.str()
          << " (row = token·HV + head), tolerance " << tol;
      worst_conv = std::max(worst_conv, ec.worst);
      (tf32 ? worst_chunked : worst_rec) = std::max(tf32 ? worst_chunked : worst_rec, eo.worst);
    }
    const HostState got = gpu.get_state(ref);
    for (int slot = 0; slot < slots; ++slot) {
      const size_t cs = size_t(ref.conv_slot), rs = size_t(ref.rec_slot);
      if (!used[size_t(slot)]) {
        EXPECT_EQ(0, std::memcmp(got.conv.data() + slot * cs, init.conv.data() + slot * cs, cs * 4))
            << label << " step " << si << ": conv state of unused slot " << slot << " changed";
        EXPECT_EQ(0, std::memcmp(got.rec.data() + slot * rs, init.rec.data() + slot * rs, rs * 4))
            << label << " step " << si << ": recurrent state of unused slot " << slot << " changed";
        continue;
      }
      EXPECT_EQ(0, std::memcmp(got.conv.data() + slot * cs, ref.conv.data() + slot * cs, cs * 4))
          << label << " step " << si << ": conv state of slot " << slot << " differs";
      const RowErr es = row_err(got.rec.data() + slot * rs, ref.rec.data() + slot * rs,
                                int64_t(d.value_heads) * d.key_dim, d.value_dim);
      const double tol = chunked[size_t(slot)] ? kChunkedTol : kRecurrentTol;
      EXPECT_TRUE(es.nonfinite == 0 && es.worst <= tol)
          << label << " step " << si << ": recurrent state of slot " << slot << ": " << es.str()
          << " (row = head·DK + k), tolerance " << tol;
      (chunked[size_t(slot)] ? worst_chunked : worst_rec) =
          std::max(chunked[size_t(slot)] ? worst_chunked : worst_rec, es.worst);
    }
  }
  std::printf("[ diag ] gdn %s (%s): worst conv %.3g, recurrent %.3g, chunked %.3g\n", label.c_str(),
              dims_str(d).c_str(), worst_conv, worst_rec, worst_chunked);
  return worst_chunked;
}

// (a) one 1000-token sequence of the 27B from a zero state.
TEST(GdnDeltaRule, Prefill27BOneSequence) {
  run_scenario(k27B, 2, false, {{{1000, 1}}}, 11, "prefill-1000");
}

// (b) a prefill split over several calls equals one call over the whole sequence (the CPU runs the
// whole sequence at once; its chunk boundaries differ from the GPU's split ones).
void check_split(const GdnDims& d, const std::vector<int>& parts, uint64_t seed) {
  const LayerParams params = make_params(d, seed);
  HostState ref = make_state(d, 3, true, seed + 10);
  const int total = std::accumulate(parts.begin(), parts.end(), 0);
  const Tokens tk = make_tokens(d, total, seed + 20);
  const int64_t C = d.conv_dim(), VD = int64_t(d.value_heads) * d.value_dim;
  std::vector<float> cq(size_t(total * C)), co(size_t(total * VD));
  cpu_sequence(d, params, tk, 0, total, ref.conv_at(2), ref.rec_at(2), cq.data(), co.data());

  Gpu gpu(d, 3, total, 1);
  gpu.set_params(params);
  gpu.set_state(make_state(d, 3, true, seed + 10));
  std::vector<float> gq_all, go_all, gq, go;
  int64_t r0 = 0;
  for (int n : parts) {
    gpu.step(tk, r0, {n}, {2}, gq, go);
    gq_all.insert(gq_all.end(), gq.begin(), gq.end());
    go_all.insert(go_all.end(), go.begin(), go.end());
    r0 += n;
  }
  std::string label = "split";
  for (int n : parts) label += " " + std::to_string(n);
  const RowErr ec = row_err(gq_all.data(), cq.data(), total, C);
  const RowErr eo = row_err(go_all.data(), co.data(), int64_t(total) * d.value_heads, d.value_dim, kOutputFloor);
  const HostState got = gpu.get_state(ref);
  const RowErr es = row_err(got.rec_at(2), ref.rec_at(2), int64_t(d.value_heads) * d.key_dim, d.value_dim);
  EXPECT_TRUE(ec.nonfinite == 0 && ec.worst <= kConvTol) << label << " conv: " << ec.str();
  EXPECT_TRUE(eo.nonfinite == 0 && eo.worst <= kChunkedTol) << label << " output: " << eo.str();
  EXPECT_TRUE(es.nonfinite == 0 && es.worst <= kChunkedTol) << label << " final state: " << es.str();
  EXPECT_EQ(0, std::memcmp(got.conv_at(2), ref.conv_at(2), size_t(ref.conv_slot) * 4)) << label << " conv state";
  std::printf("[ diag ] gdn %s (%s): conv %.3g, output %.3g, state %.3g\n", label.c_str(), dims_str(d).c_str(),
              ec.worst, eo.worst, es.worst);
}
TEST(GdnDeltaRule, PrefillSplitEqualsWhole) {
  check_split(k27B, {700, 300}, 21);
  check_split(k27B, {3, 61, 70}, 22);
  check_split(k27B, {1, 2, 61, 70}, 23);  // 1 token (recurrent), 2 < K−1 (conv state mixing)
}

// (c) varlen batch in distinct non-contiguous slots with a padding sequence (slot −1) in the
// middle; slots 2, 5, 7 are never named and must stay bit-identical.
const std::vector<Seq> kVarlen = {{1, 6}, {2, 1}, {5, -1}, {63, 4}, {64, 0}, {200, 3}};
TEST(GdnDeltaRule, VarlenBatchWithPadding27B) { run_scenario(k27B, 8, true, {kVarlen}, 31, "varlen"); }

// The split chunked form (DK > 64) works in windows of chunks and groups of sequences that bound
// its scratch (64 MB by default: 41 chunks of the 27B per window). GDN_DELTA_SCRATCH_SLOTS shrinks
// it to 100 slots (2 chunks × 48 heads per window, one sequence per group), so that the state is
// carried across several windows and the varlen batch spans several groups; the 2700-token case
// crosses the default window. GDN_DELTA_FUSED=1 runs the fused form on the same cases.
TEST(GdnDeltaRule, SplitFormWindowsAndGroups) {
  setenv("GDN_DELTA_SCRATCH_SLOTS", "100", 1);
  run_scenario(k27B, 8, true, {kVarlen}, 32, "varlen-small-scratch");
  run_scenario(k27B, 2, true, {{{300, 1}}, {{70, 1}}}, 12, "prefill-300+70-small-scratch");
  unsetenv("GDN_DELTA_SCRATCH_SLOTS");
  run_scenario(k27B, 2, true, {{{2700, 0}}}, 13, "prefill-2700");
}
TEST(GdnDeltaRule, FusedFormStillCorrect) {
  setenv("GDN_DELTA_FUSED", "1", 1);
  run_scenario(k27B, 8, true, {kVarlen}, 34, "varlen-fused");
  unsetenv("GDN_DELTA_FUSED");
}

// (d) decode: 32 sequences of one token, random nonzero states, permuted slots.
TEST(GdnDeltaRule, Decode32) {
  std::vector<Seq> st;
  for (int s = 0; s < 32; ++s) st.push_back({1, (s * 7 + 3) % 40});
  run_scenario(k27B, 40, true, {st}, 41, "decode-32");
}

// (e) 200 decode steps of 3 sequences, compared every step: the state must not drift.
TEST(GdnDeltaRule, Decode200StepsNoDrift) {
  std::vector<std::vector<Seq>> steps(200, std::vector<Seq>{{1, 2}, {1, 0}, {1, 3}});
  run_scenario(k27B, 4, true, steps, 51, "decode-200-steps");
}

// Mixed step: prefill chunks next to decodes (the scheduler's chunked-prefill batches), then decode.
TEST(GdnDeltaRule, MixedPrefillAndDecode) {
  run_scenario(k27B, 6, true, {{{1, 0}, {130, 1}, {1, 2}, {0, 5}, {7, 3}}, {{1, 0}, {1, 1}, {1, 3}, {1, -1}}}, 61,
               "mixed");
}

// (f) fixture dims (HV/HK 3 and 2, DK 16/32/64, DV 24/32): varlen + padding, then decode steps.
TEST(GdnDeltaRule, FixtureDims) {
  uint64_t seed = 71;
  for (const GdnDims& d : kFixtureDims) {
    run_scenario(d, 6, true,
                 {{{1, 5}, {3, 0}, {4, -1}, {64, 2}, {130, 3}, {17, 1}}, {{1, 5}, {1, 0}, {1, 2}, {2, 3}, {1, 1}},
                  {{65, 5}, {1, 0}}},
                 seed++, "fixture");
  }
}

// Conv alone on short sequences (the per-sequence kernel, max_q_len ≤ 8) including lengths below
// K−1 (new conv state mixes old state and new inputs), with a padding sequence.
TEST(GdnConv, ShortSequencesAndStateMixing) {
  for (const GdnDims& d : {k27B, kFixtureDims[1]}) {
    const LayerParams params = make_params(d, 81);
    HostState ref = make_state(d, 5, true, 82);
    const HostState init = ref;
    const std::vector<int> lens = {2, 1, 3, 8, 4}, slot_of = {3, 0, -1, 1, 4};
    const int T = std::accumulate(lens.begin(), lens.end(), 0);
    const Tokens tk = make_tokens(d, T, 83);
    Gpu gpu(d, 5, T, int(lens.size()));
    gpu.set_params(params);
    gpu.set_state(ref);
    const cuda::StepMeta m = gpu.stage(tk, 0, lens, slot_of);
    gpu.conv(m, tk.ldx);
    const int64_t C = d.conv_dim();
    std::vector<float> got(size_t(T * C));
    gpu.down(got.data(), gpu.qkv, got.size());
    const HostState gs = gpu.get_state(ref);
    int64_t r0 = 0;
    for (size_t s = 0; s < lens.size(); r0 += lens[s], ++s) {
      if (slot_of[s] < 0) continue;
      std::vector<float> xs(size_t(lens[s] * C)), want(size_t(lens[s] * C));
      for (int t = 0; t < lens[s]; ++t) std::copy_n(tk.x.data() + (r0 + t) * tk.ldx, C, xs.data() + t * C);
      causal_conv1d_silu(xs.data(), lens[s], C, params.conv_w.data(), d.conv_kernel, ref.conv_at(slot_of[s]),
                         want.data());
      const RowErr e = row_err(got.data() + r0 * C, want.data(), lens[s], C);
      EXPECT_TRUE(e.nonfinite == 0 && e.worst <= kConvTol) << dims_str(d) << " seq " << s << ": " << e.str();
    }
    EXPECT_EQ(0, std::memcmp(gs.conv.data(), ref.conv.data(), ref.conv.size() * 4)) << "conv states differ";
    EXPECT_EQ(0, std::memcmp(gs.conv_at(2), init.conv_at(2), size_t(ref.conv_slot) * 4)) << "slot 2 touched";
  }
}

// Gated RMSNorm vs rmsnorm_gated; z with a row stride wider than HV·DV.
TEST(GdnNorm, MatchesCpu) {
  for (const GdnDims& d : {k27B, kFixtureDims[1]}) {
    const int T = 37, HV = d.value_heads, DV = d.value_dim;
    const int64_t VD = int64_t(HV) * DV, zld = VD + 8;
    std::vector<float> o = rand_vec(T * VD, 91, 0.7f), z = rand_vec(T * zld, 92, 3.f), w = rand_vec(DV, 93, 0.2f, 1.f);
    for (float& v : z) v = round_bf16(v);  // z is taken as BF16 holds it (GdnNorm.Bf16ZEqualsFp32)
    for (int64_t i = 0; i < DV; ++i) o[size_t(5 * VD + i)] *= 1e-4f;  // one tiny head: eps matters
    std::vector<float> zc(size_t(T * VD)), want(size_t(T * VD));
    for (int t = 0; t < T; ++t) std::copy_n(z.data() + t * zld, VD, zc.data() + t * VD);
    rmsnorm_gated(o.data(), zc.data(), w.data(), int64_t(T) * HV, DV, d.norm_eps, want.data());
    GpuCtx g(size_t(T) * size_t(VD + zld + VD) * 4 + size_t(DV) * 4 + (size_t(4) << 20));
    float* dO = g.arena.allocate_n<float>(o.size());
    float* dZ = g.arena.allocate_n<float>(z.size());
    float* dW = g.arena.allocate_n<float>(w.size());
    auto* dY = g.arena.allocate_n<__nv_bfloat16>(size_t(T * VD));
    GDN_CUDA_CHECK(cudaMemcpy(dO, o.data(), o.size() * 4, cudaMemcpyHostToDevice));
    GDN_CUDA_CHECK(cudaMemcpy(dZ, z.data(), z.size() * 4, cudaMemcpyHostToDevice));
    GDN_CUDA_CHECK(cudaMemcpy(dW, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
    cuda::gdn_gated_rmsnorm(d, dO, dZ, zld, dW, T, dY, g.stream);
    std::vector<uint16_t> y(size_t(T * VD));
    GDN_CUDA_CHECK(cudaMemcpyAsync(y.data(), dY, y.size() * 2, cudaMemcpyDeviceToHost, g.stream));
    g.stream.sync();
    int64_t bad = 0, first = -1;
    double worst = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double gv = bf16_to_float(y[i]), wv = want[i], err = std::fabs(gv - wv);
      worst = std::max(worst, err / std::max(std::fabs(wv), 1e-30));
      if (!(err <= std::ldexp(std::fabs(wv), -7) + 1e-30)) bad += 1, first = first < 0 ? int64_t(i) : first;
    }
    EXPECT_EQ(bad, 0) << dims_str(d) << ": " << bad << " outputs off by more than one bf16 ulp, first at " << first;
    std::printf("[ diag ] gdn rmsnorm (%s): worst relative %.3g\n", dims_str(d).c_str(), worst);
  }
}

// The conv on a BF16 x (what the large-M in_proj writes) == on its fp32 source (rounded in the
// kernel): outputs and conv states bit for bit, on the per-sequence (decode) and tiled (prefill)
// kernels.
TEST(GdnConv, Bf16InputEqualsFp32) {
  for (const GdnDims& d : {k27B, kFixtureDims[1]}) {
    for (const std::vector<int>& lens : {std::vector<int>{2, 1, 3}, std::vector<int>{40, 1, 70}}) {
      SCOPED_TRACE(dims_str(d) + " max len " + std::to_string(*std::max_element(lens.begin(), lens.end())));
      const LayerParams params = make_params(d, 71);
      const HostState init = make_state(d, 3, true, 72);
      const int T = std::accumulate(lens.begin(), lens.end(), 0);
      Tokens tk = make_tokens(d, T, 73);
      tk.x = rand_vec(T * tk.ldx, 74, 1.5f);  // not BF16-exact
      const std::vector<int> slot_of = {2, 0, 1};
      const int64_t C = d.conv_dim();
      std::vector<float> out[2], conv[2];
      for (int k = 0; k < 2; ++k) {
        Gpu gpu(d, 3, T, int(lens.size()));
        gpu.set_params(params);
        gpu.set_state(init);
        const cuda::StepMeta m = gpu.stage(tk, 0, lens, slot_of);
        if (k == 0) {
          gpu.conv(m, tk.ldx);
        } else {
          std::vector<uint16_t> x16(tk.x.size());
          for (size_t i = 0; i < x16.size(); ++i) x16[i] = float_to_bf16(tk.x[i]);
          auto* dx = gpu.g.arena.allocate_n<uint16_t>(x16.size());
          gpu.up(dx, x16.data(), x16.size());
          cuda::gdn_conv1d_silu(d, reinterpret_cast<const __nv_bfloat16*>(dx), tk.ldx, gpu.w, m, gpu.view(), gpu.qkv,
                                gpu.g.stream);
        }
        out[k].resize(size_t(T * C));
        gpu.down(out[k].data(), gpu.qkv, out[k].size());
        conv[k] = gpu.get_state(init).conv;
      }
      EXPECT_EQ(0, std::memcmp(out[0].data(), out[1].data(), out[0].size() * 4)) << "conv outputs differ";
      EXPECT_EQ(0, std::memcmp(conv[0].data(), conv[1].data(), conv[0].size() * 4)) << "conv states differ";
    }
  }
}

// The gated norm on a BF16 z == on its fp32 source: BF16 and FP8 outputs, float4 (DV = 128) and
// scalar layouts, decode- and prefill-sized steps.
TEST(GdnNorm, Bf16ZEqualsFp32) {
  for (const GdnDims& d : {k27B, kFixtureDims[1]}) {
    for (int T : {3, 90}) {
      SCOPED_TRACE(dims_str(d) + " T " + std::to_string(T));
      const int HV = d.value_heads, DV = d.value_dim;
      const int64_t VD = int64_t(HV) * DV, zld = VD + 8, kpad = (VD + 127) / 128 * 128;
      const std::vector<float> o = rand_vec(T * VD, 95, 0.7f), z = rand_vec(T * zld, 96, 3.f),
                               w = rand_vec(DV, 97, 0.2f, 1.f);
      std::vector<uint16_t> z16(z.size());
      for (size_t i = 0; i < z.size(); ++i) z16[i] = float_to_bf16(z[i]);
      GpuCtx g(size_t(T) * size_t(VD + 2 * zld) * 4 + size_t(T) * size_t(VD * 4 + kpad * 2) + (size_t(8) << 20));
      auto up = [&](const auto& v) {
        auto* p = g.arena.allocate_n<std::decay_t<decltype(v[0])>>(v.size());
        GDN_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(v[0]), cudaMemcpyHostToDevice));
        return p;
      };
      const float *dO = up(o), *dZ = up(z), *dW = up(w);
      const auto* dZ16 = reinterpret_cast<const __nv_bfloat16*>(up(z16));
      std::vector<uint8_t> res[2];
      for (int k = 0; k < 2; ++k) {
        auto* y = g.arena.allocate_n<__nv_bfloat16>(size_t(T * VD));
        auto* y2 = g.arena.allocate_n<__nv_bfloat16>(size_t(T * VD));
        auto* codes = g.arena.allocate_n<uint8_t>(size_t(T * kpad));
        auto* sc = g.arena.allocate_n<float>(size_t(T));
        const cuda::Fp8TokenActs q{codes, sc, kpad, kpad};
        if (k == 0) {
          cuda::gdn_gated_rmsnorm(d, dO, dZ, zld, dW, T, y, g.stream);
          cuda::gdn_gated_rmsnorm(d, dO, dZ, zld, dW, T, y2, g.stream, q);
        } else {
          cuda::gdn_gated_rmsnorm(d, dO, dZ16, zld, dW, T, y, g.stream);
          cuda::gdn_gated_rmsnorm(d, dO, dZ16, zld, dW, T, y2, g.stream, q);
        }
        for (auto [p, n] : {std::pair<const void*, size_t>{y, size_t(T * VD) * 2}, {y2, size_t(T * VD) * 2},
                            {codes, size_t(T * kpad)}, {sc, size_t(T) * 4}}) {
          std::vector<uint8_t> h(n);
          GDN_CUDA_CHECK(cudaMemcpy(h.data(), p, n, cudaMemcpyDeviceToHost));
          res[k].insert(res[k].end(), h.begin(), h.end());
        }
      }
      EXPECT_EQ(0, std::memcmp(res[0].data(), res[1].data(), res[0].size()));
    }
  }
}

// Timings (27B, one layer): median of 20 cudaEvent-timed samples after a warm-up; a sample is
// `reps` back-to-back calls (per-call time = GPU time with the launch latency overlapped, as in a
// CUDA graph), reps = 1 shows the isolated call including launch + event overhead (~5 us on H100).
template <typename F>
double median_ms(cudaStream_t s, F&& fn, int reps = 1) {
  fn();
  cuda::Event a, b;
  std::vector<double> t;
  for (int i = 0; i < 20; ++i) {
    a.record(s);
    for (int r = 0; r < reps; ++r) fn();
    b.record(s);
    t.push_back(b.ms_since(a) / reps);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

TEST(GdnPerf, Timings27B) {
  const GdnDims d = k27B;
  const int T = 8192, slots = 64;
  Gpu gpu(d, slots, T, slots);
  const LayerParams params = make_params(d, 101);
  gpu.set_params(params);
  gpu.set_state(make_state(d, slots, true, 102));
  const Tokens tk = make_tokens(d, T, 103);
  const double state_bytes = double(d.value_heads) * d.key_dim * d.value_dim * 4;
  const double C = d.conv_dim();

  {  // prefill: one 8192-token sequence
    const cuda::StepMeta m = gpu.stage(tk, 0, {T}, {0});
    gpu.conv(m, tk.ldx);
    const double conv_ms = median_ms(gpu.g.stream, [&] { gpu.conv(m, tk.ldx); });
    const double ms = median_ms(gpu.g.stream, [&] { gpu.delta(m, tk.ldba); });
    // Useful flops of the chunked form per chunk and head (n = 64): K·Kᵀ, Q·Kᵀ (lower halves), W, U,
    // W·S, Q·S, M·Vn, Kᵀ·Vn, ≈ 2·64·(64·128 + 64·64 + 128·128·4 + 64·128 + 128·128) flops.
    const double flops = double(T / 64) * d.value_heads * 2.0 * 64 * (64 * 128 + 64 * 64 + 4 * 128 * 128 + 64 * 128 + 128 * 128);
    std::printf("[ perf ] gdn chunked delta rule, 1 seq x %d tokens, HV %d: %.3f ms (%.1f Mtok/s, ~%.1f TFLOP/s useful)\n",
                T, d.value_heads, ms, T / ms / 1e3, flops / ms / 1e9);
    setenv("GDN_DELTA_FUSED", "1", 1);  // the previous (fused) form, for comparison
    const double fused_ms = median_ms(gpu.g.stream, [&] { gpu.delta(m, tk.ldba); });
    unsetenv("GDN_DELTA_FUSED");
    std::printf("[ perf ] gdn chunked delta rule, fused form (before): %.3f ms\n", fused_ms);
    std::printf("[ perf ] gdn conv1d+silu prefill %d tokens: %.3f ms (%.0f GB/s x read + out write)\n", T, conv_ms,
                2.0 * T * C * 4 / conv_ms / 1e6);
  }
  for (int B : {1, 64}) {  // decode
    std::vector<int> lens(static_cast<size_t>(B), 1), sl(static_cast<size_t>(B));
    std::iota(sl.begin(), sl.end(), 0);
    const cuda::StepMeta m = gpu.stage(tk, 0, lens, sl);
    gpu.conv(m, tk.ldx);
    const double conv_ms = median_ms(gpu.g.stream, [&] { gpu.conv(m, tk.ldx); }, 10);
    const double conv1 = median_ms(gpu.g.stream, [&] { gpu.conv(m, tk.ldx); });
    const double ms = median_ms(gpu.g.stream, [&] { gpu.delta(m, tk.ldba); }, 10);
    const double ms1 = median_ms(gpu.g.stream, [&] { gpu.delta(m, tk.ldba); });
    std::printf("[ perf ] gdn recurrent decode batch %d: %.2f us back-to-back (state read+write %.0f GB/s), %.2f us "
                "isolated\n", B, ms * 1e3, 2.0 * B * state_bytes / ms / 1e6, ms1 * 1e3);
    std::printf("[ perf ] gdn conv1d+silu decode batch %d: %.2f us back-to-back, %.2f us isolated\n", B,
                conv_ms * 1e3, conv1 * 1e3);
  }
  {  // gated norm over 8192 tokens
    auto* y = gpu.g.arena.allocate_n<__nv_bfloat16>(size_t(T) * d.value_heads * d.value_dim);
    const int64_t VD = int64_t(d.value_heads) * d.value_dim;
    const double ms = median_ms(gpu.g.stream, [&] { cuda::gdn_gated_rmsnorm(d, gpu.o, gpu.qkv, VD, gpu.w, T, y, gpu.g.stream); });
    std::printf("[ perf ] gdn gated rmsnorm %d tokens: %.3f ms (%.0f GB/s)\n", T, ms, T * VD * 10.0 / ms / 1e6);
  }
  GDN_CUDA_CHECK(cudaStreamSynchronize(gpu.g.stream));
}

}  // namespace
}  // namespace gdn::test
