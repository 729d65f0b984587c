// The chain's products one at a time, on each GEMM library side by side: where a pass's time goes,
// and which product the 3xTF32 kernels win or lose against cuBLAS on the same operands.
//   build/bench_predicted_products --device=cuda [--dictionary_precision=float32|tf32]
//     --benchmark_out=out.json --benchmark_out_format=json
// The products are recorded from the chain's own orchestration (algorithm::GemmRecorder over
// kernels/predicted_linear_algorithm.h's forward then backward, without bias, dX wanted), so their
// transposes, strides and T's padded rows are the ones the layer runs:
//   x_u  T = X·U      (M × r, k = K)   forward          dv  dV = Tᵀ·dY  (r × N, k = M)  backward
//   t_v  Y = T·V      (M × N, k = r)   forward          dt  dT = dY·Vᵀ  (M × r, k = N)  backward
//                                                       dx  dX = dT·Uᵀ  (M × K, k = r)  backward
// Named <library>/<product>/<set>/M:../K:../N:../r:../J:1 with library cublas, cublaslt or tf32x3
// (the 3xTF32 kernel UV_TF32X3_KERNEL picks): tools/bench_table.py --baselines cublas,cublaslt puts
// tf32x3 against the faster cuBLAS. check_rel_err: each library's output against cublasSgemm's on
// sampled rows. On the CPU, one small shape on the CPU's GEMM, as a check that the bench runs.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "engine/backend/backend.h"
#include "kernels/predicted_linear_algorithm.h"

namespace {

uv::Backend* g_backend = nullptr;
bool g_u_tf32 = false;  // --dictionary_precision=tf32

constexpr const char* kProducts[] = {"x_u", "t_v", "dv", "dt", "dx"};  // the order the chain runs them
constexpr int kProductCount = 5;

// Arguments: M, K, N, r.
void product(benchmark::State& state, uv::GemmLibrary library, int which) {
  uv::Backend& be = *g_backend;
  uv::PredictedLinearShape s;
  s.m = state.range(0); s.k = state.range(1); s.n = state.range(2); s.rank = state.range(3);
  const uv::PredictedStrategy chain = uv::PredictedStrategy::Chain;
  uv::bench::Tensors t;
  uv::PredictedLinearForwardArgs f;
  f.shape = s; f.strategy = chain;
  float* const u = t.make(be, s.k * s.t_cols(), 2);  // (K, r)
  if (g_u_tf32) uv::bench::round_to_tf32(be, u, s.k * s.t_cols());
  f.x = t.make(be, s.m * s.k, 1); f.u = u; f.v = t.make(be, s.rank * s.n, 3);
  f.saved = t.make(be, uv::predicted_linear_saved_floats(s, chain), 5);  // T, as drawn: any operand will do
  f.y = t.make(be, s.m * s.n, 6);
  uv::PredictedLinearBackwardArgs b;
  b.shape = s; b.strategy = chain; b.x = f.x; b.u = f.u; b.v = f.v; b.saved = f.saved;
  b.dy = t.make(be, s.m * s.n, 7);
  b.scratch = t.make(be, uv::predicted_linear_backward_scratch_floats(s, chain), 8);  // dT
  b.dx = t.make(be, s.m * s.k, 9); b.dv = t.make(be, s.rank * s.n, 10);
  uv::algorithm::GemmRecorder recorded;
  uv::algorithm::predicted_linear_forward(recorded, f);
  uv::algorithm::predicted_linear_backward(recorded, b);
  UV_CHECK(recorded.calls.size() == kProductCount, "the chain ran " << recorded.calls.size() << " products");
  const uv::GemmCall p = recorded.calls[static_cast<size_t>(which)];  // one column: count 1
  auto run = [&] { be.gemm(p.ta, p.tb, p.m, p.n, p.k, 1.f, p.a, p.lda, p.b, p.ldb, 0.f, p.c, p.ldc); };
  be.set_gemm_library(library);
  const int64_t ours_before = be.gemm_counts().tf32x3_products;
  const double ms = uv::bench::timed_loop(state, be, run);
  // 1 where the product ran on the 3xTF32 GEMM (tf32x3 hands products past its grid to cuBLAS).
  if (be.device() == uv::Device::CUDA) state.counters["tf32x3"] = be.gemm_counts().tf32x3_products > ours_before;
  // The reference: the same product through cublasSgemm (the CPU's GEMM on the CPU).
  uv::bench::Tensors ref;
  uv::GemmCall r = p;
  r.c = ref.make(be, p.m * p.ldc, 30);
  be.set_gemm_library(uv::GemmLibrary::Cublas);
  be.gemm(r.ta, r.tb, r.m, r.n, r.k, 1.f, r.a, r.lda, r.b, r.ldb, 0.f, r.c, r.ldc);
  state.counters["check_rel_err"] = uv::bench::sampled_relative_error(be, p.c, r.c, p.m, p.n, p.ldc);
  be.set_gemm_library(uv::bench::gemm_library());
  state.counters["TFLOP/s"] = 2.0 * double(p.m) * double(p.n) * double(p.k) / (ms / 1e3) / 1e12;
  state.counters["GB/s"] =
      4.0 * double(p.m * p.k + p.k * p.n + p.m * p.n) / (ms / 1e3) / 1e9;  // each operand once
}

// Issue 3's large shapes (bench_predicted_linear's): M ∈ {4096, 32768}, K = N ∈ {4096, 16384},
// fraction learned ∈ {5, 10, 25, 50}%.
void large_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r"})->UseManualTime()->Unit(benchmark::kMillisecond);
  for (int64_t m : {4096, 32768})
    for (int64_t k : {4096, 16384})
      for (int64_t percent : {5, 10, 25, 50}) b->Args({m, k, k, k * percent / 100});
}
void cpu_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r"})->UseManualTime()->Unit(benchmark::kMicrosecond)->Args({100, 784, 500, 78});
}

void register_all(uv::Backend& be) {
  const bool cuda = be.device() == uv::Device::CUDA;
  const std::vector<std::pair<const char*, uv::GemmLibrary>> libraries =
      cuda ? std::vector<std::pair<const char*, uv::GemmLibrary>>{{"cublas", uv::GemmLibrary::Cublas},
                                                                  {"cublaslt", uv::GemmLibrary::CublasLt},
                                                                  {"tf32x3", uv::GemmLibrary::Tf32x3}}
           : std::vector<std::pair<const char*, uv::GemmLibrary>>{{"cpu", uv::GemmLibrary::Cublas}};  // ignored
  for (int which = 0; which < kProductCount; ++which)
    for (const auto& [name, library] : libraries) {
      const std::string base = std::string(name) + "/" + kProducts[which];
      if (cuda)
        benchmark::RegisterBenchmark((base + "/large").c_str(), product, library, which)->Apply(large_shapes);
      else
        benchmark::RegisterBenchmark((base + "/small").c_str(), product, library, which)->Apply(cpu_shapes);
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (!uv::bench::take_dictionary_precision(argc, argv, "bench_predicted_products", g_u_tf32)) return 2;
  return uv::bench::run(argc, argv, "bench_predicted_products", [](uv::Backend& backend) {
    g_backend = &backend;
    register_all(backend);
  });
}
