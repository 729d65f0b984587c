// Device discovery and backend selection. The CUDA runtime and backend are built only when the
// toolkit was found at configure time.
#include <algorithm>
#include <cctype>
#include <sstream>

#include "engine/backend/backend.h"
#include "engine/core/error.h"

#ifdef UV_WITH_CUDA
#include <cuda_runtime_api.h>
#include <cudnn.h>
#endif

namespace uv {

bool cuda_archs_run_on(const std::string& archs, int major, int minor) {
  std::string list = archs;
  for (char& c : list)
    if (c == ';' || c == ',') c = ' ';
  std::istringstream entries(list);
  std::string entry;
  bool any = false;
  const int device = major * 10 + minor;
  while (entries >> entry) {
    any = true;
    if (entry == "all" || entry == "all-major" || entry == "native") return true;
    bool sass = true, ptx = true;
    if (entry.size() > 5 && entry.compare(entry.size() - 5, 5, "-real") == 0) {
      ptx = false;
      entry.resize(entry.size() - 5);
    } else if (entry.size() > 8 && entry.compare(entry.size() - 8, 8, "-virtual") == 0) {
      sass = false;
      entry.resize(entry.size() - 8);
    }
    const bool specific = !entry.empty() && std::isalpha(static_cast<unsigned char>(entry.back()));  // 90a, 100f
    if (specific) entry.pop_back();
    if (entry.empty() || entry.size() > 4 ||
        !std::all_of(entry.begin(), entry.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return true;  // a form this check does not know: let the runtime judge
    const int arch = std::stoi(entry);
    if (specific ? arch == device : (sass && arch / 10 == major && arch % 10 <= minor) || (ptx && arch <= device))
      return true;
  }
  return !any;
}

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
    // Device 0 is the one uvtrain uses: a build without code for it is as good as no device, and
    // says why (else the first kernel fails with "no kernel image is available").
    cudaDeviceProp prop{};
    if (count > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess &&
        !cuda_archs_run_on(UV_CUDA_ARCHS, prop.major, prop.minor)) {
      report.cuda_status = "device 0, " + std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                           std::to_string(prop.minor) + "), cannot run this build's kernels (built for sm_" +
                           UV_CUDA_ARCHS + "; rebuild with -DCMAKE_CUDA_ARCHITECTURES=" +
                           std::to_string(prop.major) + std::to_string(prop.minor) + ")";
      count = 0;
    }
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
