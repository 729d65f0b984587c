// NVTX ranges (header-only NVTX3 from the CUDA toolkit) so an `nsys profile` timeline reads like the
// model: one range per training step, per op's forward and backward. Without a CUDA toolkit the
// range is an empty object. Ranges cost a few hundred nanoseconds when no profiler is attached.
#pragma once

#include <string>

#ifdef UV_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace uv {

class NvtxRange {
 public:
#ifdef UV_WITH_CUDA
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  explicit NvtxRange(const std::string& name) { nvtxRangePushA(name.c_str()); }
  ~NvtxRange() { nvtxRangePop(); }
#else
  explicit NvtxRange(const char*) {}
  explicit NvtxRange(const std::string&) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace uv
