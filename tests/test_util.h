// Shared helpers of the test suite: golden files, comparisons, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/safetensors.h"

namespace gdn::test {

inline std::string fixture(const std::string& name) { return std::string(GDN_FIXTURES_DIR) + "/" + name; }

// Goldens written by tools/make_fixtures.py with the reference library.
class Golden {
 public:
  explicit Golden(const std::string& fixture_name) : file_(fixture(fixture_name) + "/golden.safetensors") {}
  std::vector<float> floats(const std::string& name) const {
    const TensorInfo& t = info(name);
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_float(t.dtype, file_.data(t), i);
    return v;
  }
  std::vector<int32_t> ints(const std::string& name) const {
    const TensorInfo& t = info(name);
    std::vector<int32_t> v(size_t(t.numel()));
    std::memcpy(v.data(), file_.data(t), v.size() * 4);
    return v;
  }
  std::vector<int64_t> shape(const std::string& name) const { return info(name).shape; }

 private:
  const TensorInfo& info(const std::string& name) const {
    for (const auto& t : file_.header().tensors)
      if (t.name == name) return t;
    throw std::runtime_error("golden tensor missing: " + name);
  }
  SafetensorsFile file_;
};

inline double stddev(const std::vector<float>& v) {
  double m = 0, s = 0;
  for (float x : v) m += x;
  m /= double(v.size());
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

// max |a − b| with the index of the worst element; NaN anywhere counts as infinite.
struct MaxDiff {
  double value = 0;
  size_t index = 0;
};
inline MaxDiff max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  MaxDiff d;
  if (a.size() != b.size()) return {INFINITY, 0};
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::isnan(a[i]) || std::isnan(b[i]) ? INFINITY : std::fabs(double(a[i]) - double(b[i]));
    if (e > d.value) d = {e, i};
  }
  return d;
}

// Golden tolerance (issue 2): max |Δ| ≤ 1e-3 × std of the golden logits. Both sides compute in
// fp32 from identical weights; only summation order differs (errors ~1e-6 relative), so this
// leaves ~100× headroom and still catches any real mistake (wrong norm, rope or gating: Δ ~ std).
inline void expect_logits_near(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  const double tol = 1e-3 * stddev(want);
  const MaxDiff d = max_abs_diff(got, want);
  EXPECT_LE(d.value, tol) << what << ": worst element " << d.index << " got " << (d.index < got.size() ? got[d.index] : NAN)
                          << " want " << want[d.index] << " (tolerance " << tol << ")";
}

struct CommandResult {
  int exit_code = -1;
  std::string out;     // stdout then stderr
  std::string stdout_text;
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  char err_path[] = "/tmp/gdn_test_stderr_XXXXXX";
  const int fd = mkstemp(err_path);
  if (fd < 0) return r;
  close(fd);
  FILE* p = popen((cmd + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.stdout_text.append(buf, n);
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  std::string err;
  if (FILE* e = std::fopen(err_path, "rb")) {
    while ((n = fread(buf, 1, sizeof buf, e)) > 0) err.append(buf, n);
    std::fclose(e);
  }
  std::remove(err_path);
  r.out = r.stdout_text + err;
  return r;
}

inline CommandResult run_cli(const std::string& args) { return run_command(std::string(GDN_CLI_PATH) + " " + args); }

inline std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace gdn::test
