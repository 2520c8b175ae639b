#include "model/cuda/gpu_model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "model/cuda/model_kernels.h"
#include "model/qwen35_model.h"

namespace gdn::cuda {

namespace {
int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
}  // namespace

// Packed int32 step metadata: fixed offsets (capacity-based), so CUDA graphs captured over these
// buffers stay valid for every later step of their bucket.
struct GpuModel::Meta {
  int64_t T = 0, S = 0, R = 0, MB = 0;
  int64_t ids() const { return 0; }
  int64_t positions() const { return T; }
  int64_t seq_of_token() const { return 2 * T; }
  int64_t slot_mapping() const { return 3 * T; }
  int64_t cu_seqlens() const { return 4 * T; }
  int64_t kv_lens() const { return 4 * T + S + 1; }
  int64_t state_slots() const { return 4 * T + 2 * S + 1; }
  int64_t logit_rows() const { return 4 * T + 3 * S + 1; }
  int64_t block_table() const { return round_up(4 * T + 3 * S + 1 + R, 64); }
  int64_t total() const { return block_table() + S * MB; }
};

struct GpuModel::Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

GpuModel::GpuModel(const Qwen35Config& cfg, GpuWeights weights, const GpuModelOptions& opts)
    : cfg_(cfg), w_(std::move(weights)), opts_(opts) {
  opts_.max_seqs = std::max(1, opts_.max_seqs);
  opts_.max_tokens = std::max(opts_.max_tokens, opts_.max_seqs);
  max_logit_rows_ = opts_.max_logit_rows > 0 ? opts_.max_logit_rows : std::max(opts_.max_seqs, 64);
  max_blocks_ = int((opts_.max_context + kKvBlockTokens - 1) / kKvBlockTokens);
  std::erase_if(opts_.graph_batches, [&](int b) { return b < 1 || b > opts_.max_seqs; });
  std::sort(opts_.graph_batches.begin(), opts_.graph_batches.end());
  GDN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  if (opts_.overlap_ba) {
    GDN_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    GDN_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    GDN_CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
  }
  size_t free0 = 0, total = 0;
  GDN_CUDA_CHECK(cudaMemGetInfo(&free0, &total));
  allocate_buffers();
  warm_up();
  size_t free1 = 0;
  GDN_CUDA_CHECK(cudaMemGetInfo(&free1, &total));
  act_peak_ = int64_t(free0) - int64_t(free1);
}

GpuModel::~GpuModel() {
  graphs_.clear();
  if (meta_host_) cudaFreeHost(meta_host_);
  if (samp_host_) cudaFreeHost(samp_host_);
  if (join_) cudaEventDestroy(join_);
  if (fork_) cudaEventDestroy(fork_);
  if (side_) cudaStreamDestroy(side_);
  if (stream_) cudaStreamDestroy(stream_);
}

void GpuModel::allocate_buffers() {
  const int64_t T = opts_.max_tokens, S = opts_.max_seqs, R = max_logit_rows_;
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size, I = cfg_.intermediate_size;
  const int64_t QD = cfg_.num_heads * cfg_.head_dim, C = cfg_.conv_dim(), VD = cfg_.value_dim();
  const int64_t HV = cfg_.linear_value_heads;
  Meta mt{T, S, R, max_blocks_};
  meta_ints_ = size_t(mt.total());
  penalty_capacity_ = int(R * 4096);

  // Largest projection output, the scratch of unfused projections, the linear workspace, and the
  // row width of the fused FP8 activations (the widest padded K of a linear that takes them).
  int64_t proj_cols = 2 * I, split_cols = 0;
  size_t lws = 0, side_lws = 0;
  xq_ld_ = 0;
  xv_ld_ = 0;
  auto see_linear = [&](const DeviceLinear& d, int64_t m) {
    lws = std::max(lws, linear_workspace_bytes(d, m));
    if (takes_fp8_token_acts(d)) xq_ld_ = std::max(xq_ld_, round_up(d.cols_pad, 16));
    if (takes_nvfp4_acts(d)) xv_ld_ = std::max(xv_ld_, d.cols_pad);
  };
  auto see_proj = [&](const GpuProjection& p) {
    proj_cols = std::max(proj_cols, p.cols);
    for (const DeviceLinear& d : p.linears) {
      see_linear(d, T);
      if (!p.fused()) split_cols = std::max(split_cols, d.rows);
    }
  };
  auto see_layer = [&](const GpuLayerWeights& l) {
    if (l.kind == LayerKind::FullAttention) {
      see_proj(l.attn.qkv);
      see_linear(l.attn.o, T);
    } else {
      see_proj(l.gdn.qkvz);
      see_proj(l.gdn.ba);
      if (side_)
        for (const DeviceLinear& d : l.gdn.ba.linears) side_lws = std::max(side_lws, linear_workspace_bytes(d, T));
      see_linear(l.gdn.out, T);
    }
    see_proj(l.gate_up);
    see_linear(l.down, T);
  };
  for (const GpuLayerWeights& l : w_.layers) see_layer(l);
  if (w_.mtp) {
    see_linear(w_.mtp->fc, T);
    for (const GpuLayerWeights& l : w_.mtp->layers) see_layer(l);
  }
  see_linear(w_.lm_head, R);
  attn_ws_bytes_ = attention_workspace_bytes(attn_dims(cfg_), int(T), int(S), opts_.max_context);
  gdn_ws_bytes_ = gdn_workspace_bytes(gdn_dims(cfg_), int(T), int(S));
  samp_ws_bytes_ = sampling_workspace_bytes(int(S), int(V));

  // Sizes of every buffer; the arena is sized from the same list.
  struct Buf {
    void** ptr;
    size_t bytes;
  };
  const std::vector<Buf> bufs = {
      {reinterpret_cast<void**>(&meta_dev_), meta_ints_ * 4},
      {reinterpret_cast<void**>(&x_), size_t(T * H) * 4},
      {reinterpret_cast<void**>(&delta_), size_t(T * H) * 4},
      {reinterpret_cast<void**>(&hidden_), size_t(T * H) * 4},
      {reinterpret_cast<void**>(&emb_), w_.mtp ? size_t(T * H) * 4 : 0},
      {reinterpret_cast<void**>(&proj_), size_t(T * proj_cols) * 4},
      {reinterpret_cast<void**>(&split_), size_t(T * split_cols) * 4},
      {reinterpret_cast<void**>(&ba_), size_t(T * 2 * HV) * 4},
      {reinterpret_cast<void**>(&conv_), size_t(T * C) * 4},
      {reinterpret_cast<void**>(&gdn_o_), size_t(T * VD) * 4},
      {reinterpret_cast<void**>(&logits_), size_t(R * V) * 4},
      {reinterpret_cast<void**>(&xn_), size_t(T * H) * 2},
      {reinterpret_cast<void**>(&xg_), size_t(R * H) * 2},
      {reinterpret_cast<void**>(&q_), size_t(T * QD) * 2},
      {reinterpret_cast<void**>(&attn_out_), size_t(T * QD) * 2},
      {reinterpret_cast<void**>(&gdn_y_), size_t(T * VD) * 2},
      {reinterpret_cast<void**>(&sw_), size_t(T * I) * 2},
      {reinterpret_cast<void**>(&cat_), w_.mtp ? size_t(T * 2 * H) * 2 : 0},
      {reinterpret_cast<void**>(&tmp_a_), w_.mtp ? size_t(T * H) * 2 : 0},
      {reinterpret_cast<void**>(&tmp_b_), w_.mtp ? size_t(T * H) * 2 : 0},
      {reinterpret_cast<void**>(&xq_), opts_.fuse_act_quant ? size_t(T * xq_ld_) : 0},
      {reinterpret_cast<void**>(&xs_), opts_.fuse_act_quant && xq_ld_ > 0 ? size_t(T) * 4 : 0},
      {reinterpret_cast<void**>(&xv_), opts_.fuse_act_quant ? size_t(T * xv_ld_) * 2 : 0},
      {&lws_.ptr, lws},
      {&side_lws_.ptr, side_lws},
      {&attn_ws_, attn_ws_bytes_},
      {&gdn_ws_, gdn_ws_bytes_},
      {&samp_ws_, samp_ws_bytes_},
      {reinterpret_cast<void**>(&samp_rows_), size_t(S) * sizeof(GpuSamplingRow)},
      {reinterpret_cast<void**>(&penalties_), size_t(penalty_capacity_) * sizeof(PenaltyEntry)},
      {reinterpret_cast<void**>(&sampled_), size_t(S) * 4},
  };
  size_t total = 0;
  for (const Buf& b : bufs) total += round_up(int64_t(std::max<size_t>(b.bytes, 1)), 256);
  act_ = std::make_unique<DeviceArena>(total);
  for (const Buf& b : bufs) *b.ptr = act_->allocate(std::max<size_t>(b.bytes, 1));
  act_bytes_ = int64_t(total);
  logit_rows_dev_ = meta_dev_ + mt.logit_rows();
  lws_.bytes = lws;
  linear_workspace_init(lws_, stream_);
  side_lws_.bytes = side_lws;
  if (side_lws > 0) linear_workspace_init(side_lws_, stream_);
  GDN_CUDA_CHECK(cudaMallocHost(&meta_host_, meta_ints_ * 4));
  std::memset(meta_host_, 0, meta_ints_ * 4);
  GDN_CUDA_CHECK(cudaMallocHost(&samp_host_, size_t(S) * sizeof(GpuSamplingRow) +
                                                 size_t(penalty_capacity_) * sizeof(PenaltyEntry) + size_t(S) * 4));
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void GpuModel::warm_up() {
  // One full-size prefill on a throw-away cache: touches every buffer and cuBLASLt's algorithm
  // caches, so the memory measured after it is the real activation peak.
  const int T = opts_.max_tokens;
  GpuCacheShape shape;
  shape.num_blocks = (T + kKvBlockTokens - 1) / kKvBlockTokens + 1;
  shape.state_slots = 1;
  GpuCache cache(cfg_, mtp_layers(), shape, stream_);
  std::vector<int32_t> ids(size_t(T), 0), blocks = cache.allocate_blocks(shape.num_blocks - 1);
  const int32_t slot = cache.allocate_slot();
  SeqStep s;
  s.tokens = ids;
  s.blocks = blocks;
  s.slot = slot;
  step(std::span<const SeqStep>(&s, 1), cache, false);
  if (w_.mtp) mtp_step(std::span<const SeqStep>(&s, 1), hidden_, cache);
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

std::unique_ptr<GpuCache> GpuModel::make_cache(KvDtype kv, int state_slots, int64_t reserve_bytes,
                                               int num_blocks) const {
  size_t free = 0, total = 0;
  GDN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const int64_t block_bytes = kv_block_bytes_all_layers(cfg_, mtp_layers(), kv);
  const int64_t slot_bytes = state_slot_bytes_all_layers(cfg_) * state_slots;
  const int64_t avail = int64_t(free) - reserve_bytes - slot_bytes;
  GpuCacheShape shape;
  shape.kv_dtype = kv;
  shape.state_slots = state_slots;
  shape.num_blocks = num_blocks > 0 ? num_blocks : int(std::min<int64_t>(avail / std::max<int64_t>(block_bytes, 1), 1 << 30));
  if (shape.num_blocks < 2 || (num_blocks > 0 && avail < block_bytes * num_blocks))
    fail_input("GPU memory: {:.2f} GiB free after weights ({:.2f} GiB) and activations ({:.2f} GiB); {} state slots "
               "take {:.2f} GiB and each KV block of {} tokens {:.1f} MiB — not enough for {} blocks",
               free / 1073741824.0, w_.bytes / 1073741824.0, act_peak_ / 1073741824.0, state_slots,
               slot_bytes / 1073741824.0, kKvBlockTokens, block_bytes / 1048576.0, num_blocks > 0 ? num_blocks : 2);
  return std::make_unique<GpuCache>(cfg_, mtp_layers(), shape, stream_);
}

StepMeta GpuModel::device_meta() const {
  const Meta mt{opts_.max_tokens, opts_.max_seqs, max_logit_rows_, max_blocks_};
  StepMeta m = host_fields_;
  m.cu_seqlens = meta_dev_ + mt.cu_seqlens();
  m.kv_lens = meta_dev_ + mt.kv_lens();
  m.positions = meta_dev_ + mt.positions();
  m.seq_of_token = meta_dev_ + mt.seq_of_token();
  m.block_table = meta_dev_ + mt.block_table();
  m.slot_mapping = meta_dev_ + mt.slot_mapping();
  m.state_slots = meta_dev_ + mt.state_slots();
  return m;
}

int GpuModel::pack(std::span<const SeqStep> seqs, bool mtp, int pad_to) {
  const Meta mt{opts_.max_tokens, opts_.max_seqs, max_logit_rows_, max_blocks_};
  const int S = int(seqs.size());
  if (S == 0) fail_input("step: no sequences");
  if (S > opts_.max_seqs) fail_input("step: {} sequences, the model was set up for at most {}", S, opts_.max_seqs);
  int64_t T = 0, rows = 0;
  for (int s = 0; s < S; ++s) {
    const SeqStep& q = seqs[size_t(s)];
    const int64_t n = int64_t(q.tokens.size());
    if (n < 1) fail_input("step: sequence {} has no tokens", s);
    if (q.start < 0 || q.start + n > opts_.max_context)
      fail_input("step: sequence {} covers positions [{}, {}), max_context is {}", s, q.start, q.start + n,
                 opts_.max_context);
    if (int64_t(q.blocks.size()) * kKvBlockTokens < q.start + n)
      fail_input("step: sequence {} has {} KV blocks, positions up to {} need {}", s, q.blocks.size(), q.start + n,
                 (q.start + n + kKvBlockTokens - 1) / kKvBlockTokens);
    if (q.logits < 0 || q.logits > n) fail_input("step: sequence {} asks for {} logits rows of {} tokens", s, q.logits, n);
    if (!mtp && q.slot < 0) fail_input("step: sequence {} has no state slot", s);
    validate_token_ids(q.tokens, cfg_.vocab_size);
    T += n;
    rows += q.logits;
  }
  const int S_all = std::max(S, pad_to);
  const int64_t T_all = T + (S_all - S);
  const int64_t R_all = rows + (S_all - S);
  if (T_all > opts_.max_tokens) fail_input("step: {} tokens, the model was set up for at most {}", T_all, opts_.max_tokens);
  if (R_all > max_logit_rows_) fail_input("step: {} logits rows, at most {}", R_all, max_logit_rows_);

  int32_t* h = meta_host_;
  int64_t t = 0, r = 0, max_q = 0, max_kv = 0;
  h[mt.cu_seqlens()] = 0;
  for (int s = 0; s < S_all; ++s) {
    const bool pad = s >= S;
    const SeqStep* q = pad ? nullptr : &seqs[size_t(s)];
    const int64_t n = pad ? 1 : int64_t(q->tokens.size()), start = pad ? 0 : q->start;
    int32_t* bt = h + mt.block_table() + int64_t(s) * max_blocks_;
    const int64_t nb = pad ? 0 : std::min<int64_t>(int64_t(q->blocks.size()), max_blocks_);
    for (int64_t b = 0; b < max_blocks_; ++b) bt[b] = b < nb ? q->blocks[size_t(b)] : 0;
    for (int64_t i = 0; i < n; ++i, ++t) {
      const int64_t pos = start + i;
      h[mt.ids() + t] = pad ? 0 : q->tokens[size_t(i)];
      h[mt.positions() + t] = int32_t(pos);
      h[mt.seq_of_token() + t] = s;
      h[mt.slot_mapping() + t] = pad ? -1 : bt[pos / kKvBlockTokens] * kKvBlockTokens + int32_t(pos % kKvBlockTokens);
    }
    const int64_t nl = pad ? 1 : q->logits;
    for (int64_t i = 0; i < nl; ++i) h[mt.logit_rows() + r++] = int32_t(t - nl + i);
    h[mt.cu_seqlens() + s + 1] = int32_t(t);
    h[mt.kv_lens() + s] = int32_t(start + n);
    h[mt.state_slots() + s] = pad || mtp ? -1 : q->slot;
    max_q = std::max(max_q, n);
    max_kv = std::max(max_kv, start + n);
  }
  host_fields_ = StepMeta{};
  host_fields_.num_seqs = S_all;
  host_fields_.num_tokens = int(T_all);
  host_fields_.max_q_len = int(max_q);
  // Padded (graph-bucket) decode steps: the same launch shapes for every replay of a graph, which
  // is keyed by (batch bucket, this context bucket): a power of two ≥ 1024, at most max_context, so
  // short contexts do not pay for the split-KV partials of the longest one.
  int kv_bucket = 1024;
  while (kv_bucket < max_kv && kv_bucket < opts_.max_context) kv_bucket *= 2;
  host_fields_.max_kv_len = pad_to > 0 ? std::min(kv_bucket, opts_.max_context) : int(max_kv);
  host_fields_.max_blocks = max_blocks_;
  GDN_CUDA_CHECK(cudaMemcpyAsync(meta_dev_, h, size_t(mt.block_table()) * 4, cudaMemcpyHostToDevice, stream_));
  GDN_CUDA_CHECK(cudaMemcpyAsync(meta_dev_ + mt.block_table(), h + mt.block_table(),
                                 size_t(S_all) * size_t(max_blocks_) * 4, cudaMemcpyHostToDevice, stream_));
  return int(R_all);
}

StepOutput GpuModel::step(std::span<const SeqStep> seqs, GpuCache& cache, bool use_graph) {
  bool decode = true, sampling = false;
  for (const SeqStep& q : seqs) {
    decode = decode && q.tokens.size() == 1 && q.logits == 1;
    sampling = sampling || q.sample;
  }
  if (sampling)
    for (size_t s = 0; s < seqs.size(); ++s)
      if (!seqs[s].sample || seqs[s].logits != 1)
        fail_input("step: when one sequence samples, all must, with logits = 1 (sequence {} does not)", s);
  int bucket = 0;
  if (decode)
    for (int b : opts_.graph_batches)
      if (b >= int(seqs.size())) {
        bucket = b;
        break;
      }
  StepOutput out;
  const int rows_all = pack(seqs, false, bucket);
  const StepMeta m = device_meta();
  if (bucket > 0 && use_graph && opts_.use_graphs) {
    if (graph_cache_ != cache.id()) {
      graphs_.clear();
      graph_cache_ = cache.id();
    }
    std::unique_ptr<Graph>& g = graphs_[{bucket, host_fields_.max_kv_len}];
    if (!g) {
      g = std::make_unique<Graph>();
      GDN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        forward(m, rows_all, cache);
      } catch (...) {
        cudaGraph_t dead = nullptr;
        cudaStreamEndCapture(stream_, &dead);
        if (dead) cudaGraphDestroy(dead);
        g.reset();
        throw;
      }
      GDN_CUDA_CHECK(cudaStreamEndCapture(stream_, &g->graph));
      GDN_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
    }
    GDN_CUDA_CHECK(cudaGraphLaunch(g->exec, stream_));
    out.graph = true;
  } else {
    forward(m, rows_all, cache);
  }
  last_T_ = host_fields_.num_tokens;
  out.rows = rows_all - (host_fields_.num_seqs - int(seqs.size()));  // padding rows come last
  out.logits = logits_;
  out.sampled.assign(seqs.size(), -1);
  if (sampling) sample(seqs, out.rows, out);
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (sampling) std::memcpy(out.sampled.data(), samp_host_, seqs.size() * 4);
  return out;
}

StepOutput GpuModel::mtp_step(std::span<const SeqStep> seqs, const float* hidden, GpuCache& cache) {
  if (!w_.mtp) fail_input("mtp_step: the checkpoint has no MTP head");
  const int rows = pack(seqs, true, 0);
  mtp_forward(device_meta(), rows, hidden, cache);
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
  StepOutput out;
  out.rows = rows;
  out.logits = logits_;
  out.sampled.assign(seqs.size(), -1);
  return out;
}

void GpuModel::sample(std::span<const SeqStep> seqs, int rows, StepOutput& out) {
  auto* rows_h = static_cast<GpuSamplingRow*>(samp_host_);
  auto* pen_h = reinterpret_cast<PenaltyEntry*>(rows_h + opts_.max_seqs);
  int32_t np = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    rows_h[s] = *seqs[s].sample;
    if (np + int64_t(seqs[s].penalties.size()) > penalty_capacity_)
      fail_input("step: penalty lists hold more than {} entries", penalty_capacity_);
    rows_h[s].penalty_begin = np;
    for (const PenaltyEntry& e : seqs[s].penalties) pen_h[np++] = e;
    rows_h[s].penalty_end = np;
  }
  GDN_CUDA_CHECK(cudaMemcpyAsync(samp_rows_, rows_h, seqs.size() * sizeof(GpuSamplingRow), cudaMemcpyHostToDevice,
                                 stream_));
  if (np > 0)
    GDN_CUDA_CHECK(cudaMemcpyAsync(penalties_, pen_h, size_t(np) * sizeof(PenaltyEntry), cudaMemcpyHostToDevice, stream_));
  // Rows past the tokenizer's ids (padding of the embedding table) are never sampled.
  const int64_t V = cfg_.vocab_size;
  if (opts_.sample_below > 0 && opts_.sample_below < V)
    mask_logits_tail(logits_, rows, int(V), int(opts_.sample_below), stream_);
  sample_tokens(logits_, rows, int(V), samp_rows_, penalties_, sampled_, samp_ws_, samp_ws_bytes_, stream_);
  // Sampled ids land in the (now free) pinned staging area.
  GDN_CUDA_CHECK(cudaMemcpyAsync(samp_host_, sampled_, seqs.size() * 4, cudaMemcpyDeviceToHost, stream_));
  (void)out;
}

void GpuModel::copy_logits(const StepOutput& out, float* host) const {
  GDN_CUDA_CHECK(cudaMemcpyAsync(host, out.logits, size_t(out.rows) * size_t(cfg_.vocab_size) * 4,
                                 cudaMemcpyDeviceToHost, stream_));
  GDN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

std::unique_ptr<GpuModel> load_gpu_model(const std::string& dir, ActivationMode mode, const GpuModelOptions& opts,
                                         bool progress) {
  auto host = Qwen35Model::load(dir, mode);
  cudaStream_t s = nullptr;
  GDN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  GpuWeights w;
  try {
    w = upload_weights(host->config(), host->weights(), s, progress);
  } catch (...) {
    cudaStreamDestroy(s);
    throw;
  }
  cudaStreamDestroy(s);
  return std::make_unique<GpuModel>(host->config(), std::move(w), opts);
}

}  // namespace gdn::cuda
