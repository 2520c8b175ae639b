// A one-line description of the CPU for benchmark reports (the "model name" of /proc/cpuinfo).
#pragma once

#include <fstream>
#include <string>

namespace gdn {

inline std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace gdn
