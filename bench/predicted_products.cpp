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
// sampled rows. tf32x3's label is its plan (launches, kernels, waves, the model's time:
// Backend::gemm_plan) and its plan_* counters the model's parts (tools/fit_plan_model.py fits the
// model to a run with them). On the CPU, one small shape on the CPU's GEMM, as a check that the
// bench runs.
//   build/bench_predicted_products --plans[=MULTIPROCESSORS]
// prints, without running anything (no GPU needed), the plan of every product on every large shape
// for a Hopper GPU of that many multiprocessors (132, an H100 SXM's, by default), under the
// environment's UV_TF32X3_* choices: what a change to the planner does before a GPU measures it;
// with --plans_json, as JSON rows named and counted as the bench's own (the label, plan_*), for
// tools/fit_plan_model.py --synthesize.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// The chain's operands for one column (count 1): X (M, K), U (K, r), V (r, N), T and dT (M, t_ld),
// Y, dY (M, N), dX (M, K), dV (r, N).
struct ChainOperands {
  float *x, *u, *v, *t, *y, *dy, *dt, *dx, *dv;
};
// The chain's five products in the order it runs them (kProducts), as its orchestration asks.
std::vector<uv::GemmCall> chain_products(const uv::PredictedLinearShape& s, const ChainOperands& o) {
  const uv::PredictedStrategy chain = uv::PredictedStrategy::Chain;
  uv::PredictedLinearForwardArgs f;
  f.shape = s; f.strategy = chain; f.x = o.x; f.u = o.u; f.v = o.v; f.saved = o.t; f.y = o.y;
  uv::PredictedLinearBackwardArgs b;
  b.shape = s; b.strategy = chain; b.x = o.x; b.u = o.u; b.v = o.v; b.saved = o.t;
  b.dy = o.dy; b.scratch = o.dt; b.dx = o.dx; b.dv = o.dv;
  uv::algorithm::GemmRecorder recorded;
  uv::algorithm::predicted_linear_forward(recorded, f);
  uv::algorithm::predicted_linear_backward(recorded, b);
  UV_CHECK(recorded.calls.size() == kProductCount, "the chain ran " << recorded.calls.size() << " products");
  return recorded.calls;
}

// Arguments: M, K, N, r.
void product(benchmark::State& state, uv::GemmLibrary library, int which) {
  uv::Backend& be = *g_backend;
  uv::PredictedLinearShape s;
  s.m = state.range(0); s.k = state.range(1); s.n = state.range(2); s.rank = state.range(3);
  const uv::PredictedStrategy chain = uv::PredictedStrategy::Chain;
  uv::bench::Tensors t;
  ChainOperands o;
  o.u = t.make(be, s.k * s.t_cols(), 2);
  if (g_u_tf32) uv::bench::round_to_tf32(be, o.u, s.k * s.t_cols());
  o.x = t.make(be, s.m * s.k, 1); o.v = t.make(be, s.rank * s.n, 3);
  o.t = t.make(be, uv::predicted_linear_saved_floats(s, chain), 5);  // T, as drawn: any operand will do
  o.y = t.make(be, s.m * s.n, 6); o.dy = t.make(be, s.m * s.n, 7);
  o.dt = t.make(be, uv::predicted_linear_backward_scratch_floats(s, chain), 8);
  o.dx = t.make(be, s.m * s.k, 9); o.dv = t.make(be, s.rank * s.n, 10);
  const uv::GemmCall p = chain_products(s, o)[static_cast<size_t>(which)];
  auto run = [&] { be.gemm(p.ta, p.tb, p.m, p.n, p.k, 1.f, p.a, p.lda, p.b, p.ldb, 0.f, p.c, p.ldc); };
  be.set_gemm_library(library);
  const int64_t ours_before = be.gemm_counts().tf32x3_products;
  const double ms = uv::bench::timed_loop(state, be, run);
  // 1 where the product ran on the 3xTF32 GEMM (tf32x3 hands products past its grid to cuBLAS),
  // and how it ran.
  if (be.device() == uv::Device::CUDA) state.counters["tf32x3"] = be.gemm_counts().tf32x3_products > ours_before;
  uv::GemmCall timed = p;  // as `run` calls it
  timed.alpha = 1.f;
  timed.beta = 0.f;
  const uv::Backend::GemmPlan plan = be.gemm_plan(timed);
  state.SetLabel(plan.text);
  for (const auto& [name, value] : plan.parts) state.counters["plan_" + name] = value;
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
std::vector<std::vector<int64_t>> large_shape_args() {
  std::vector<std::vector<int64_t>> out;
  for (int64_t m : {4096, 32768})
    for (int64_t k : {4096, 16384})
      for (int64_t percent : {5, 10, 25, 50}) out.push_back({m, k, k, k * percent / 100});
  return out;
}
void large_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r"})->UseManualTime()->Unit(benchmark::kMillisecond);
  for (const std::vector<int64_t>& args : large_shape_args()) b->Args(args);
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

// Takes `flag` (bare, or flag=VALUE) out of argv where it is there: true, and `value` the text
// after '=' or null for the bare flag.
bool take_flag(int& argc, char** argv, const char* flag, const char** value = nullptr) {
  const size_t n = std::strlen(flag);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], flag, n) != 0 || (argv[i][n] != '\0' && argv[i][n] != '=')) continue;
    if (value) *value = argv[i][n] == '=' ? argv[i] + n + 1 : nullptr;
    for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
    --argc;
    return true;
  }
  return false;
}
// --plans[=MULTIPROCESSORS]: false without it; `multiprocessors` 132 bare, 0 for a bad count.
bool take_plans(int& argc, char** argv, int& multiprocessors) {
  const char* count = nullptr;
  if (!take_flag(argc, argv, "--plans", &count)) return false;
  multiprocessors = 132;
  if (count) {
    char* end = nullptr;
    const long value = std::strtol(count, &end, 10);
    multiprocessors = *count >= '0' && *count <= '9' && *end == '\0' && value >= 1 && value <= 1024 ? int(value) : 0;
  }
  return true;
}

// The plan of every product on every large shape, as the CUDA backend's tf32x3 GEMM would run it
// on a Hopper GPU of `multiprocessors` with a cudaMalloc'd (so aligned) workspace. Nothing is
// allocated: the products are recorded over operands at made-up addresses, which the plans never
// read (they depend on the shapes, the workspace and the choices).
// `json`: one object instead of the table, each product a row as the products bench writes it on a
// GPU, without times (its name, label and plan_* counters).
int print_plans(int multiprocessors, const uv::bench::Tf32x3Choices& c, bool json) {
  const uv::cuda::Tf32x3Gpu gpu =
      uv::cuda::tf32x3_gpu(c.kernel, multiprocessors, true, uv::cuda::Tf32x3Tiles::Auto);
  const int64_t room = c.workspace_mib << 18;  // floats
  if (json)
    std::printf("{\"context\": {\"multiprocessors\": %d, \"tf32x3_kernel\": \"%s\", \"tf32x3_workspace_mib\": \"%lld\", "
                "\"tf32x3_chunk_depth\": \"%lld\", \"tf32x3_bands\": \"%d\"},\n \"benchmarks\": [",
                multiprocessors, uv::cuda::tf32x3_kernel_name(c.kernel), static_cast<long long>(c.workspace_mib),
                static_cast<long long>(c.depth), c.bands ? 1 : 0);
  else
    std::printf("# tf32x3 plans on a Hopper GPU of %d multiprocessors: UV_TF32X3_KERNEL=%s, UV_TF32X3_WORKSPACE_MIB=%lld, "
                "UV_TF32X3_CHUNK_DEPTH=%lld, UV_TF32X3_BANDS=%d\n%-6s %-6s %-6s %-5s %-7s %-20s %s\n",
                multiprocessors, uv::cuda::tf32x3_kernel_name(c.kernel), static_cast<long long>(c.workspace_mib),
                static_cast<long long>(c.depth), c.bands ? 1 : 0, "M", "K", "N", "r", "product", "m×n×k", "plan");
  bool first = true;
  ChainOperands o;
  float** const fields[] = {&o.x, &o.u, &o.v, &o.t, &o.y, &o.dy, &o.dt, &o.dx, &o.dv};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i)  // 1 TiB apart, 256-byte aligned
    *fields[i] = reinterpret_cast<float*>(static_cast<uintptr_t>(i + 1) << 40);
  for (const std::vector<int64_t>& args : large_shape_args()) {
    uv::PredictedLinearShape s;
    s.m = args[0]; s.k = args[1]; s.n = args[2]; s.rank = args[3];
    const std::vector<uv::GemmCall> calls = chain_products(s, o);
    for (int which = 0; which < kProductCount; ++which) {
      const uv::GemmCall& g = calls[static_cast<size_t>(which)];
      const bool fits = uv::cuda::tf32x3_fits(g.count, g.m, g.n);
      const uv::cuda::Tf32x3PlanSummary plan =
          fits ? uv::cuda::tf32x3_plan_summary(g, room, true, gpu, c.depth, c.bands) : uv::cuda::Tf32x3PlanSummary{};
      const std::string text = fits ? uv::cuda::tf32x3_plan_text(plan) : "past the launch grid: cuBLAS";
      if (json) {
        if (!fits) continue;
        std::printf("%s\n  {\"name\": \"tf32x3/%s/large/M:%lld/K:%lld/N:%lld/r:%lld/manual_time\", \"label\": \"%s\"",
                    first ? "" : ",", kProducts[which], static_cast<long long>(s.m), static_cast<long long>(s.k),
                    static_cast<long long>(s.n), static_cast<long long>(s.rank), text.c_str());
        for (const auto& [name, value] : uv::cuda::tf32x3_plan_parts(plan))
          std::printf(", \"plan_%s\": %.3f", name.c_str(), value);
        std::printf("}");
        first = false;
        continue;
      }
      const std::string size = std::to_string(g.m) + "×" + std::to_string(g.n) + "×" + std::to_string(g.k);
      std::printf("%-6lld %-6lld %-6lld %-5lld %-7s %-22s %s\n", static_cast<long long>(s.m),
                  static_cast<long long>(s.k), static_cast<long long>(s.n), static_cast<long long>(s.rank),
                  kProducts[which], size.c_str(), text.c_str());
    }
  }
  if (json) std::printf("\n]}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!uv::bench::take_dictionary_precision(argc, argv, "bench_predicted_products", g_u_tf32)) return 2;
  int multiprocessors = 0;
  const bool json = take_flag(argc, argv, "--plans_json");
  const bool plans = take_plans(argc, argv, multiprocessors);
  if (json && !plans) {
    std::fprintf(stderr, "bench_predicted_products: --plans_json goes with --plans\n");
    return 2;
  }
  if (plans) {
    uv::bench::Tf32x3Choices choices;
    if (!uv::bench::read_tf32x3_choices("bench_predicted_products", choices)) return 2;
    if (multiprocessors == 0) {
      std::fprintf(stderr, "bench_predicted_products: --plans takes a count of multiprocessors from 1 to 1024\n");
      return 2;
    }
    return print_plans(multiprocessors, choices, json);
  }
  return uv::bench::run(argc, argv, "bench_predicted_products", [](uv::Backend& backend) {
    g_backend = &backend;
    register_all(backend);
  });
}
