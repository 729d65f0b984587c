// What the backend-generic benchmarks share: operand buffers, the timed loop, and main() with its
// --device=cpu|cuda|auto flag.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/tf32.h"
#include "kernels/cuda/tf32x3_gemm_tile.h"  // plain C++

namespace uv::bench {

enum class Pass { Forward, Step };

// Buffers on the backend, filled with Uniform(−1, 1) from their own Philox stream; a zero-sized
// request (a buffer a route does not use) still gets a valid pointer.
struct Tensors {
  std::vector<Buffer> owned;
  float* make(Backend& be, int64_t n, uint64_t stream) {
    owned.push_back(be.allocate(static_cast<size_t>(n > 0 ? n : 1) * sizeof(float)));
    if (n > 0) be.uniform_init(owned.back().floats(), n, -1.f, 1.f, 1, stream);
    return owned.back().floats();
  }
};

// The largest difference between `got` and `want` (rows × cols, rows ld floats apart, on the
// backend) on their first and last `rows_each` rows, relative to the largest magnitude in `want`
// there; infinite where a difference is NaN. Columns from cols to ld (padding) are not compared.
inline double sampled_relative_error(Backend& be, const float* got, const float* want, int64_t rows, int64_t cols,
                                     int64_t ld = 0, int64_t rows_each = 64) {
  if (ld == 0) ld = cols;
  double worst = 0, scale = 0;
  for (const int64_t first : {int64_t{0}, std::max<int64_t>(0, rows - rows_each)}) {
    const int64_t n = std::min(rows_each, rows - first) * ld;
    std::vector<float> g(static_cast<size_t>(n)), w(static_cast<size_t>(n));
    be.copy_to_host(g.data(), got + first * ld, n * sizeof(float));
    be.copy_to_host(w.data(), want + first * ld, n * sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
      if (i % ld >= cols) continue;
      const double d = std::fabs(double(g[i]) - double(w[i]));
      worst = std::isnan(d) ? INFINITY : std::max(worst, d);
      scale = std::max(scale, std::fabs(double(w[i])));
    }
  }
  return worst / std::max(scale, 1e-30);
}

// U (n floats on the backend) rounded to TF32 in place, as a layer with dictionary_precision = tf32
// has it (engine/train/config.h).
inline void round_to_tf32(Backend& be, float* u, int64_t n) {
  std::vector<float> host(static_cast<size_t>(n));
  be.copy_to_host(host.data(), u, host.size() * sizeof(float));
  for (float& x : host) x = tf32_round(x);
  be.copy_to_device(u, host.data(), host.size() * sizeof(float));
}

// --dictionary_precision=float32|tf32 taken out of argv (the rest go on to run()), said in the
// JSON's context; false, with the message printed, for any other value (the program exits 2).
inline bool take_dictionary_precision(int& argc, char** argv, const char* program, bool& tf32) {
  std::string precision = "float32";
  int kept = 0;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--dictionary_precision=", 23) == 0)
      precision = argv[i] + 23;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  if (precision != "float32" && precision != "tf32") {
    std::fprintf(stderr, "%s: --dictionary_precision=\"%s\" is not one of float32, tf32\n", program, precision.c_str());
    return false;
  }
  tf32 = precision == "tf32";
  benchmark::AddCustomContext("dictionary_precision", precision);
  return true;
}

// Runs the benchmark loop over `work` (after one warm-up call: cuBLAS/cuDNN heuristics, first touch
// of the pool) and returns the mean milliseconds per call, the figure the Time column shows. Each
// iteration times `reps` calls back to back.
inline double timed_loop(benchmark::State& state, Backend& be, const std::function<void()>& work, int reps = 3) {
  work();
  double total_ms = 0;
  for (auto _ : state) {
    const double ms = be.time_per_call_ms(work, reps);
    state.SetIterationTime(ms / 1e3);
    total_ms += ms;
  }
  return total_ms / static_cast<double>(state.iterations());
}

// main() of a benchmark program: takes --device=..., makes the backend (exit 2 with the reason when
// it cannot), lets `register_all` register the benchmarks for it, runs them.
// --gemm=cublas|cublaslt|cublaslt_one_kernel picks the GPU's GEMM library (train.gemm), so the
// cuBLAS baselines can be timed through either. Benches that make backends of their own give them
// this one.
inline GemmLibrary& gemm_library() {
  static GemmLibrary library = GemmLibrary::Cublas;
  return library;
}

// The 3xTF32 GEMM's choices from the environment, as the CUDA backend reads them
// (kernels/cuda/tf32x3_gemm_tile.h): false, having said which value is wrong, for a bad one.
struct Tf32x3Choices {
  cuda::Tf32x3Kernel kernel = cuda::kTf32x3DefaultKernel;         // UV_TF32X3_KERNEL
  int64_t depth = 0;                                              // UV_TF32X3_CHUNK_DEPTH
  int64_t workspace_mib = 0;                                      // UV_TF32X3_WORKSPACE_MIB
  bool bands = true;                                              // UV_TF32X3_BANDS
  cuda::Tf32x3SpecialisedSync sync = cuda::kTf32x3DefaultSpecialisedSync;  // UV_TF32X3_SPECIALISED_SYNC
  bool depth_set = false, workspace_set = false;                  // ... named, not the defaults
};
inline bool read_tf32x3_choices(const char* program, Tf32x3Choices& out) {
  std::string why;
  if (!(cuda::read_tf32x3_kernel_env(out.kernel, why) && cuda::read_tf32x3_chunk_depth_env(out.depth, why) &&
        cuda::read_tf32x3_workspace_mib_env(out.workspace_mib, why) && cuda::read_tf32x3_bands_env(out.bands, why) &&
        cuda::read_tf32x3_specialised_sync_env(out.sync, why))) {
    std::fprintf(stderr, "%s: %s\n", program, why.c_str());
    return false;
  }
  const char* depth = std::getenv("UV_TF32X3_CHUNK_DEPTH");
  const char* workspace = std::getenv("UV_TF32X3_WORKSPACE_MIB");
  out.depth_set = depth && *depth;
  out.workspace_set = workspace && *workspace;
  return true;
}

inline int run(int argc, char** argv, const char* program, const std::function<void(Backend&)>& register_all) {
  std::string device = "auto", gemm = "cublas";
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0)
      device = argv[i] + 9;
    else if (std::strncmp(argv[i], "--gemm=", 7) == 0)
      gemm = argv[i] + 7;
    else
      rest.push_back(argv[i]);
  }
  int rest_argc = static_cast<int>(rest.size());
  std::unique_ptr<Backend> backend;
  try {
    backend = make_backend(device);
    gemm_library() = parse_gemm_library(gemm);
    backend->set_gemm_library(gemm_library());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
  benchmark::AddCustomContext("backend", backend->description());
  benchmark::AddCustomContext("gemm", gemm);
  Tf32x3Choices tf32x3;
  if (!read_tf32x3_choices(program, tf32x3)) return 2;
  // Which 3xTF32 kernel the tf32x3 products ran on, how deep their accumulations ran, their
  // workspace and whether the presplit kernels ran in column bands.
  benchmark::AddCustomContext("tf32x3_kernel", cuda::tf32x3_kernel_name(tf32x3.kernel));
  benchmark::AddCustomContext("tf32x3_chunk_depth", std::to_string(tf32x3.depth));
  if (tf32x3.depth_set) benchmark::AddCustomContext("tf32x3_chunk_depth_set", "1");
  benchmark::AddCustomContext("tf32x3_workspace_mib", std::to_string(tf32x3.workspace_mib));
  if (tf32x3.workspace_set) benchmark::AddCustomContext("tf32x3_workspace_set", "1");
  benchmark::AddCustomContext("tf32x3_bands", tf32x3.bands ? "1" : "0");
  // Always said: runs before 2026-11-27 said it only off the default of then, plain.
  benchmark::AddCustomContext("tf32x3_specialised_sync", cuda::tf32x3_specialised_sync_name(tf32x3.sync));
  register_all(*backend);
  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace uv::bench
