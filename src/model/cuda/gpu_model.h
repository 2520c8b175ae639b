// The Qwen3.5/3.6 forward on the GPU (issue 6): one batched step over a set of sequences, each
// contributing a prefill chunk or one decode token, against a paged KV cache and DeltaNet state
// slots (GpuCache). Returns logits for the requested positions and, optionally, tokens sampled on
// the GPU. Decode steps replay CUDA graphs captured per (batch-size bucket, context bucket).
//
// Numerics: residual stream, norms, DeltaNet state and softmax in fp32; GEMM inputs in BF16 (then
// quantized as the checkpoint declares, exactly like the CPU reference); q/K/V in BF16 (or FP8 KV).
// So the GPU matches the fp32 CPU reference to BF16 noise, not bit for bit.
#pragma once

#include <cuda_bf16.h>

#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <vector>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/sampling_cuda.h"
#include "kernels/cuda/step_meta.h"
#include "model/cuda/gpu_cache.h"
#include "model/cuda/gpu_weights.h"

namespace gdn::cuda {

struct GpuModelOptions {
  int max_tokens = 2048;    // tokens per step (the prefill chunk size is at most this)
  int max_seqs = 64;        // sequences per step
  int max_context = 32768;  // positions per sequence (block-table width)
  int max_logit_rows = 0;   // logits rows per step; 0 = max(max_seqs, 64)
  std::vector<int> graph_batches = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256};  // ≤ max_seqs used
  bool use_graphs = true;
  int64_t sample_below = 0;  // > 0: ids ≥ this are never sampled (the embedding table's padding rows)
  // false: W8A8 FP8 decode GEMVs may use the native FP8 tensor-core kernel (LinearPath::AutoFast,
  // ~2.5e-4 relative per output, like cuBLASLt's FP8 at large M); true: the exact mma.sync kernel.
  bool exact_fp8 = false;
  // The ops producing an FP8-per-token linear's input (the norms, SwiGLU, the DeltaNet gated norm)
  // quantize it themselves instead of the linear's pre-kernel: the same codes and scales, bit for
  // bit, in fewer kernels and bytes; likewise NVFP4 activations in steps of ≥ 4 tokens. false: the
  // separate pre-kernel (A/B checks).
  bool fuse_act_quant = true;
  // DeltaNet's b|a projection runs on a side stream, concurrently with in_proj_qkv|z and the conv
  // (it only joins before the delta rule): one small GEMV off the critical path of every DeltaNet
  // layer. Only when both projections are single fused linears.
  bool overlap_ba = true;
  // Where cuBLASLt computes gate|up, DeltaNet's qkv|z and the block outputs (o_proj, out_proj,
  // down_proj: large steps), it writes them in BF16, which SwiGLU, the conv, the gated norm and the
  // residual add read (they round an fp32 input to BF16 the same way, so results do not depend on
  // the path): half the bytes of a prefill's largest intermediates. GDN_NO_BF16_OUTPUTS=1 turns it
  // off (A/B runs).
  bool bf16_outputs = true;
};

// One sequence's part of a step.
struct SeqStep {
  std::span<const int32_t> tokens;  // n ≥ 1 new tokens (for mtp_step: the ids that follow each position)
  int32_t start = 0;                // position of tokens[0] (tokens already in this sequence's cache)
  std::span<const int32_t> blocks;  // KV blocks covering positions [0, start + n)
  int32_t slot = -1;                // DeltaNet state slot (ignored by mtp_step)
  int32_t logits = 1;               // logits for the last `logits` tokens (0 … n)
  const GpuSamplingRow* sample = nullptr;  // sample a token from the last row (then logits must be 1)
  std::span<const PenaltyEntry> penalties; // this sequence's penalty list (with sample)
};

struct StepOutput {
  int rows = 0;                  // logits rows: each sequence's last `logits` tokens, in order
  const float* logits = nullptr; // device [rows, vocab], valid until the next step
  std::vector<int32_t> sampled;  // per sequence: the sampled id, −1 when it did not sample
  bool graph = false;            // replayed a CUDA graph
};

class GpuModel {
 public:
  // Takes the weights; allocates activations and workspaces for the options; runs one warm-up step
  // of max_tokens tokens on a temporary cache to measure the activation peak.
  GpuModel(const Qwen35Config& cfg, GpuWeights weights, const GpuModelOptions& opts);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const Qwen35Config& config() const { return cfg_; }
  const GpuWeights& weights() const { return w_; }
  const GpuModelOptions& options() const { return opts_; }
  cudaStream_t stream() const { return stream_; }
  int64_t activation_bytes() const { return act_bytes_; }         // arena of buffers + workspaces
  int64_t activation_peak_bytes() const { return act_peak_; }     // measured: arena + what the warm-up added
  bool has_mtp() const { return w_.mtp.has_value(); }
  int mtp_layers() const { return w_.mtp ? int(w_.mtp->layers.size()) : 0; }

  // A cache sized from the free GPU memory left (minus reserve_bytes) with `state_slots` slots,
  // or exactly `num_blocks` blocks when > 0.
  std::unique_ptr<GpuCache> make_cache(KvDtype kv, int state_slots, int64_t reserve_bytes = int64_t(1) << 30,
                                       int num_blocks = 0) const;

  // Runs the step. Throws InputError for a step that does not fit the options (too many tokens,
  // sequences, logits rows; positions past max_context; blocks not covering the positions; ids
  // outside the vocabulary) — nothing has run then. use_graph = false forces eager execution.
  StepOutput step(std::span<const SeqStep> seqs, GpuCache& cache, bool use_graph = true);

  // The MTP head (model.md §5.1) over the same sequences: row t combines the main step's final-normed
  // hidden row t (last_hidden() of the step just run, same token order) with seqs' tokens[t] (the
  // next ids), at the same positions, writing the MTP layer's own KV (cache layers after the main
  // stack's). Logits as in step(); no sampling.
  StepOutput mtp_step(std::span<const SeqStep> seqs, const float* hidden, GpuCache& cache);

  // Final-normed hidden states [T, H] (fp32) of the last step() (what lm_head and the MTP head read).
  const float* last_hidden() const { return hidden_; }
  int last_tokens() const { return last_T_; }

  // Copies `out.logits` to host memory (rows × vocab floats); synchronises the stream.
  void copy_logits(const StepOutput& out, float* host) const;

 private:
  struct Meta;  // host mirror of the packed step metadata
  struct Graph;
  void allocate_buffers();
  void warm_up();
  int pack(std::span<const SeqStep> seqs, bool mtp, int pad_to);  // returns logits rows
  void forward(const StepMeta& m, int rows, GpuCache& cache);
  void mtp_forward(const StepMeta& m, int rows, const float* hidden, GpuCache& cache);
  // Adds `pending` (the previous block's output) into x_, runs the layer, and returns its MLP output
  // (in delta_), which the next layer's first norm or the final norm adds.
  GemmOut decoder_layer(const GpuLayerWeights& l, const StepMeta& m, GpuCache& cache, int kv_layer, int gdn_layer,
                        GemmOut pending);
  // xq / xv: the input already quantized by its producer (FP8 per token / NVFP4), else x.
  void project(const GpuProjection& p, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq = {},
               const Nvfp4Acts& xv = {});
  void linear(const DeviceLinear& w, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq = {},
              const Nvfp4Acts& xv = {});
  // A linear's output as BF16 (linear_forward_bf16) into y; false, with nothing written, where that
  // does not apply (the caller then runs the fp32 path).
  bool linear_bf16(const DeviceLinear& w, const __nv_bfloat16* x, int T, __nv_bfloat16* y, const Fp8TokenActs& xq = {},
                   const Nvfp4Acts& xv = {});
  // The output of a linear / projection whose consumers take a GemmOut, into y's buffer: BF16 where
  // linear_bf16 applies (a fused projection), else fp32.
  GemmOut linear_out(const DeviceLinear& w, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq = {},
                     const Nvfp4Acts& xv = {});
  GemmOut project_out(const GpuProjection& p, const __nv_bfloat16* x, int T, float* y, const Fp8TokenActs& xq = {},
                      const Nvfp4Acts& xv = {});
  // The same on another stream with its own workspace (the b|a side stream).
  void linear_on(cudaStream_t s, LinearWorkspace ws, const DeviceLinear& w, const __nv_bfloat16* x, int T, float* y,
                 const Fp8TokenActs& xq, const Nvfp4Acts& xv = {});
  // The FP8 per-token input buffer for the consumer(s), when they take it and fusion is on; else {}.
  Fp8TokenActs fp8_input(const GpuProjection& p) const;
  Fp8TokenActs fp8_input(const DeviceLinear& w) const;
  // The NVFP4 input buffer for the consumer(s) (same G_x, no K padding) of a T-token step, when
  // fusion is on; else {}.
  Nvfp4Acts nv_input(const GpuProjection& p, int T) const;
  Nvfp4Acts nv_input(const DeviceLinear& w, int T) const;
  void sample(std::span<const SeqStep> seqs, int rows, StepOutput& out);
  StepMeta device_meta() const;

  Qwen35Config cfg_;
  GpuWeights w_;
  GpuModelOptions opts_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t side_ = nullptr;                         // b|a (overlap_ba)
  cudaEvent_t fork_ = nullptr, join_ = nullptr;         // side_ waits for fork_, stream_ for join_
  std::unique_ptr<DeviceArena> act_;
  int64_t act_bytes_ = 0, act_peak_ = 0;
  int max_logit_rows_ = 0, max_blocks_ = 0, penalty_capacity_ = 0;

  // device buffers
  int32_t* meta_dev_ = nullptr;  // packed int32 metadata (offsets in Meta)
  int32_t* meta_host_ = nullptr; // pinned mirror
  const int32_t* logit_rows_dev_ = nullptr;
  size_t meta_ints_ = 0;
  float *x_ = nullptr, *delta_ = nullptr, *hidden_ = nullptr, *proj_ = nullptr, *split_ = nullptr, *ba_ = nullptr;
  float *conv_ = nullptr, *gdn_o_ = nullptr, *logits_ = nullptr, *emb_ = nullptr;
  __nv_bfloat16 *xn_ = nullptr, *xg_ = nullptr, *q_ = nullptr, *attn_out_ = nullptr, *gdn_y_ = nullptr, *sw_ = nullptr;
  __nv_bfloat16 *cat_ = nullptr, *tmp_a_ = nullptr, *tmp_b_ = nullptr;
  uint8_t* xq_ = nullptr;  // FP8 codes [T][xq_ld_] of the next linear's input (fuse_act_quant)
  float* xs_ = nullptr;    // their per-token scales [T]
  int64_t xq_ld_ = 0;
  __nv_bfloat16* xv_ = nullptr;  // NVFP4-quantized input [T][ld = the consumer's cols_pad] (fuse_act_quant)
  int64_t xv_ld_ = 0;            // the widest such consumer
  LinearWorkspace lws_, side_lws_;
  void* attn_ws_ = nullptr;
  size_t attn_ws_bytes_ = 0;
  void* gdn_ws_ = nullptr;
  size_t gdn_ws_bytes_ = 0;
  void* samp_ws_ = nullptr;
  size_t samp_ws_bytes_ = 0;
  GpuSamplingRow* samp_rows_ = nullptr;
  PenaltyEntry* penalties_ = nullptr;
  int32_t* sampled_ = nullptr;
  void* samp_host_ = nullptr;  // pinned: rows + penalties staging, then sampled ids

  // step state
  StepMeta host_fields_;
  int last_T_ = 0;
  std::map<std::pair<int, int>, std::unique_ptr<Graph>> graphs_;  // by (batch bucket, context bucket)
  uint64_t graph_cache_ = 0;  // GpuCache::id() the graphs were captured against
};

// Loads the GPU model from a checkpoint directory (config + safetensors → validated host weights →
// upload).
std::unique_ptr<GpuModel> load_gpu_model(const std::string& dir, ActivationMode mode, const GpuModelOptions& opts,
                                         bool progress = true);

bool cuda_device_available();

}  // namespace gdn::cuda
