#include "cli/cli.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>

#include "core/error.h"
#ifdef GDN_HAVE_CUDA
#include "model/cuda/gpu_model.h"
#endif

namespace gdn {

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < INT32_MIN || v > INT32_MAX)
      fail_input("{}: '{}' is not a token id (expected comma-separated integers such as 1,2,3)", flag, item);
    ids.push_back(int32_t(v));
    pos = end + 1;
  }
  return ids;
}

ActivationMode activation_mode(const std::string& v) {
  if (v == "declared") return ActivationMode::Declared;
  if (v == "bf16") return ActivationMode::WeightOnly;
  fail_input("--activations: '{}' is not valid (expected declared or bf16)", v);
}

bool use_cuda_backend(const std::string& backend) {
  if (backend == "cpu") return false;
#ifdef GDN_HAVE_CUDA
  const bool present = cuda::cuda_device_available();
#else
  const bool present = false;
  if (backend == "cuda") fail_input("--backend cuda: this build has no CUDA support (nvcc was not found)");
#endif
  if (backend == "cuda" && !present) fail_input("--backend cuda: no CUDA device is visible");
  if (backend != "cuda" && backend != "auto") fail_input("--backend: '{}' is not one of auto, cuda, cpu", backend);
  if (present) std::fprintf(stderr, "gdnserve: using the CUDA backend\n");
  return present;
}

int cli_main(int argc, char** argv) {
  CLI::App app{"gdnserve: inference engine for Qwen3.5/3.6 hybrid (Gated DeltaNet + attention) models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gdnserve 0.1.0");
  add_logits_command(app);
  add_generate_command(app);
  add_inspect_command(app);
  add_make_demo_command(app);
  add_render_command(app);
  add_tokenize_command(app);
  add_detokenize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const InputError& e) {
    std::fprintf(stderr, "gdnserve: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "gdnserve: error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {  // device failures (CudaError) and other internal errors
    std::fprintf(stderr, "gdnserve: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace gdn
