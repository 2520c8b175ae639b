// Weight upload: host (mmap'd checkpoint) → device layouts of linear_cuda.h, through two pinned
// staging buffers so the host-side conversion of one chunk overlaps the copy of the previous one.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/linear_internal.h"

namespace gdn::cuda {

namespace {

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
size_t align256(int64_t b) { return size_t(round_up(b, 256)); }

struct Geometry {
  DeviceWeightKind kind = DeviceWeightKind::Bf16;
  int64_t rows_pad = 0, cols_pad = 0;
  int64_t code_bytes = 0, scale_count = 0, scale_ld = 0, block_scale_bytes = 0;
};

Geometry geometry(const MatrixRef& h) {
  Geometry g;
  const WeightFormat f = h.quant ? h.quant->scheme.weight : WeightFormat::Dense;
  if (f == WeightFormat::Fp8PerChannel || f == WeightFormat::Fp8Block128) g.kind = DeviceWeightKind::Fp8;
  if (f == WeightFormat::Nvfp4ModelOpt || f == WeightFormat::Nvfp4CT) g.kind = DeviceWeightKind::Nvfp4;
  g.rows_pad = round_up(h.rows, detail::kRowPad);
  g.cols_pad = round_up(h.cols, detail::group_elems(g.kind));
  switch (g.kind) {
    case DeviceWeightKind::Bf16: g.code_bytes = g.rows_pad * g.cols_pad * 2; break;
    case DeviceWeightKind::Fp8: g.code_bytes = g.rows_pad * g.cols_pad; break;
    case DeviceWeightKind::Nvfp4:
      g.code_bytes = g.rows_pad * g.cols_pad / 2;
      g.block_scale_bytes = g.rows_pad * g.cols_pad / 16;
      break;
  }
  if (f == WeightFormat::Fp8PerChannel) g.scale_count = g.rows_pad;
  if (f == WeightFormat::Fp8Block128) {
    g.scale_ld = round_up((h.cols + 127) / 128, 4);
    g.scale_count = (h.rows + 127) / 128 * g.scale_ld;
  }
  return g;
}

}  // namespace

uint32_t nvfp4_device_word(uint32_t natural, bool negate) {
  // Bits each element's code sets, per element position and code (one OR per element: uploads of
  // the 27B encode ~1.7·10⁹ words).
  static const auto kTable = [] {
    std::array<std::array<uint32_t, 16>, 8> t{};
    constexpr int kRot[3] = {0, 4, 10};
    for (int e = 0; e < 8; ++e)
      for (uint32_t code = 0; code < 16; ++code) {
        const int j = e / 2, half = 16 * (e % 2);
        const int target[4] = {6 + half, 7 + half, 8 + half, 15 + half};  // m, e0, e1, sign
        for (int b = 0; b < 4; ++b) {
          const int rot = j < 3 ? kRot[j] : ((target[b] & 15) == 8 ? 30 : 6);
          t[size_t(e)][code] |= ((code >> b) & 1u) << ((target[b] - rot + 32) % 32);
        }
      }
    return t;
  }();
  const uint32_t flip = negate ? 0x88888888u : 0u;
  const uint32_t w = natural ^ flip;
  uint32_t out = 0;
  for (int e = 0; e < 8; ++e) out |= kTable[size_t(e)][(w >> (4 * e)) & 0xFu];
  return out;
}

uint8_t nvfp4_device_scale(uint8_t code) {
  constexpr uint8_t kSubnormal[8] = {0, 0, 8, 12, 16, 18, 20, 22};  // m·2⁻⁹·2¹¹⁸ = m·2¹⁰⁹
  const uint8_t mag = code & 0x7F;
  if (mag == 0x7F) return 0x9C;  // NaN: BF16 0x7FC0
  if (mag == 0) return 0xA0;     // zero: BF16 0x8000
  return mag >= 8 ? uint8_t(mag + 16) : kSubnormal[mag];
}

int64_t DeviceLinear::weight_bytes() const {
  int64_t b = 0;
  switch (kind) {
    case DeviceWeightKind::Bf16: b = rows_pad * cols_pad * 2; break;
    case DeviceWeightKind::Fp8: b = rows_pad * cols_pad; break;
    case DeviceWeightKind::Nvfp4: b = rows_pad * cols_pad / 2 + rows_pad * cols_pad / 16; break;
  }
  if (scheme.weight == WeightFormat::Fp8PerChannel) b += rows_pad * 4;
  if (scheme.weight == WeightFormat::Fp8Block128) b += (rows + 127) / 128 * scale_ld * 4;
  if (nvfp4_row_alpha) b += rows_pad * 4;
  return b;
}

DeviceLinear device_layout(const MatrixRef& h) {
  const Geometry g = geometry(h);
  DeviceLinear d;
  d.scheme = h.quant ? h.quant->scheme : LinearScheme{};
  d.kind = g.kind;
  d.rows = h.rows;
  d.cols = h.cols;
  d.rows_pad = g.rows_pad;
  d.cols_pad = g.cols_pad;
  d.scale_ld = g.scale_ld;
  if (h.quant) {
    d.nvfp4_weight_divisor = h.quant->nvfp4_weight_divisor;
    d.nvfp4_input_global = h.quant->nvfp4_input_global;
  }
  d.parts = 1;
  d.part_begin[1] = h.rows;
  d.part_weight_divisor[0] = d.nvfp4_weight_divisor;
  return d;
}

int64_t DeviceLinear::scale_count() const {
  if (scheme.weight == WeightFormat::Fp8PerChannel) return rows_pad;
  if (scheme.weight == WeightFormat::Fp8Block128) return (rows + 127) / 128 * scale_ld;
  return 0;
}

size_t device_bytes_for(const MatrixRef& host) {
  const Geometry g = geometry(host);
  return align256(g.code_bytes) + align256(g.scale_count * 4) + align256(g.block_scale_bytes);
}

UploadProgress::UploadProgress(int64_t total_bytes, std::FILE* out)
    : total_(total_bytes), out_(out), start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void UploadProgress::add(int64_t bytes) {
  done_ += bytes;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_print_ >= std::chrono::milliseconds(500)) {
    last_print_ = now;
    print(false);
  }
}

void UploadProgress::finish() { print(true); }

void UploadProgress::print(bool final_line) {
  if (!out_) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = s > 0 ? double(done_) / s : 0.0;
  const double eta = rate > 0 ? double(total_ - done_) / rate : 0.0;
  const bool tty = isatty(fileno(out_));
  if (final_line)
    std::fprintf(out_, "%s[upload] %.2f GB in %.2f s, %.2f GB/s\n", tty ? "\r" : "", done_ / 1e9, s, rate / 1e9);
  else
    std::fprintf(out_, "%s[upload] %.2f / %.2f GB  %.2f GB/s  ETA %.1f s%s", tty ? "\r" : "", done_ / 1e9,
                 total_ / 1e9, rate / 1e9, eta, tty ? "" : "\n");
  std::fflush(out_);
}

Uploader::Uploader(DeviceArena& arena, cudaStream_t stream, UploadProgress* progress, size_t staging_bytes)
    : arena_(arena), stream_(stream), progress_(progress), staging_bytes_(std::max<size_t>(staging_bytes, 1 << 16)) {
  for (int i = 0; i < 2; ++i) {
    GDN_CUDA_CHECK(cudaMallocHost(&staging_[i], staging_bytes_));
    GDN_CUDA_CHECK(cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming));
    GDN_CUDA_CHECK(cudaEventRecord(done_[i], stream_));
  }
}

Uploader::~Uploader() {
  for (int i = 0; i < 2; ++i) {
    if (done_[i]) {
      cudaEventSynchronize(done_[i]);
      cudaEventDestroy(done_[i]);
    }
    if (staging_[i]) cudaFreeHost(staging_[i]);
  }
}

void Uploader::sync() {
  for (int i = 0; i < 2; ++i) GDN_CUDA_CHECK(cudaEventSynchronize(done_[i]));
}

void Uploader::copy(void* dst, size_t bytes, const std::function<void(uint8_t*, size_t, size_t)>& fill) {
  for (size_t off = 0; off < bytes;) {
    const size_t n = std::min(staging_bytes_, bytes - off);
    const int b = next_;
    GDN_CUDA_CHECK(cudaEventSynchronize(done_[b]));  // the copy that last used this buffer is done
    fill(staging_[b], off, n);
    GDN_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + off, staging_[b], n, cudaMemcpyHostToDevice, stream_));
    GDN_CUDA_CHECK(cudaEventRecord(done_[b], stream_));
    next_ ^= 1;
    off += n;
    if (progress_) progress_->add(int64_t(n));
  }
}

DeviceLinear Uploader::linear(const MatrixRef& h) {
  const Geometry g = geometry(h);
  DeviceLinear d = device_layout(h);
  const int64_t rows = h.rows, cols = h.cols;

  // Codes, row by row with zero padding. Chunks hold whole rows (a row is ≤ 35 KB for the 27B).
  const int64_t row_bytes = g.code_bytes / g.rows_pad;
  void* codes = arena_.allocate(size_t(g.code_bytes));
  auto fill_row = [&](int64_t r, uint8_t* out) {
    if (r >= rows) {
      std::memset(out, 0, size_t(row_bytes));
      return;
    }
    switch (g.kind) {
      case DeviceWeightKind::Bf16: {
        auto* o = reinterpret_cast<uint16_t*>(out);
        if (h.dtype == DType::BF16) {
          std::memcpy(o, static_cast<const uint16_t*>(h.data) + r * cols, size_t(cols) * 2);
        } else {
          std::vector<float> tmp(static_cast<size_t>(cols));
          decode_row(h, r, tmp.data());  // F32/F16 → fp32 exactly, then round to nearest even
          for (int64_t i = 0; i < cols; ++i) o[i] = float_to_bf16(tmp[size_t(i)]);
        }
        std::memset(o + cols, 0, size_t(g.cols_pad - cols) * 2);
        return;
      }
      case DeviceWeightKind::Fp8:
        std::memcpy(out, static_cast<const uint8_t*>(h.data) + r * cols, size_t(cols));
        std::memset(out + cols, 0, size_t(g.cols_pad - cols));
        return;
      case DeviceWeightKind::Nvfp4: {
        const auto* src = static_cast<const uint8_t*>(h.data) + r * (cols / 2);
        const uint8_t* scales = h.quant->nvfp4_block_scales + r * (cols / 16);
        auto* o = reinterpret_cast<uint32_t*>(out);
        for (int64_t wi = 0; wi < cols / 8; ++wi) {
          uint32_t w;
          std::memcpy(&w, src + 4 * wi, 4);
          const uint8_t s = scales[wi / 2];
          o[wi] = nvfp4_device_word(w, (s & 0x80) != 0 && (s & 0x7F) != 0x7F);
        }
        std::memset(o + cols / 8, 0, size_t(g.cols_pad - cols) / 2);
        return;
      }
    }
  };
  if (row_bytes > int64_t(staging_bytes_))
    throw CudaError("Uploader: a weight row of " + std::to_string(row_bytes) + " bytes exceeds the staging buffer");
  const int64_t rows_per_chunk = int64_t(staging_bytes_) / row_bytes;
  for (int64_t r0 = 0; r0 < g.rows_pad; r0 += rows_per_chunk) {
    const int64_t nr = std::min(rows_per_chunk, g.rows_pad - r0);
    uint8_t* dst = static_cast<uint8_t*>(codes) + r0 * row_bytes;
    copy(dst, size_t(nr * row_bytes), [&](uint8_t* buf, size_t off, size_t n) {
      // `off` is always 0 here: a chunk of whole rows fits the staging buffer.
      for (int64_t i = 0; i < int64_t(n) / row_bytes; ++i) fill_row(r0 + i, buf + i * row_bytes);
    });
  }
  d.weight = codes;

  if (g.scale_count > 0) {
    float* s = arena_.allocate_n<float>(size_t(g.scale_count));
    const std::vector<float>& src = h.quant->scales;
    copy(s, size_t(g.scale_count) * 4, [&](uint8_t* buf, size_t off, size_t n) {
      auto* o = reinterpret_cast<float*>(buf);
      for (size_t i = off / 4; i < (off + n) / 4; ++i) {
        float v = 0.f;
        if (d.scheme.weight == WeightFormat::Fp8PerChannel) {
          if (int64_t(i) < rows) v = src[i];
        } else {
          const int64_t nb = int64_t(i) / g.scale_ld, kb = int64_t(i) % g.scale_ld, L = (cols + 127) / 128;
          if (kb < L) v = src[size_t(nb * L + kb)];
        }
        o[i - off / 4] = v;
      }
    });
    d.scales = s;
  }

  if (g.block_scale_bytes > 0) {
    auto* bs = arena_.allocate_n<uint8_t>(size_t(g.block_scale_bytes));
    const int64_t ld = g.cols_pad / 16, nat_ld = cols / 16;
    const uint8_t* src = h.quant->nvfp4_block_scales;
    copy(bs, size_t(g.block_scale_bytes), [&](uint8_t* buf, size_t off, size_t n) {
      for (size_t i = off; i < off + n; ++i) {
        const int64_t r = int64_t(i) / ld, p = int64_t(i) % ld;
        const int64_t grp = p / 16, q = p % 16, t = q / 4, c = (q / 2) % 2, b = q % 2;
        const int64_t nat = grp * 16 + 8 * c + 2 * t + b;  // natural block index of permuted position p
        buf[i - off] = nvfp4_device_scale((r < rows && nat < nat_ld) ? src[r * nat_ld + nat] : 0);
      }
    });
    d.block_scales = bs;
  }
  return d;
}

DeviceLinear upload_linear(const MatrixRef& host, DeviceArena& arena, cudaStream_t stream) {
  const size_t staging = std::min<size_t>(size_t(64) << 20, std::max<size_t>(device_bytes_for(host), 1 << 16));
  Uploader u(arena, stream, nullptr, staging);
  DeviceLinear d = u.linear(host);
  u.sync();
  return d;
}

namespace {

// Validates fused parts (formats.md §11); returns the total row count.
int64_t check_fused(std::span<const MatrixRef> parts) {
  if (parts.empty()) throw InputError("upload_fused_linear: no parts");
  if (parts.size() > size_t(DeviceLinear::kMaxParts))
    throw InputError("upload_fused_linear: " + std::to_string(parts.size()) + " parts, at most " +
                     std::to_string(DeviceLinear::kMaxParts));
  const MatrixRef& a = parts[0];
  const LinearScheme sa = a.quant ? a.quant->scheme : LinearScheme{};
  int64_t rows = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const MatrixRef& b = parts[i];
    const std::string which = "upload_fused_linear: part " + std::to_string(i);
    if (b.rows <= 0 || b.cols <= 0) throw InputError(which + " is empty");
    if (b.cols != a.cols)
      throw InputError(which + " has K = " + std::to_string(b.cols) + ", part 0 has K = " + std::to_string(a.cols));
    if (b.dtype != a.dtype) throw InputError(which + " has a different dtype than part 0");
    if (bool(b.quant) != bool(a.quant) || (b.quant && !(b.quant->scheme == sa)))
      throw InputError(which + " has a different scheme (weight format / activation quantization) than part 0");
    if (sa.weight == WeightFormat::Fp8Block128 && b.rows % 128 != 0)
      throw InputError(which + " has " + std::to_string(b.rows) +
                       " rows: FP8 block-128 parts must have a multiple of 128 rows to be fused");
    const bool nv = sa.weight == WeightFormat::Nvfp4ModelOpt || sa.weight == WeightFormat::Nvfp4CT;
    if (nv && sa.act == ActQuant::Nvfp4 && b.quant->nvfp4_input_global != a.quant->nvfp4_input_global)
      throw InputError(which + " has input global scale " + std::to_string(b.quant->nvfp4_input_global) +
                       ", part 0 has " + std::to_string(a.quant->nvfp4_input_global) +
                       ": NVFP4 parts must share G_x to be fused");
    rows += b.rows;
  }
  return rows;
}

bool is_nvfp4(const MatrixRef& h) {
  return h.quant &&
         (h.quant->scheme.weight == WeightFormat::Nvfp4ModelOpt || h.quant->scheme.weight == WeightFormat::Nvfp4CT);
}

bool divisors_differ(std::span<const MatrixRef> parts) {
  if (!is_nvfp4(parts[0])) return false;
  for (const MatrixRef& p : parts)
    if (p.quant->nvfp4_weight_divisor != parts[0].quant->nvfp4_weight_divisor) return true;
  return false;
}

}  // namespace

size_t device_bytes_for_fused(std::span<const MatrixRef> parts) {
  const int64_t rows = check_fused(parts);
  MatrixRef all = parts[0];
  all.rows = rows;
  size_t b = device_bytes_for(all);
  if (divisors_differ(parts)) b += align256(round_up(all.rows, detail::kRowPad) * 4);
  return b;
}

DeviceLinear upload_fused_linear(std::span<const MatrixRef> parts, DeviceArena& arena, cudaStream_t stream) {
  const int64_t rows = check_fused(parts);
  const MatrixRef& a = parts[0];
  const int64_t cols = a.cols;
  const bool nv = is_nvfp4(a);
  // Bytes of one stored row of codes in the host layout.
  const int64_t row_bytes = nv ? cols / 2 : int64_t(dtype_size(a.dtype)) * cols;

  // Host concatenation: codes, per-channel / block-128 scales, NVFP4 block scales, all by row.
  std::vector<uint8_t> codes(size_t(rows * row_bytes)), block_scales;
  std::shared_ptr<QuantInfo> q;
  if (a.quant) {
    q = std::make_shared<QuantInfo>(*a.quant);
    q->scales.clear();
    if (nv) block_scales.resize(size_t(rows * (cols / 16)));
  }
  int64_t r0 = 0;
  for (const MatrixRef& p : parts) {
    std::memcpy(codes.data() + r0 * row_bytes, p.data, size_t(p.rows * row_bytes));
    if (q) {
      q->scales.insert(q->scales.end(), p.quant->scales.begin(), p.quant->scales.end());
      if (nv)
        std::memcpy(block_scales.data() + r0 * (cols / 16), p.quant->nvfp4_block_scales, size_t(p.rows * (cols / 16)));
    }
    r0 += p.rows;
  }
  if (q && nv) q->nvfp4_block_scales = block_scales.data();
  const MatrixRef all{a.dtype, codes.data(), rows, cols, q};

  DeviceLinear d = upload_linear(all, arena, stream);  // synchronous: the host buffers may go
  d.parts = int(parts.size());
  r0 = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    d.part_begin[i] = r0;
    d.part_weight_divisor[i] = parts[i].quant ? parts[i].quant->nvfp4_weight_divisor : 1.f;
    r0 += parts[i].rows;
  }
  d.part_begin[parts.size()] = r0;

  if (divisors_differ(parts)) {
    std::vector<float> alpha(size_t(d.rows_pad), 0.f);
    for (int i = 0; i < d.parts; ++i)
      for (int64_t r = d.part_begin[i]; r < d.part_begin[i + 1]; ++r)
        alpha[size_t(r)] = detail::nvfp4_alpha(d, d.part_weight_divisor[i]);
    float* dev = arena.allocate_n<float>(alpha.size());
    GDN_CUDA_CHECK(cudaMemcpyAsync(dev, alpha.data(), alpha.size() * 4, cudaMemcpyHostToDevice, stream));
    GDN_CUDA_CHECK(cudaStreamSynchronize(stream));
    d.nvfp4_row_alpha = dev;
  }
  return d;
}

}  // namespace gdn::cuda
