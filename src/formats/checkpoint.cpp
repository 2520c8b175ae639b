#include "formats/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_depth.h"

namespace gdn {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail_input("{}: cannot open file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TensorRef Checkpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail_input("tensor '{}' not found in the checkpoint at {}", name, dir_);
  return it->second;
}

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input("{}: model directory does not exist", dir);
  auto ck = std::unique_ptr<Checkpoint>(new Checkpoint());
  ck->dir_ = dir;

  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  if (names.empty()) fail_input("{}: no *.safetensors files in the model directory", dir);

  for (const auto& n : names) {
    ck->files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / n).string()));
    const auto& f = *ck->files_.back();
    for (const auto& t : f.header().tensors) {
      auto [it, fresh] = ck->tensors_.emplace(t.name, TensorRef{&t, f.data(t), &f.path()});
      if (!fresh) fail_input("tensor '{}' appears in both {} and {}", t.name, *it->second.file, f.path());
    }
  }

  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    auto j = nlohmann::json::parse(read_text_file(index.string()), nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail_input("{}: not valid JSON", index.string());
    check_json_depth(j, index.string());
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) fail_input("{}: missing object field 'weight_map'", index.string());
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) fail_input("{}: weight_map entry '{}' is not a file name", index.string(), it.key());
      const std::string file = it->get<std::string>();
      auto t = ck->tensors_.find(it.key());
      if (!fs::exists(fs::path(dir) / file, ec))
        fail_input("{}: tensor '{}' is mapped to {}, which does not exist", index.string(), it.key(), file);
      if (t == ck->tensors_.end())
        fail_input("{}: tensor '{}' is listed in the index but not stored in {}", index.string(), it.key(), file);
      if (fs::path(*t->second.file).filename() != file)
        fail_input("{}: tensor '{}' is mapped to {} but stored in {}", index.string(), it.key(), file,
                   *t->second.file);
    }
  }
  return ck;
}

}  // namespace gdn
