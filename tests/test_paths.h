// Where the tests find the source tree and the uvtrain binary: the build's paths, unless the
// environment says otherwise (UV_SOURCE_DIR, UV_CLI_PATH). tools/gpu-check runs this binary on
// another machine, where the checkout and the binary are not where they were built.
// Force-included into every test source (CMakeLists.txt), so UV_SOURCE_DIR and UV_CLI_PATH read
// as before.
#pragma once

#include <cstdlib>
#include <string>

namespace uv_test_paths {
inline const char* from_env_or(const char* name, const char* built) {
  const char* value = std::getenv(name);
  return value && *value ? value : built;
}
inline const char* source_dir() {
  static const std::string dir = from_env_or("UV_SOURCE_DIR", UV_SOURCE_DIR_BUILT);
  return dir.c_str();
}
inline const char* cli_path() {
  static const std::string path = from_env_or("UV_CLI_PATH", UV_CLI_PATH_BUILT);
  return path.c_str();
}
}  // namespace uv_test_paths

#define UV_SOURCE_DIR (::uv_test_paths::source_dir())
#define UV_CLI_PATH (::uv_test_paths::cli_path())
