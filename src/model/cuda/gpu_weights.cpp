#include "model/cuda/gpu_weights.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"

namespace gdn::cuda {

namespace {

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Places weights: Dry only counts arena bytes; Upload copies host tensors; Random fills on the GPU.
// The same traversal runs dry first (to size the arena exactly) and then for real.
class Placer {
 public:
  enum class Mode { Dry, Upload, Random };
  Placer(Mode mode, DeviceArena* arena, cudaStream_t stream, UploadProgress* progress)
      : mode_(mode), arena_(arena), stream_(stream), progress_(progress) {
    if (mode_ == Mode::Upload) uploader_ = std::make_unique<Uploader>(*arena_, stream_, progress_);
  }
  size_t bytes() const { return bytes_; }
  void finish() {
    if (uploader_) uploader_->sync();
    GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  DeviceLinear linear(const MatrixRef& m) {
    switch (mode_) {
      case Mode::Dry:
        bytes_ += device_bytes_for(m);
        return device_layout(m);
      case Mode::Upload: return uploader_->linear(m);
      case Mode::Random: return random_linear(m, *arena_, stream_, ++seed_);
    }
    return {};
  }

  GpuProjection projection(std::vector<MatrixRef> parts) {
    GpuProjection p;
    bool fusable = parts.size() > 1;
    size_t fused_bytes = 0;
    if (fusable) {
      try {
        fused_bytes = device_bytes_for_fused(parts);
      } catch (const InputError&) {
        fusable = false;  // different schemes / dtypes: run the parts one after another
      }
    }
    if (!fusable) {
      for (const MatrixRef& m : parts) {
        p.col_begin.push_back(p.cols);
        p.linears.push_back(linear(m));
        p.cols += m.rows;
      }
      return p;
    }
    MatrixRef all = parts[0];
    all.rows = 0;
    for (const MatrixRef& m : parts) all.rows += m.rows;
    DeviceLinear d;
    switch (mode_) {
      case Mode::Dry:
        bytes_ += fused_bytes;
        d = device_layout(all);
        break;
      case Mode::Upload:
        uploader_->sync();  // keep the copies in issue order (upload_fused_linear uses its own staging)
        d = upload_fused_linear(parts, *arena_, stream_);
        if (progress_) progress_->add(d.weight_bytes());
        break;
      case Mode::Random:
        d = random_linear(all, *arena_, stream_, ++seed_);
        d.parts = int(parts.size());
        for (size_t i = 0, r = 0; i < parts.size(); ++i) {
          d.part_begin[i] = int64_t(r);
          d.part_weight_divisor[i] = d.nvfp4_weight_divisor;
          r += size_t(parts[i].rows);
          d.part_begin[i + 1] = int64_t(r);
        }
        break;
    }
    p.linears.push_back(d);
    p.col_begin.push_back(0);
    p.cols = all.rows;
    return p;
  }

  const float* vec(const std::vector<float>& v) {
    if (mode_ == Mode::Dry) {
      bytes_ += align256(v.size() * 4);
      return nullptr;
    }
    float* d = arena_->allocate_n<float>(v.size());
    GDN_CUDA_CHECK(cudaMemcpyAsync(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice, stream_));
    keep_.push_back(v);  // the async copy reads it; freed with the placer (after finish())
    if (progress_) progress_->add(int64_t(v.size() * 4));
    return d;
  }

 private:
  Mode mode_;
  DeviceArena* arena_;
  cudaStream_t stream_;
  UploadProgress* progress_;
  std::unique_ptr<Uploader> uploader_;
  size_t bytes_ = 0;
  uint64_t seed_ = 0;
  std::vector<std::vector<float>> keep_;

 public:
  void seed(uint64_t s) { seed_ = s << 20; }
};

GpuLayerWeights place_layer(Placer& p, const LayerWeights& l) {
  GpuLayerWeights g;
  g.kind = l.kind;
  g.input_norm = p.vec(l.input_norm);
  g.post_attention_norm = p.vec(l.post_attention_norm);
  if (l.kind == LayerKind::FullAttention) {
    g.attn.qkv = p.projection({l.attn.q_proj, l.attn.k_proj, l.attn.v_proj});
    g.attn.o = p.linear(l.attn.o_proj);
    g.attn.q_norm = p.vec(l.attn.q_norm);
    g.attn.k_norm = p.vec(l.attn.k_norm);
    g.attn.k_scale = l.attn.k_scale;
    g.attn.v_scale = l.attn.v_scale;
  } else {
    g.gdn.qkvz = p.projection({l.gdn.in_proj_qkv, l.gdn.in_proj_z});
    g.gdn.ba = p.projection({l.gdn.in_proj_b, l.gdn.in_proj_a});
    g.gdn.out = p.linear(l.gdn.out_proj);
    g.gdn.conv_kc = p.vec(l.gdn.conv_kc);
    g.gdn.neg_exp_A = p.vec(l.gdn.neg_exp_A);
    g.gdn.dt_bias = p.vec(l.gdn.dt_bias);
    g.gdn.norm = p.vec(l.gdn.norm);
  }
  g.gate_up = p.projection({l.mlp.gate_proj, l.mlp.up_proj});
  g.down = p.linear(l.mlp.down_proj);
  return g;
}

int64_t projection_bytes(const GpuProjection& p) {
  int64_t b = 0;
  for (const DeviceLinear& l : p.linears) b += l.weight_bytes();
  return b;
}

void place_all(Placer& p, const Qwen35Config& cfg, const ModelWeights& w, GpuWeights& g) {
  const bool tied = w.lm_head.data == w.embed.data && w.lm_head.rows == w.embed.rows &&
                    (w.embed.data != nullptr || cfg.tie_word_embeddings);
  g.embed = p.linear(w.embed);
  g.lm_head = tied ? g.embed : p.linear(w.lm_head);
  g.final_norm = p.vec(w.final_norm);
  g.layers.clear();
  for (const LayerWeights& l : w.layers) g.layers.push_back(place_layer(p, l));
  if (w.mtp) {
    GpuMtpWeights m;
    m.fc = p.linear(w.mtp->fc);
    m.pre_fc_norm_embedding = p.vec(w.mtp->pre_fc_norm_embedding);
    m.pre_fc_norm_hidden = p.vec(w.mtp->pre_fc_norm_hidden);
    m.norm = p.vec(w.mtp->norm);
    for (const LayerWeights& l : w.mtp->layers) m.layers.push_back(place_layer(p, l));
    g.mtp = std::move(m);
  }
  g.decode_stream_bytes = g.lm_head.weight_bytes();
  for (const GpuLayerWeights& l : g.layers) {
    g.decode_stream_bytes += projection_bytes(l.gate_up) + l.down.weight_bytes();
    if (l.kind == LayerKind::FullAttention)
      g.decode_stream_bytes += projection_bytes(l.attn.qkv) + l.attn.o.weight_bytes();
    else
      g.decode_stream_bytes += projection_bytes(l.gdn.qkvz) + projection_bytes(l.gdn.ba) + l.gdn.out.weight_bytes();
  }
}

GpuWeights build(const Qwen35Config& cfg, const ModelWeights& w, Placer::Mode mode, cudaStream_t stream,
                 bool progress, uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  GpuWeights g;
  Placer dry(Placer::Mode::Dry, nullptr, stream, nullptr);
  place_all(dry, cfg, w, g);
  g.bytes = int64_t(dry.bytes());
  g.arena = std::make_unique<DeviceArena>(dry.bytes() + 4096);
  std::unique_ptr<UploadProgress> prog;
  if (progress && mode == Placer::Mode::Upload) prog = std::make_unique<UploadProgress>(g.bytes);
  {
    Placer real(mode, g.arena.get(), stream, prog.get());
    real.seed(seed);
    place_all(real, cfg, w, g);
    real.finish();
  }
  if (prog) prog->finish();
  g.upload_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

// --- dummy (random) host description: shapes and schemes only, small vectors random ---

struct DummyHost {
  std::vector<std::shared_ptr<QuantInfo>> quants;
  ModelWeights w;
};

uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class DummyBuilder {
 public:
  DummyBuilder(const Qwen35Config& c, DummyLayout layout, uint64_t seed) : c_(c), layout_(layout), seed_(seed) {}

  MatrixRef dense(int64_t rows, int64_t cols) { return MatrixRef{DType::BF16, nullptr, rows, cols, nullptr}; }
  MatrixRef quantized(int64_t rows, int64_t cols, bool mtp) {
    if (layout_ == DummyLayout::Bf16 || (mtp && layout_ == DummyLayout::Nvfp4)) return dense(rows, cols);
    auto q = std::make_shared<QuantInfo>();
    DType dt = DType::F8_E4M3;
    switch (layout_) {
      case DummyLayout::Fp8PerChannel: q->scheme = {WeightFormat::Fp8PerChannel, ActQuant::Fp8PerToken}; break;
      case DummyLayout::Fp8Block128: q->scheme = {WeightFormat::Fp8Block128, ActQuant::Fp8PerGroup128}; break;
      case DummyLayout::Nvfp4:
        q->scheme = {WeightFormat::Nvfp4CT, ActQuant::Nvfp4};
        dt = DType::U8;
        // Globals like an exporter's for |W| ≲ √(3/K) and |x| ≲ 8 (global = 448·6 / amax).
        q->nvfp4_weight_divisor = 2688.f / std::sqrt(3.f / float(cols)) / 2.f;
        q->nvfp4_input_global = 2688.f / 8.f;
        break;
      case DummyLayout::Bf16: break;
    }
    host_.quants.push_back(q);
    return MatrixRef{dt, nullptr, rows, cols, q};
  }
  std::vector<float> vec(int64_t n, float lo, float hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const float u = float(mix(seed_ * 7919 + uint64_t(++counter_)) >> 40) / 16777216.f;
      v[size_t(i)] = lo + (hi - lo) * u;
    }
    return v;
  }

  LayerWeights layer(LayerKind kind, bool mtp) {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size;
    LayerWeights l;
    l.kind = kind;
    l.input_norm = vec(H, -0.1f, 0.1f);
    l.post_attention_norm = vec(H, -0.1f, 0.1f);
    if (kind == LayerKind::FullAttention) {
      const int64_t D = c_.head_dim;
      l.attn.q_proj = quantized(2 * c_.num_heads * D, H, mtp);
      l.attn.k_proj = quantized(c_.num_kv_heads * D, H, mtp);
      l.attn.v_proj = quantized(c_.num_kv_heads * D, H, mtp);
      l.attn.o_proj = quantized(H, c_.num_heads * D, mtp);
      l.attn.q_norm = vec(D, -0.1f, 0.1f);
      l.attn.k_norm = vec(D, -0.1f, 0.1f);
    } else {
      const int64_t HV = c_.linear_value_heads;
      l.gdn.in_proj_qkv = quantized(c_.conv_dim(), H, mtp);
      l.gdn.in_proj_z = quantized(c_.value_dim(), H, mtp);
      l.gdn.in_proj_b = dense(HV, H);  // excluded by every exporter (N = 48)
      l.gdn.in_proj_a = dense(HV, H);
      l.gdn.out_proj = quantized(H, c_.value_dim(), mtp);
      l.gdn.conv_kc = vec(c_.conv_kernel * c_.conv_dim(), -0.5f, 0.5f);
      l.gdn.neg_exp_A = vec(HV, -16.f, -1.f);
      l.gdn.dt_bias = vec(HV, -0.5f, 0.5f);
      l.gdn.norm = vec(c_.linear_value_dim, 0.9f, 1.1f);
    }
    l.mlp.gate_proj = quantized(I, H, mtp);
    l.mlp.up_proj = quantized(I, H, mtp);
    l.mlp.down_proj = quantized(H, I, mtp);
    return l;
  }

  DummyHost build() {
    const int64_t H = c_.hidden_size;
    host_.w.embed = dense(c_.vocab_size, H);
    host_.w.lm_head = c_.tie_word_embeddings ? host_.w.embed : dense(c_.vocab_size, H);
    if (!c_.tie_word_embeddings) host_.w.lm_head.data = reinterpret_cast<const void*>(1);  // distinct from embed
    host_.w.final_norm = vec(H, -0.1f, 0.1f);
    for (LayerKind k : c_.layer_kinds) host_.w.layers.push_back(layer(k, false));
    if (c_.mtp_layers > 0) {
      MtpWeights m;
      m.fc = quantized(H, 2 * H, true);
      m.pre_fc_norm_embedding = vec(H, -0.1f, 0.1f);
      m.pre_fc_norm_hidden = vec(H, -0.1f, 0.1f);
      m.norm = vec(H, -0.1f, 0.1f);
      for (int64_t i = 0; i < c_.mtp_layers; ++i) m.layers.push_back(layer(LayerKind::FullAttention, true));
      host_.w.mtp = std::move(m);
    }
    return std::move(host_);
  }

 private:
  const Qwen35Config& c_;
  DummyLayout layout_;
  uint64_t seed_, counter_ = 0;
  DummyHost host_;
};

}  // namespace

DummyLayout parse_dummy_layout(const std::string& name) {
  if (name == "bf16") return DummyLayout::Bf16;
  if (name == "fp8") return DummyLayout::Fp8PerChannel;
  if (name == "fp8-block") return DummyLayout::Fp8Block128;
  if (name == "nvfp4") return DummyLayout::Nvfp4;
  fail_input("dummy layout '{}' is not one of bf16, fp8, fp8-block, nvfp4", name);
}

const char* dummy_layout_name(DummyLayout l) {
  switch (l) {
    case DummyLayout::Bf16: return "bf16";
    case DummyLayout::Fp8PerChannel: return "fp8";
    case DummyLayout::Fp8Block128: return "fp8-block";
    case DummyLayout::Nvfp4: return "nvfp4";
  }
  return "?";
}

GpuWeights upload_weights(const Qwen35Config& cfg, const ModelWeights& w, cudaStream_t stream, bool progress) {
  return build(cfg, w, Placer::Mode::Upload, stream, progress, 0);
}

GpuWeights random_weights(const Qwen35Config& cfg, DummyLayout layout, cudaStream_t stream, uint64_t seed) {
  DummyHost host = DummyBuilder(cfg, layout, seed).build();
  GpuWeights g = build(cfg, host.w, Placer::Mode::Random, stream, false, seed);
  return g;
}

Qwen35Config qwen35_27b_config() {
  // config.json of Qwen3.5-27B's text model (model.md §1.2), parsed by the same code as a checkpoint's.
  std::string layer_types;
  for (int i = 0; i < 64; ++i)
    layer_types += std::string(i ? "," : "") + ((i + 1) % 4 == 0 ? "\"full_attention\"" : "\"linear_attention\"");
  const std::string json = R"({"architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5",
    "text_config": {"model_type": "qwen3_5_text", "hidden_size": 5120, "num_hidden_layers": 64,
    "intermediate_size": 17408, "num_attention_heads": 24, "num_key_value_heads": 4, "head_dim": 256,
    "linear_num_key_heads": 16, "linear_num_value_heads": 48, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "rms_norm_eps": 1e-6, "vocab_size": 248320,
    "tie_word_embeddings": false, "max_position_embeddings": 262144, "mtp_num_hidden_layers": 1,
    "eos_token_id": 248044, "hidden_act": "silu", "attn_output_gate": true,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25,
      "mrope_section": [11, 11, 10], "mrope_interleaved": true},
    "layer_types": [)" + layer_types + R"(]}, "tie_word_embeddings": false})";
  return parse_qwen35_config(json, "", "built-in Qwen3.5-27B config");
}

}  // namespace gdn::cuda
