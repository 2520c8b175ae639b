// GPU attention (attention_prepare + paged_attention) against the CPU reference: kernels/cpu
// rmsnorm_1p + apply_rope + causal_attention on the same inputs, gate applied as in
// model/layers.cpp attention_block.
//
// The reference reads q, K and V rounded exactly like the GPU stores them (q and BF16 KV through
// bf16, FP8 KV through float_to_fp8_e4m3(x / scale)·scale), so what remains is the kernels' own
// error: P rounded to bf16 before P·V on the tensor cores (2⁻⁹ relative per weight), fp32 summation
// order, and the bf16 output (2⁻⁹ relative). Tolerances, per checked output:
//   max|Δ| ≤ 2e-2·max|ref|  and  ‖Δ‖₂/‖ref‖₂ ≤ 1e-2   (attention output, bf16 operands)
//   q and cache rows: within one bf16 ulp (2⁻⁷ relative; the GPU's fp32 norm/RoPE may round the
//   other way at a tie) or one E4M3 step (2⁻³ relative), plus 2⁻¹⁶·max|ref| absolute for RoPE
//   outputs that cancel to almost nothing (measured on H100: a handful of such values per 10⁶);
//   ≤ 0.1% of the stored values may differ at all (measured: ~4e-6 BF16, ~1e-7 FP8).
// A wrong mask, block lookup, scale or RoPE moves outputs by O(1) relative, far outside these.
// Unwritten cache rows are poisoned with 0xFF (NaN in bf16 and E4M3): a kernel that lets them into
// P·V produces NaN, and a write to a padding slot (−1) shows up as a changed poison row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/attention_cuda.h"

namespace gdn::test {
namespace {

using cuda::AttnDims;
using cuda::KvDtype;
using cuda::KvLayerView;
using cuda::StepMeta;
constexpr int kBT = cuda::kKvBlockTokens;

AttnDims dims27b() { return AttnDims{24, 4, 256, 64, 1e7f, 1e-6f}; }

struct SeqSpec {
  int past = 0, len = 0;  // cached before this step, new tokens in it
  bool pad = false;       // padding sequence: slots −1, output unchecked
};

struct Case {
  std::string name;
  AttnDims d;
  KvDtype dt = KvDtype::Bf16;
  float k_scale = 1.f, v_scale = 1.f;
  std::vector<SeqSpec> seqs;
  uint64_t seed = 1;
};

// Deterministic raw projection value of column col for (sequence, position).
struct Raw {
  uint64_t seed;
  int width;  // 2·H·D + 2·KVH·D
  int q_end, k_end;
  float operator()(int seq, int pos, int col) const {
    const uint64_t h = mix64(mix64(seed * 1000003ull + uint64_t(seq)) + uint64_t(pos));
    const uint64_t r = mix64(h + uint64_t(col));
    float v = unit_float(r);
    if (col < q_end) return v * 2.f;         // q and gate (gate in ±2: sigmoid 0.12 … 0.88)
    if (col < k_end) return v * 1.5f + 0.3f; // k (the norm removes the magnitude)
    if ((r >> 12) % 61 == 0) v *= 6.f;      // v: sparse larger entries
    return v;
  }
};

float round_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }
float round_kv(float x, KvDtype dt, float scale) {
  if (dt == KvDtype::Bf16) return round_bf16(x);
  return fp8_e4m3_table()[float_to_fp8_e4m3(x / scale)] * scale;
}

struct Stats {
  double max_abs = 0, max_ref = 0, d2 = 0, r2 = 0;
  int64_t nonfinite = 0, n = 0;
  int64_t worst = -1;
  void add(double got, double want, int64_t idx) {
    ++n;
    if (!std::isfinite(got)) {
      ++nonfinite;
      if (worst < 0) worst = idx;
      return;
    }
    const double d = std::fabs(got - want);
    if (d > max_abs) max_abs = d, worst = idx;
    max_ref = std::max(max_ref, std::fabs(want));
    d2 += d * d;
    r2 += want * want;
  }
  double rel_rms() const { return r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2); }
  std::string str() const {
    char b[256];
    std::snprintf(b, sizeof b, "max|Δ| %.3g vs max|ref| %.3g (%.3g), rms rel %.3g, non-finite %lld of %lld, worst idx %lld",
                  max_abs, max_ref, max_ref > 0 ? max_abs / max_ref : 0.0, rel_rms(), (long long)nonfinite,
                  (long long)n, (long long)worst);
    return b;
  }
};

// Host-side step description and its device copy.
struct HostStep {
  std::vector<int32_t> cu, kv_lens, positions, seq_of, table, slots;
  StepMeta meta;
};

template <typename T>
T* upload(cuda::DeviceArena& a, const std::vector<T>& v, cudaStream_t s) {
  T* p = a.allocate_n<T>(std::max<size_t>(v.size(), 1));
  if (!v.empty()) GDN_CUDA_CHECK(cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, s));
  return p;
}

void upload_meta(cuda::DeviceArena& a, HostStep& st, cudaStream_t s) {
  st.meta.cu_seqlens = upload(a, st.cu, s);
  st.meta.kv_lens = upload(a, st.kv_lens, s);
  st.meta.positions = upload(a, st.positions, s);
  st.meta.seq_of_token = upload(a, st.seq_of, s);
  st.meta.block_table = upload(a, st.table, s);
  st.meta.slot_mapping = upload(a, st.slots, s);
}

void run_case(const Case& c) {
  SCOPED_TRACE(c.name);
  const AttnDims& d = c.d;
  const int H = d.heads, KVH = d.kv_heads, D = d.head_dim;
  const int width = 2 * H * D + 2 * KVH * D, ld = width + 4;
  const Raw raw{c.seed, width, 2 * H * D, 2 * H * D + KVH * D};
  const int S = int(c.seqs.size());

  // Norm weights (1 + w in 0.5 … 2.5: scores of a few units, a peaky softmax).
  std::vector<float> qw(static_cast<size_t>(D)), kw(static_cast<size_t>(D));
  for (int i = 0; i < D; ++i) {
    qw[size_t(i)] = unit_float(mix64(c.seed * 7 + uint64_t(i))) + 0.5f;
    kw[size_t(i)] = unit_float(mix64(c.seed * 13 + uint64_t(i))) + 0.5f;
  }

  // Shuffled block assignment, plus unused blocks that must stay poisoned.
  int total_blocks = 0, max_blocks = 1, max_kv = 1, max_q = 0, T = 0;
  std::vector<int> need(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    const auto& q = c.seqs[size_t(s)];
    need[size_t(s)] = q.pad ? 1 : (q.past + q.len + kBT - 1) / kBT;
    if (!q.pad) total_blocks += need[size_t(s)];
    max_blocks = std::max(max_blocks, need[size_t(s)] + 1);
    max_kv = std::max(max_kv, q.past + q.len);
    max_q = std::max(max_q, q.len);
    T += q.len;
  }
  const int num_blocks = total_blocks + 5;
  std::vector<int> perm(static_cast<size_t>(num_blocks));
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = num_blocks - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(mix64(c.seed + uint64_t(i)) % uint64_t(i + 1))]);
  std::vector<int32_t> table(size_t(S) * max_blocks, -1);
  {
    int next = 0;
    for (int s = 0; s < S; ++s)
      for (int j = 0; j < need[size_t(s)]; ++j)
        table[size_t(s) * max_blocks + j] = c.seqs[size_t(s)].pad ? perm[0] : perm[size_t(next++)];
  }
  auto slot_of = [&](int s, int pos) {
    return c.seqs[size_t(s)].pad ? -1 : table[size_t(s) * max_blocks + pos / kBT] * kBT + pos % kBT;
  };

  // --- CPU reference: K/V of every cached position (rounded like the cache), q of the step.
  const size_t kv_row = size_t(KVH) * D;
  std::vector<std::vector<float>> refK(static_cast<size_t>(S)), refV(static_cast<size_t>(S));
  pool().parallel_for(S, [&](int64_t b, int64_t e) {
    std::vector<float> x(kv_row);
    for (int64_t s = b; s < e; ++s) {
      const auto& q = c.seqs[size_t(s)];
      if (q.pad) continue;
      const int L = q.past + q.len;
      refK[size_t(s)].resize(size_t(L) * kv_row);
      refV[size_t(s)].resize(size_t(L) * kv_row);
      for (int p = 0; p < L; ++p) {
        for (size_t i = 0; i < kv_row; ++i) x[i] = raw(int(s), p, 2 * H * D + int(i));
        rmsnorm_1p(x.data(), kw.data(), KVH, D, d.norm_eps, x.data());
        const int64_t pos64 = p;
        apply_rope(x.data(), 1, KVH, D, d.rotary_dim, d.rope_theta, &pos64);
        for (size_t i = 0; i < kv_row; ++i) {
          refK[size_t(s)][size_t(p) * kv_row + i] = round_kv(x[i], c.dt, c.k_scale);
          refV[size_t(s)][size_t(p) * kv_row + i] = round_kv(raw(int(s), p, 2 * H * D + KVH * D + int(i)), c.dt, c.v_scale);
        }
      }
    }
  });

  // --- device buffers
  const size_t elem = c.dt == KvDtype::Fp8E4m3 ? 1 : 2;
  const size_t cache_bytes = size_t(num_blocks) * KVH * kBT * D * elem;
  const int hist_chunk = 4096;
  const size_t ws_bytes = cuda::attention_workspace_bytes(d, T, S, max_kv + 300);
  GpuCtx g(2 * cache_bytes + size_t(std::max(T, hist_chunk)) * ld * 4 + size_t(std::max(T, hist_chunk)) * H * D * 4 +
           ws_bytes + (size_t(64) << 20));
  KvLayerView kv;
  kv.k = g.arena.allocate(cache_bytes);
  kv.v = g.arena.allocate(cache_bytes);
  kv.dtype = c.dt;
  kv.k_scale = c.k_scale;
  kv.v_scale = c.v_scale;
  kv.num_blocks = num_blocks;
  GDN_CUDA_CHECK(cudaMemsetAsync(kv.k, 0xFF, cache_bytes, g.stream));
  GDN_CUDA_CHECK(cudaMemsetAsync(kv.v, 0xFF, cache_bytes, g.stream));
  float* qkv = g.arena.allocate_n<float>(size_t(std::max(T, hist_chunk)) * ld);
  auto* q_out = g.arena.allocate_n<__nv_bfloat16>(size_t(std::max(T, hist_chunk)) * H * D);
  auto* out = g.arena.allocate_n<__nv_bfloat16>(size_t(std::max(T, 1)) * H * D);
  const float* d_qw = upload(g.arena, qw, g.stream);
  const float* d_kw = upload(g.arena, kw, g.stream);
  void* ws = ws_bytes ? g.arena.allocate(ws_bytes) : nullptr;

  // --- history: the `past` tokens written by earlier prepare calls (only k/v columns matter).
  {
    std::vector<std::pair<int, int>> hist;
    for (int s = 0; s < S; ++s)
      if (!c.seqs[size_t(s)].pad)
        for (int p = 0; p < c.seqs[size_t(s)].past; ++p) hist.push_back({s, p});
    std::vector<float> rows;
    for (size_t b = 0; b < hist.size(); b += hist_chunk) {
      const int n = int(std::min(hist.size() - b, size_t(hist_chunk)));
      rows.assign(size_t(n) * ld, 0.f);
      pool().parallel_for(n, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const auto [s, p] = hist[b + size_t(i)];
          for (int col = 2 * H * D; col < width; ++col) rows[size_t(i) * ld + col] = raw(s, p, col);
        }
      });
      HostStep st;
      for (int i = 0; i < n; ++i) {
        st.positions.push_back(hist[b + size_t(i)].second);
        st.slots.push_back(slot_of(hist[b + size_t(i)].first, hist[b + size_t(i)].second));
        st.seq_of.push_back(0);
      }
      st.cu = {0, n};
      st.kv_lens = {0};
      st.table = {0};
      st.meta.num_seqs = 1;
      st.meta.num_tokens = n;
      upload_meta(g.arena, st, g.stream);
      GDN_CUDA_CHECK(cudaMemcpyAsync(qkv, rows.data(), rows.size() * 4, cudaMemcpyHostToDevice, g.stream));
      cuda::attention_prepare(d, qkv, ld, st.meta, d_qw, d_kw, kv, q_out, g.stream);
      g.stream.sync();
    }
  }

  // --- the step
  HostStep st;
  st.cu.push_back(0);
  std::vector<float> rows(size_t(T) * ld, 0.f);
  std::vector<std::pair<int, int>> tok;  // (seq, pos)
  for (int s = 0; s < S; ++s) {
    const auto& q = c.seqs[size_t(s)];
    for (int i = 0; i < q.len; ++i) {
      const int p = q.past + i;
      tok.push_back({s, p});
      st.positions.push_back(p);
      st.slots.push_back(slot_of(s, p));
      st.seq_of.push_back(s);
    }
    st.cu.push_back(int32_t(tok.size()));
    st.kv_lens.push_back(q.past + q.len);
  }
  pool().parallel_for(T, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int col = 0; col < width; ++col) rows[size_t(i) * ld + col] = raw(tok[size_t(i)].first, tok[size_t(i)].second, col);
  });
  st.table = table;
  st.meta.num_seqs = S;
  st.meta.num_tokens = T;
  st.meta.max_q_len = max_q;
  st.meta.max_kv_len = max_kv + 300;  // an upper bound, not the exact maximum
  st.meta.max_blocks = max_blocks;
  upload_meta(g.arena, st, g.stream);
  GDN_CUDA_CHECK(cudaMemcpyAsync(qkv, rows.data(), rows.size() * 4, cudaMemcpyHostToDevice, g.stream));
  GDN_CUDA_CHECK(cudaMemsetAsync(q_out, 0xFF, size_t(T) * H * D * 2, g.stream));
  GDN_CUDA_CHECK(cudaMemsetAsync(out, 0xFF, size_t(T) * H * D * 2, g.stream));
  cuda::attention_prepare(d, qkv, ld, st.meta, d_qw, d_kw, kv, q_out, g.stream);
  cuda::paged_attention(d, q_out, st.meta, kv, qkv, ld, out, ws, ws_bytes, g.stream);
  GDN_CUDA_CHECK_LAUNCH();
  std::vector<uint16_t> hq(size_t(T) * H * D), ho(size_t(T) * H * D);
  std::vector<uint8_t> hk(cache_bytes), hv(cache_bytes);
  GDN_CUDA_CHECK(cudaMemcpyAsync(hq.data(), q_out, hq.size() * 2, cudaMemcpyDeviceToHost, g.stream));
  GDN_CUDA_CHECK(cudaMemcpyAsync(ho.data(), out, ho.size() * 2, cudaMemcpyDeviceToHost, g.stream));
  GDN_CUDA_CHECK(cudaMemcpyAsync(hk.data(), kv.k, cache_bytes, cudaMemcpyDeviceToHost, g.stream));
  GDN_CUDA_CHECK(cudaMemcpyAsync(hv.data(), kv.v, cache_bytes, cudaMemcpyDeviceToHost, g.stream));
  g.stream.sync();

  // --- reference q (normed, roped, bf16) and attention output per sequence.
  std::vector<float> ref_q(size_t(T) * H * D), ref_o(size_t(T) * H * D);
  for (int s = 0; s < S; ++s) {
    const auto& q = c.seqs[size_t(s)];
    const int t0 = st.cu[size_t(s)];
    for (int i = 0; i < q.len; ++i) {
      float* qr = ref_q.data() + size_t(t0 + i) * H * D;
      for (int h = 0; h < H; ++h)
        for (int k = 0; k < D; ++k) qr[h * D + k] = rows[size_t(t0 + i) * ld + size_t(h) * 2 * D + k];
      rmsnorm_1p(qr, qw.data(), H, D, d.norm_eps, qr);
      const int64_t p = q.past + i;
      apply_rope(qr, 1, H, D, d.rotary_dim, d.rope_theta, &p);
      for (int k = 0; k < H * D; ++k) qr[k] = round_bf16(qr[k]);
    }
    if (q.pad || q.len == 0) continue;
    causal_attention({q.len, H, KVH, D, q.past}, ref_q.data() + size_t(t0) * H * D, refK[size_t(s)].data(),
                     refV[size_t(s)].data(), 1.f / std::sqrt(float(D)), ref_o.data() + size_t(t0) * H * D, pool());
    for (int i = 0; i < q.len; ++i)
      for (int h = 0; h < H; ++h)
        for (int k = 0; k < D; ++k)
          ref_o[size_t(t0 + i) * H * D + h * D + k] *= sigmoid(rows[size_t(t0 + i) * ld + size_t(h) * 2 * D + D + k]);
  }

  // q_out: every token (padding tokens get q too).
  Stats sq;
  int64_t q_bad = 0;
  float q_max = 0.f;
  for (float v : ref_q) q_max = std::max(q_max, std::fabs(v));
  // Absolute floor: RoPE outputs that cancel to almost nothing carry the fp32 error of their
  // operands (~1e-6·max), which is a large relative error of a tiny value; 2⁻¹⁶·max is 50× that.
  const float q_floor = 0x1p-16f * q_max;
  std::string q_first;
  for (size_t i = 0; i < hq.size(); ++i) {
    const float gq = bf16_to_float(hq[i]), wq = ref_q[i];
    sq.add(gq, wq, int64_t(i));
    if (!(std::fabs(gq - wq) <= std::fabs(wq) * 0x1p-7f + q_floor)) {
      if (q_bad++ == 0) q_first = "first at " + std::to_string(i) + ": got " + std::to_string(gq) + " want " + std::to_string(wq);
    }
  }
  EXPECT_EQ(q_bad, 0) << "q_out: " << sq.str() << "; " << q_first;

  // Cache: every written row equals the rounded reference; every other row is still poison.
  const size_t blk_elems = size_t(KVH) * kBT * D;
  std::vector<uint8_t> owned(size_t(num_blocks) * kBT, 0);
  Stats sk, sv;
  int64_t kv_far = 0, kv_diff = 0, kv_n = 0;
  auto cache_val = [&](const std::vector<uint8_t>& buf, size_t idx, float scale) -> float {
    if (c.dt == KvDtype::Fp8E4m3) return fp8_e4m3_table()[buf[idx]] * scale;
    uint16_t u;
    std::memcpy(&u, buf.data() + 2 * idx, 2);
    return bf16_to_float(u);
  };
  const float step_rel = c.dt == KvDtype::Fp8E4m3 ? 0.125f : 0x1p-7f;
  float k_max = 0.f;
  for (const auto& v : refK)
    for (float x : v) k_max = std::max(k_max, std::fabs(x));
  const float k_floor = 0x1p-16f * k_max + (c.dt == KvDtype::Fp8E4m3 ? 0x1p-9f * c.k_scale : 0.f);  // as q_floor
  std::string k_first;
  for (int s = 0; s < S; ++s) {
    const auto& q = c.seqs[size_t(s)];
    if (q.pad) continue;
    for (int p = 0; p < q.past + q.len; ++p) {
      const int slot = slot_of(s, p);
      owned[size_t(slot)] = 1;
      for (int h = 0; h < KVH; ++h)
        for (int k = 0; k < D; ++k) {
          const size_t idx = size_t(slot / kBT) * blk_elems + (size_t(h) * kBT + slot % kBT) * D + k;
          const float gk = cache_val(hk, idx, c.k_scale), wk = refK[size_t(s)][size_t(p) * kv_row + h * D + k];
          const float gv = cache_val(hv, idx, c.v_scale), wv = refV[size_t(s)][size_t(p) * kv_row + h * D + k];
          sk.add(gk, wk, int64_t(idx));
          sv.add(gv, wv, int64_t(idx));
          kv_n += 2;
          kv_diff += (gk != wk) + (gv != wv);
          const bool k_far = !(std::fabs(gk - wk) <= std::fabs(wk) * step_rel + k_floor);
          if (k_far && k_first.empty())
            k_first = "first K at seq " + std::to_string(s) + " pos " + std::to_string(p) + " head " + std::to_string(h) +
                      " dim " + std::to_string(k) + ": got " + std::to_string(gk) + " want " + std::to_string(wk);
          kv_far += k_far + (gv != wv);  // v is not transformed: exact
        }
    }
  }
  int64_t poison_bad = 0;
  for (int b = 0; b < num_blocks; ++b)
    for (int h = 0; h < KVH; ++h)
      for (int r = 0; r < kBT; ++r) {
        if (owned[size_t(b) * kBT + r]) continue;
        const size_t off = (size_t(b) * blk_elems + (size_t(h) * kBT + r) * D) * elem;
        for (size_t i = 0; i < D * elem; ++i) poison_bad += (hk[off + i] != 0xFF) + (hv[off + i] != 0xFF);
      }
  EXPECT_EQ(kv_far, 0) << "cache K: " << sk.str() << " | V: " << sv.str() << "; " << k_first;
  EXPECT_LE(double(kv_diff), 1e-3 * double(kv_n)) << kv_diff << " of " << kv_n << " cache values differ";
  EXPECT_EQ(poison_bad, 0) << "bytes of unowned cache rows were written";

  // Attention output of the real tokens.
  Stats so;
  for (int s = 0; s < S; ++s) {
    if (c.seqs[size_t(s)].pad) continue;
    for (int t = st.cu[size_t(s)]; t < st.cu[size_t(s) + 1]; ++t)
      for (int i = 0; i < H * D; ++i) {
        const size_t idx = size_t(t) * H * D + i;
        so.add(bf16_to_float(ho[idx]), ref_o[idx], int64_t(idx));
      }
  }
  std::printf("[ attn ] %-28s T=%d S=%d path=%s: out %s | q mism %lld | kv diff %lld/%lld\n", c.name.c_str(), T, S,
              max_q > 1 ? "prefill" : "decode", so.str().c_str(), (long long)q_bad, (long long)kv_diff, (long long)kv_n);
  if (so.worst >= 0 && (so.nonfinite > 0 || so.max_abs > 2e-2 * so.max_ref)) {
    const int64_t t = so.worst / (H * D), h = (so.worst % (H * D)) / D, k = so.worst % D;
    std::printf("[ attn ]   worst at token %lld (pos %d, seq %d) head %lld dim %lld: got %g want %g\n", (long long)t,
                st.positions[size_t(t)], st.seq_of[size_t(t)], (long long)h, (long long)k,
                bf16_to_float(ho[size_t(so.worst)]), ref_o[size_t(so.worst)]);
  }
  EXPECT_EQ(so.nonfinite, 0) << so.str();
  EXPECT_LE(so.max_abs, 2e-2 * so.max_ref) << so.str();
  EXPECT_LE(so.rel_rms(), 1e-2) << so.str();
}

// Shapes of the test fixtures (tests/fixtures/*/config.json) and odd ones.
std::vector<AttnDims> small_dims() {
  return {AttnDims{4, 2, 64, 16, 1e4f, 1e-6f},   AttnDims{6, 2, 16, 8, 1e4f, 1e-6f}, AttnDims{4, 2, 32, 8, 1e6f, 1e-6f},
          AttnDims{2, 1, 64, 16, 1e7f, 1e-6f},   AttnDims{8, 1, 128, 32, 1e6f, 1e-6f},
          AttnDims{32, 1, 64, 16, 1e4f, 1e-6f}};  // group 32 > 16: decode falls back to the tiled kernel
}
std::string dims_name(const AttnDims& d) {
  return "h" + std::to_string(d.heads) + "kv" + std::to_string(d.kv_heads) + "d" + std::to_string(d.head_dim);
}

std::vector<SeqSpec> decode_seqs() {
  std::vector<SeqSpec> v;
  for (int L : {1, 2, 63, 64, 65, 127, 500, 1000, 2047, 3000, 4096, 5000, 6001, 7000, 8191, 9000}) v.push_back({L - 1, 1});
  std::swap(v[3], v[11]);
  v.insert(v.begin() + 5, SeqSpec{4, 1, true});  // padding sequence (slot −1)
  return v;
}
std::vector<SeqSpec> mixed_seqs() {
  return {{0, 65}, {100, 1}, {0, 3, true}, {0, 513}, {37, 200}};
}

TEST(AttnPrepare, Kv27bOnly) {
  // prepare alone is checked inside every case; this one isolates it with a short step and a
  // position far along (large RoPE angles).
  run_case({"27b prepare far", dims27b(), KvDtype::Bf16, 1, 1, {{20000, 5}}, 31});
}

// The 27B's head_dim with a BF16 cache runs on the wgmma kernel on Hopper; each such case also runs
// on the mma.sync kernel (set_prefill_wgmma_mode(0)), so both stay checked against the CPU.
void run_both_prefill_kernels(const Case& c) {
  run_case(c);
  cuda::set_prefill_wgmma_mode(0);
  Case old = c;
  old.name += " (mma.sync)";
  run_case(old);
  cuda::set_prefill_wgmma_mode(-1);
}

TEST(AttnPrefill, Single1000From0Bf16) {
  run_both_prefill_kernels({"27b prefill 1000", dims27b(), KvDtype::Bf16, 1, 1, {{0, 1000}}, 11});
}
TEST(AttnPrefill, ChunkAfter700Bf16) {
  run_both_prefill_kernels({"27b chunk 700+300", dims27b(), KvDtype::Bf16, 1, 1, {{700, 300}}, 11});
}
TEST(AttnPrefill, ChunkAfter700Fp8) {
  run_case({"27b chunk 700+300 fp8", dims27b(), KvDtype::Fp8E4m3, 0.04f, 0.02f, {{700, 300}}, 12});
}
TEST(AttnPrefill, VarlenMixedPaddingBf16) {
  run_both_prefill_kernels({"27b varlen mixed", dims27b(), KvDtype::Bf16, 1, 1, mixed_seqs(), 13});
}
// Many sequences of odd lengths in one step: query tiles that end mid-block, a second warpgroup
// with no rows, partial last blocks, chunks that start mid-block.
TEST(AttnPrefill, ManyOddSequencesBf16) {
  run_both_prefill_kernels(
      {"27b many odd", dims27b(), KvDtype::Bf16, 1, 1, {{0, 2}, {5, 63}, {64, 64}, {0, 129}, {130, 70}, {1, 1}, {300, 190}}, 17});
}
TEST(AttnPrefill, VarlenMixedPaddingFp8) {
  run_case({"27b varlen mixed fp8", dims27b(), KvDtype::Fp8E4m3, 0.05f, 0.03f, mixed_seqs(), 14});
}
TEST(AttnPrefill, SmallDims) {
  for (const auto& d : small_dims()) {
    run_case({dims_name(d) + " mixed", d, KvDtype::Bf16, 1, 1, mixed_seqs(), 15});
    run_case({dims_name(d) + " mixed fp8", d, KvDtype::Fp8E4m3, 0.03f, 0.02f, {{0, 130}, {70, 60}}, 16});
  }
}
TEST(AttnDecode, SixteenSeqsBf16) { run_case({"27b decode 16", dims27b(), KvDtype::Bf16, 1, 1, decode_seqs(), 21}); }
TEST(AttnDecode, SixteenSeqsFp8) {
  run_case({"27b decode 16 fp8", dims27b(), KvDtype::Fp8E4m3, 0.04f, 0.02f, decode_seqs(), 22});
}
TEST(AttnDecode, SmallDims) {
  for (const auto& d : small_dims()) {
    run_case({dims_name(d) + " decode", d, KvDtype::Bf16, 1, 1, {{0, 1}, {64, 1}, {4, 1, true}, {1999, 1}, {700, 1}}, 23});
    run_case({dims_name(d) + " decode fp8", d, KvDtype::Fp8E4m3, 0.03f, 0.02f, {{129, 1}, {3000, 1}}, 24});
  }
}
// --- timings (27B dims, BF16 KV): cudaEvent, median of 20.
template <typename F>
float median_ms(cudaStream_t s, F&& f) {
  cuda::Event a, b;
  std::vector<float> v;
  f();
  GDN_CUDA_CHECK(cudaStreamSynchronize(s));
  for (int i = 0; i < 20; ++i) {
    a.record(s);
    f();
    b.record(s);
    v.push_back(b.ms_since(a));
  }
  std::sort(v.begin(), v.end());
  return v[10];
}

struct PerfStep {
  HostStep st;
  KvLayerView kv;
};

// All sequences of equal length: a prefill (q_len = kv_len) or a decode step (q_len = 1).
void perf_case(GpuCtx& g, const AttnDims& d, KvDtype dt, int seqs, int kv_len, int q_len, const char* label) {
  g.arena.reset();
  const int H = d.heads, KVH = d.kv_heads, D = d.head_dim;
  const int nblk = (kv_len + kBT - 1) / kBT, T = seqs * q_len;
  HostStep st;
  st.cu.push_back(0);
  for (int s = 0; s < seqs; ++s) {
    for (int i = 0; i < q_len; ++i) {
      st.positions.push_back(kv_len - q_len + i);
      st.seq_of.push_back(s);
    }
    st.cu.push_back(int32_t(st.positions.size()));
    st.kv_lens.push_back(kv_len);
    for (int j = 0; j < nblk; ++j) st.table.push_back(int32_t((size_t(s) * nblk + j) * 7919 % (size_t(seqs) * nblk)));
    for (int i = 0; i < q_len; ++i) {
      const int p = kv_len - q_len + i;
      st.slots.push_back(st.table[size_t(s) * nblk + p / kBT] * kBT + p % kBT);
    }
  }
  st.meta.num_seqs = seqs;
  st.meta.num_tokens = T;
  st.meta.max_q_len = q_len;
  st.meta.max_kv_len = kv_len;
  st.meta.max_blocks = nblk;
  upload_meta(g.arena, st, g.stream);
  KvLayerView kv;
  kv.dtype = dt;
  kv.num_blocks = seqs * nblk;
  const size_t cache_bytes = cuda::kv_block_bytes(d, dt) / 2 * size_t(kv.num_blocks);
  kv.k = g.arena.allocate(cache_bytes);
  kv.v = g.arena.allocate(cache_bytes);
  GDN_CUDA_CHECK(cudaMemsetAsync(kv.k, 0x3C, cache_bytes, g.stream));  // finite values: bf16 0x3C3C, e4m3 0x3C
  GDN_CUDA_CHECK(cudaMemsetAsync(kv.v, 0x3C, cache_bytes, g.stream));
  const int gate_ld = 2 * H * D + 2 * KVH * D;
  auto* q = g.arena.allocate_n<__nv_bfloat16>(size_t(T) * H * D);
  auto* gate = g.arena.allocate_n<float>(size_t(T) * gate_ld);
  auto* out = g.arena.allocate_n<__nv_bfloat16>(size_t(T) * H * D);
  GDN_CUDA_CHECK(cudaMemsetAsync(q, 0x3C, size_t(T) * H * D * 2, g.stream));
  GDN_CUDA_CHECK(cudaMemsetAsync(gate, 0, size_t(T) * gate_ld * 4, g.stream));
  const size_t ws_bytes = cuda::attention_workspace_bytes(d, T, seqs, kv_len);
  void* ws = ws_bytes ? g.arena.allocate(ws_bytes) : nullptr;
  const float ms = median_ms(g.stream, [&] { cuda::paged_attention(d, q, st.meta, kv, gate, gate_ld, out, ws, ws_bytes, g.stream); });
  if (q_len > 1) {
    const double flops = 4.0 * double(T) * double(T) / 2.0 * D * H;
    std::printf("[ perf ] %s: %.3f ms, %.1f TFLOP/s (causal FLOPs 4·T²/2·D·heads)\n", label, ms, flops / ms * 1e-9);
  } else {
    const double bytes = 2.0 * double(seqs) * kv_len * KVH * D * (dt == KvDtype::Fp8E4m3 ? 1 : 2);
    std::printf("[ perf ] %s: %.1f us, %.0f GB/s (K+V bytes read)\n", label, ms * 1e3, bytes / ms * 1e-6);
  }
  // The prepare kernel at the same token count (prefill only).
  if (q_len > 1) {
    auto* qkv = g.arena.allocate_n<float>(size_t(T) * gate_ld);
    GDN_CUDA_CHECK(cudaMemsetAsync(qkv, 0, size_t(T) * gate_ld * 4, g.stream));
    auto* w = g.arena.allocate_n<float>(size_t(D));
    GDN_CUDA_CHECK(cudaMemsetAsync(w, 0, size_t(D) * 4, g.stream));
    const float pms = median_ms(g.stream, [&] { cuda::attention_prepare(d, qkv, gate_ld, st.meta, w, w, kv, q, g.stream); });
    std::printf("[ perf ] attention_prepare T=%d: %.1f us (%.0f GB/s of fp32 qkv read)\n", T, pms * 1e3,
                double(T) * (2 * H * D / 2 + 2 * KVH * D) * 4 / pms * 1e-6);
  }
}

TEST(AttnPerf, Timings27b) {
  const auto& info = cuda::device_info();
  std::printf("[ perf ] device %s, %d SMs\n", info.name.c_str(), info.sm_count);
  GpuCtx g(size_t(3) << 30);
  const AttnDims d = dims27b();
  perf_case(g, d, KvDtype::Bf16, 1, 8192, 8192, "prefill 1×8192 bf16 KV");
  cuda::set_prefill_wgmma_mode(0);
  perf_case(g, d, KvDtype::Bf16, 1, 8192, 8192, "prefill 1×8192 bf16 KV, mma.sync kernel");
  cuda::set_prefill_wgmma_mode(-1);
  perf_case(g, d, KvDtype::Fp8E4m3, 1, 8192, 8192, "prefill 1×8192 fp8 KV");
  perf_case(g, d, KvDtype::Bf16, 1, 8192, 1, "decode b1 kv8192 bf16");
  perf_case(g, d, KvDtype::Bf16, 1, 32768, 1, "decode b1 kv32768 bf16");
  perf_case(g, d, KvDtype::Bf16, 64, 2048, 1, "decode b64 kv2048 bf16");
  perf_case(g, d, KvDtype::Fp8E4m3, 1, 32768, 1, "decode b1 kv32768 fp8");
  perf_case(g, d, KvDtype::Fp8E4m3, 64, 2048, 1, "decode b64 kv2048 fp8");
}

}  // namespace
}  // namespace gdn::test
