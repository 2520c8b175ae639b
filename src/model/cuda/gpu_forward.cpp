// The layer-by-layer launch sequence of GpuModel (eager, or recorded into a CUDA graph): the same
// order of operations as model/qwen35_model.cpp + model/layers.cpp on the CPU.
#include <algorithm>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "model/cuda/gpu_model.h"

namespace gdn::cuda {

namespace {
// Steps of at least this many tokens take NVFP4 activations quantized by their producers
// (GDN_NVFP4_PRODUCER_MIN_TOKENS overrides it, for A/B runs). Every step does since the GEMV of
// linear_nvfp4_gemv.cu: H100 NVFP4 batch 1 9.81-9.91 → 9.14-9.51 ms (two runs), batch 2
// 10.02 → 9.65, batch 8 unchanged. With the mma.sync decode kernel it had been slower below 4
// tokens (batch 1 10.69 → 10.87).
int nvfp4_producer_min_tokens() {
  static const int n = [] {
    const char* e = std::getenv("GDN_NVFP4_PRODUCER_MIN_TOKENS");
    return e ? std::max(1, std::atoi(e)) : 1;
  }();
  return n;
}
}  // namespace

Fp8TokenActs GpuModel::fp8_input(const DeviceLinear& w) const {
  if (!opts_.fuse_act_quant || !xq_ || !takes_fp8_token_acts(w) || (w.cols_pad + 15) / 16 * 16 > xq_ld_) return {};
  return Fp8TokenActs{xq_, xs_, xq_ld_, w.cols_pad};
}

Fp8TokenActs GpuModel::fp8_input(const GpuProjection& p) const {
  Fp8TokenActs q = fp8_input(p.linears[0]);
  for (const DeviceLinear& d : p.linears)  // every part must take the same FP8 input
    if (!q || !fp8_input(d) || d.cols_pad != q.kpad) return {};
  return q;
}

Nvfp4Acts GpuModel::nv_input(const DeviceLinear& w, int T) const {
  // The producer's quantization saves the linear's pre-kernel (batch 8 11.92 → 11.52 ms, batch 64
  // 24.2 → 23.4 on the H100; batch 1: nvfp4_producer_min_tokens).
  if (T < nvfp4_producer_min_tokens() || !opts_.fuse_act_quant || !xv_ || !takes_nvfp4_acts(w) || w.cols != w.cols_pad ||
      w.cols_pad > xv_ld_)
    return {};
  return Nvfp4Acts{xv_, w.cols_pad, w.nvfp4_input_global};
}

Nvfp4Acts GpuModel::nv_input(const GpuProjection& p, int T) const {
  Nvfp4Acts v = nv_input(p.linears[0], T);
  for (const DeviceLinear& d : p.linears) {  // every part must take the same NVFP4 input
    const Nvfp4Acts o = nv_input(d, T);
    if (!v || !o || o.ld != v.ld || o.gx != v.gx) return {};
  }
  return v;
}

void GpuModel::linear_on(cudaStream_t s, LinearWorkspace ws, const DeviceLinear& w, const __nv_bfloat16* x, int T,
                         float* y, const Fp8TokenActs& xq, const Nvfp4Acts& xv) {
  const LinearPath path = opts_.exact_fp8 ? LinearPath::Auto : LinearPath::AutoFast;
  if (xq)
    linear_forward(w, xq, T, y, ws, s, path);
  else if (xv)
    linear_forward(w, xv, T, y, ws, s, path);
  else
    linear_forward(w, x, T, y, ws, s, path);
}

void GpuModel::linear(const DeviceLinear& w, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq,
                      const Nvfp4Acts& xv) {
  linear_on(stream_, lws_, w, x, T, y, xq, xv);
}

void GpuModel::project(const GpuProjection& p, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq,
                       const Nvfp4Acts& xv) {
  if (p.fused()) {
    linear(p.linears[0], x, T, y, xq, xv);
    return;
  }
  for (size_t i = 0; i < p.linears.size(); ++i) {
    const DeviceLinear& d = p.linears[i];
    linear(d, x, T, split_, xq, xv);
    GDN_CUDA_CHECK(cudaMemcpy2DAsync(y + p.col_begin[i], size_t(p.cols) * 4, split_, size_t(d.rows) * 4,
                                     size_t(d.rows) * 4, size_t(T), cudaMemcpyDeviceToDevice, stream_));
  }
}

bool GpuModel::linear_bf16(const DeviceLinear& w, const __nv_bfloat16* x, int T, __nv_bfloat16* y,
                           const Fp8TokenActs& xq, const Nvfp4Acts& xv) {
  static const bool env_off = std::getenv("GDN_NO_BF16_OUTPUTS") != nullptr;
  if (!opts_.bf16_outputs || env_off) return false;
  const LinearPath path = opts_.exact_fp8 ? LinearPath::Auto : LinearPath::AutoFast;
  if (xq) return linear_forward_bf16(w, xq, T, y, lws_, stream_, path);
  if (xv) return linear_forward_bf16(w, xv, T, y, lws_, stream_, path);
  return linear_forward_bf16(w, x, T, y, lws_, stream_, path);
}

GemmOut GpuModel::linear_out(const DeviceLinear& w, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq,
                             const Nvfp4Acts& xv) {
  auto* y16 = reinterpret_cast<__nv_bfloat16*>(y);
  if (linear_bf16(w, x, T, y16, xq, xv)) return y16;
  linear(w, x, T, y, xq, xv);
  return y;
}

GemmOut GpuModel::project_out(const GpuProjection& p, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq,
                              const Nvfp4Acts& xv) {
  if (p.fused()) return linear_out(p.linears[0], x, T, y, xq, xv);
  project(p, x, T, y, xq, xv);
  return y;
}

// x_ += pending (the previous block's output); then attention or DeltaNet, then the MLP, whose
// output (in delta_) it returns for the next layer's first norm or the final norm.
GemmOut GpuModel::decoder_layer(const GpuLayerWeights& l, const StepMeta& m, GpuCache& cache, int kv_layer,
                                int gdn_layer, GemmOut pending) {
  const int T = m.num_tokens, H = int(cfg_.hidden_size), I = int(cfg_.intermediate_size);
  const float eps = float(cfg_.rms_norm_eps);
  const bool attn = l.kind == LayerKind::FullAttention;
  // Each producer also quantizes its output when its consumer takes FP8 per-token activations
  // (fp8_input); its BF16 output is written only where something still reads it.
  const GpuProjection& first = attn ? l.attn.qkv : l.gdn.qkvz;
  const Fp8TokenActs q_in = fp8_input(first);
  const Nvfp4Acts v_in = q_in ? Nvfp4Acts{} : nv_input(first, T);
  const bool ba_bf16 = !attn && !(q_in && fp8_input(l.gdn.ba));
  const bool in_fused = q_in ? fp8_row_fusable(H) : v_in && nvfp4_row_fusable(v_in, H);
  add_rmsnorm(x_, pending, l.input_norm, T, H, eps, !in_fused || ba_bf16 ? xn_ : nullptr, nullptr, stream_, nullptr, 0,
              q_in, v_in);
  GemmOut block;  // the attention / DeltaNet block's output
  if (attn) {
    const AttnDims ad = attn_dims(cfg_);
    KvLayerView kv = cache.kv(kv_layer);
    kv.k_scale = l.attn.k_scale;
    kv.v_scale = l.attn.v_scale;
    project(l.attn.qkv, xn_, T, proj_, q_in, v_in);
    attention_prepare(ad, proj_, l.attn.qkv.cols, m, l.attn.q_norm, l.attn.k_norm, kv, q_, stream_);
    paged_attention(ad, q_, m, kv, proj_, l.attn.qkv.cols, attn_out_, attn_ws_, attn_ws_bytes_, stream_);
    block = linear_out(l.attn.o, attn_out_, T, delta_);
  } else {
    const GdnDims gd = gdn_dims(cfg_);
    const GdnStateView st = cache.state(gdn_layer);
    const int64_t C = gd.conv_dim();
    const Fp8TokenActs q_ba = ba_bf16 ? Fp8TokenActs{} : q_in;
    // b|a on the side stream (fork after the norm, join before the delta rule), unless a projection
    // is split into parts (they share the split_ scratch).
    const bool side = side_ && side_lws_.bytes > 0 && l.gdn.ba.fused() && l.gdn.qkvz.fused();
    if (side) {
      GDN_CUDA_CHECK(cudaEventRecord(fork_, stream_));
      GDN_CUDA_CHECK(cudaStreamWaitEvent(side_, fork_, 0));
      linear_on(side_, side_lws_, l.gdn.ba.linears[0], xn_, T, ba_, q_ba);
      GDN_CUDA_CHECK(cudaEventRecord(join_, side_));
    } else {
      project(l.gdn.ba, xn_, T, ba_, q_ba);
    }
    const GemmOut qkvz = project_out(l.gdn.qkvz, xn_, T, proj_, q_in, v_in);
    gdn_conv1d_silu(gd, qkvz, l.gdn.qkvz.cols, l.gdn.conv_kc, m, st, conv_, stream_);
    if (side) GDN_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
    gdn_delta_rule(gd, conv_, ba_, l.gdn.ba.cols, l.gdn.neg_exp_A, l.gdn.dt_bias, m, st, gdn_o_, gdn_ws_,
                   gdn_ws_bytes_, stream_);
    const Fp8TokenActs q_out = fp8_input(l.gdn.out);
    const Nvfp4Acts v_out = q_out ? Nvfp4Acts{} : nv_input(l.gdn.out, T);
    const bool out_fused = q_out ? gdn_gated_rmsnorm_fusable(gd) : v_out && gdn_gated_rmsnorm_nvfp4_fusable(gd, v_out);
    gdn_gated_rmsnorm(gd, gdn_o_, qkvz.at(C), l.gdn.qkvz.cols, l.gdn.norm, T, out_fused ? nullptr : gdn_y_, stream_,
                      q_out, v_out);
    block = linear_out(l.gdn.out, gdn_y_, T, delta_, q_out, v_out);
  }
  const Fp8TokenActs q_mlp = fp8_input(l.gate_up);
  const Nvfp4Acts v_mlp = q_mlp ? Nvfp4Acts{} : nv_input(l.gate_up, T);
  const bool mlp_fused = q_mlp ? fp8_row_fusable(H) : v_mlp && nvfp4_row_fusable(v_mlp, H);
  add_rmsnorm(x_, block, l.post_attention_norm, T, H, eps, mlp_fused ? nullptr : xn_, nullptr, stream_, nullptr, 0,
              q_mlp, v_mlp);
  const GemmOut gate_up = project_out(l.gate_up, xn_, T, proj_, q_mlp, v_mlp);
  const Fp8TokenActs q_down = fp8_input(l.down);
  const Nvfp4Acts v_down = q_down ? Nvfp4Acts{} : nv_input(l.down, T);
  const bool down_fused = q_down ? fp8_row_fusable(I) : v_down && nvfp4_row_fusable(v_down, I);
  swiglu(gate_up, T, I, down_fused ? nullptr : sw_, stream_, q_down, v_down);
  return linear_out(l.down, sw_, T, delta_, q_down, v_down);
}

void GpuModel::forward(const StepMeta& m, int rows, GpuCache& cache) {
  const int T = m.num_tokens, H = int(cfg_.hidden_size);
  const float eps = float(cfg_.rms_norm_eps);
  const int32_t* ids = meta_dev_;  // Meta::ids() == 0
  const int32_t* logit_rows = logit_rows_dev_;
  embed_lookup(w_.embed, ids, T, x_, stream_);
  GemmOut pending;
  int kv_layer = 0, gdn_layer = 0;
  for (const GpuLayerWeights& l : w_.layers) {
    pending = decoder_layer(l, m, cache, kv_layer, gdn_layer, pending);
    (l.kind == LayerKind::FullAttention ? kv_layer : gdn_layer)++;
  }
  // Final norm: all rows (fp32 hidden for the MTP head), then the rows that need logits.
  add_rmsnorm(x_, pending, w_.final_norm, T, H, eps, xn_, hidden_, stream_);
  add_rmsnorm(x_, nullptr, w_.final_norm, T, H, eps, xg_, nullptr, stream_, logit_rows, rows);
  linear(w_.lm_head, xg_, rows, logits_);
}

void GpuModel::mtp_forward(const StepMeta& m, int rows, const float* hidden, GpuCache& cache) {
  const GpuMtpWeights& mtp = *w_.mtp;
  const int T = m.num_tokens, H = int(cfg_.hidden_size);
  const float eps = float(cfg_.rms_norm_eps);
  const int32_t* ids = meta_dev_;
  const int32_t* logit_rows = logit_rows_dev_;
  // fc input per row: [norm(embedding(next id)) ; norm(hidden)], embedding first.
  embed_lookup(w_.embed, ids, T, emb_, stream_);
  add_rmsnorm(emb_, nullptr, mtp.pre_fc_norm_embedding, T, H, eps, tmp_a_, nullptr, stream_);
  // With delta == nullptr the residual argument is only read.
  add_rmsnorm(const_cast<float*>(hidden), nullptr, mtp.pre_fc_norm_hidden, T, H, eps, tmp_b_, nullptr, stream_);
  GDN_CUDA_CHECK(cudaMemcpy2DAsync(cat_, size_t(2 * H) * 2, tmp_a_, size_t(H) * 2, size_t(H) * 2, size_t(T),
                                   cudaMemcpyDeviceToDevice, stream_));
  GDN_CUDA_CHECK(cudaMemcpy2DAsync(cat_ + H, size_t(2 * H) * 2, tmp_b_, size_t(H) * 2, size_t(H) * 2, size_t(T),
                                   cudaMemcpyDeviceToDevice, stream_));
  linear(mtp.fc, cat_, T, x_);
  GemmOut pending;
  const int first_kv = int(cfg_.num_attention_layers());
  for (size_t i = 0; i < mtp.layers.size(); ++i)
    pending = decoder_layer(mtp.layers[i], m, cache, first_kv + int(i), -1, pending);
  add_rmsnorm(x_, pending, mtp.norm, T, H, eps, xg_, nullptr, stream_, logit_rows, rows);
  linear(w_.lm_head, xg_, rows, logits_);
}

}  // namespace gdn::cuda
