// Device discovery and backend selection. The CUDA runtime and backend are built only when the
// toolkit was found at configure time.
#include <sstream>

#include "engine/backend/backend.h"
#include "engine/core/error.h"

#ifdef UV_WITH_CUDA
#include <cuda_runtime_api.h>
#include <cudnn.h>
#endif

namespace uv {

DeviceReport query_devices() {
  DeviceReport report;
#ifdef UV_WITH_CUDA
  report.cuda_built = true;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    report.cuda_status = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    count = 0;
  } else {
    std::ostringstream names;
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, i) == cudaSuccess)
        names << (i ? "; " : "") << i << ": " << prop.name << " (sm_" << prop.major << prop.minor
              << ", " << prop.totalGlobalMem / (1u << 20) << " MiB)";
    }
    report.cuda_status = count ? names.str() : "no CUDA device";
  }
  report.cuda_devices = count;
  // cudnnGetVersion needs no device: it shows which libcudnn the dynamic loader found.
  auto version = [](size_t v) {  // cuDNN 9: major·10000 + minor·100 + patch
    return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
  };
  report.cudnn = version(cudnnGetVersion()) + " (built with " + version(CUDNN_VERSION) + ")";
#else
  report.cuda_status = "this build has no CUDA support (configured without a CUDA toolkit)";
#endif
  return report;
}

std::unique_ptr<Backend> make_backend(const std::string& device_flag) {
  if (device_flag == "cpu") return make_cpu_backend();
  if (device_flag == "cuda" || device_flag == "auto") {
    const DeviceReport report = query_devices();
#ifdef UV_WITH_CUDA
    if (report.cuda_devices > 0) return make_cuda_backend(0);
#endif
    UV_REQUIRE(device_flag == "auto", "--device cuda: no usable CUDA device ("
                                          << report.cuda_status << "); use --device cpu or auto");
    return make_cpu_backend();
  }
  UV_FAIL("--device: unknown value '" << device_flag << "' (expected auto, cpu or cuda)");
}

}  // namespace uv
