// Wall-clock helpers shared by the commands that time their stages and name their run directories.
#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace uv {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Local time as YYYYmmdd-HHMMSS, for default run directory names.
inline std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d-%H%M%S", std::localtime(&now));
  return text;
}

}  // namespace uv
