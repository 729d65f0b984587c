// Predicted-linear layer on a backend: forward and forward+backward (dX, dV, db) of each strategy,
// beside the dense layer of the same size, on the paper's shapes and on large ones.
//   build/bench_predicted_linear --device=cpu|cuda [--dictionary_precision=float32|tf32]
//     --benchmark_out=out.json --benchmark_out_format=json
// Reported per benchmark: time per call (CUDA events on the GPU), TFLOP/s and GB/s from the cost
// model of engine/ops/strategy_cost.h, that model's time estimate (model_ms, what `auto` compares)
// and the strategy's roofline floor on the chip (floor_ms: its FLOPs at peak or bytes at bandwidth),
// and check_rel_err: its outputs against the chain's through cuBLAS on the same inputs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "engine/backend/backend.h"
#include "engine/core/philox.h"
#include "engine/ops/strategy_cost.h"
#include "kernels/cuda/chain_fused_tile.h"

namespace {

uv::Backend* g_backend = nullptr;
// --dictionary_precision=tf32: U rounded to TF32 (bench::round_to_tf32), for every strategy and the
// check's chain alike; float32 (the default) leaves U as drawn.
bool g_u_tf32 = false;

using uv::bench::Pass;
using uv::bench::Tensors;
using uv::bench::timed_loop;

// --gemm=tf32x3 runs the chain on our own GEMM: the check's reference then goes through cuBLAS.
bool gemm_library_is_ours() { return uv::bench::gemm_library() == uv::GemmLibrary::Tf32x3; }

// Correctness beside the speed: the strategy's outputs (Y; for a step also dX and dV) against the
// chain's on the same inputs through cuBLAS (cuBLASLt with --gemm=cublaslt*; the CPU's GEMM on the
// CPU), on sampled rows, so a fast but wrong kernel shows in the same table (tools/bench_table.py
// leaves rows over 1e-4 out of the goal).
double check_against_chain(uv::Backend& be, const uv::PredictedLinearForwardArgs& f,
                           const uv::PredictedLinearBackwardArgs& b, Pass pass,
                           const std::function<void()>& work) {
  const uv::PredictedLinearShape& s = f.shape;
  Tensors t;
  uv::PredictedLinearForwardArgs rf = f;
  rf.strategy = uv::PredictedStrategy::Chain;
  rf.saved = t.make(be, uv::predicted_linear_saved_floats(s, rf.strategy), 21);
  rf.y = t.make(be, s.m * s.n, 22);
  uv::PredictedLinearBackwardArgs rb = b;
  rb.strategy = uv::PredictedStrategy::Chain;
  rb.saved = rf.saved;
  const bool step = pass == Pass::Step;  // a forward pass needs no backward buffers
  rb.scratch = t.make(be, step ? uv::predicted_linear_backward_scratch_floats(s, rb.strategy) : 0, 23);
  rb.dx = t.make(be, step ? s.m * s.k : 0, 24);
  rb.dv = t.make(be, step ? s.rank * s.n : 0, 25);
  rb.dbias = t.make(be, step ? s.n : 0, 26);
  work();  // the strategy's own outputs, once more
  {
    // The reference on cuBLAS, the benchmark's library back however this leaves.
    struct Library {
      uv::Backend& be;
      bool switched;
      ~Library() {
        if (switched) be.set_gemm_library(uv::bench::gemm_library());
      }
    } library{be, gemm_library_is_ours()};
    if (library.switched) be.set_gemm_library(uv::GemmLibrary::Cublas);
    be.predicted_linear_forward(rf);
    if (step) be.predicted_linear_backward(rb);
  }
  double err = uv::bench::sampled_relative_error(be, f.y, rf.y, s.m, s.n);
  if (step) {
    err = std::max(err, uv::bench::sampled_relative_error(be, b.dx, rb.dx, s.m, s.k));
    err = std::max(err, uv::bench::sampled_relative_error(be, b.dv, rb.dv, s.rank, s.n));
  }
  return err;
}

// Arguments: M, K, N, r (per column), J.
void predicted(benchmark::State& state, uv::PredictedStrategy strategy, Pass pass) {
  uv::Backend& be = *g_backend;
  uv::PredictedLinearShape s;
  s.m = state.range(0); s.k = state.range(1); s.n = state.range(2); s.rank = state.range(3);
  s.columns = state.range(4);
  Tensors t;
  uv::PredictedLinearForwardArgs f;
  f.shape = s; f.strategy = strategy;
  float* const u = t.make(be, s.k * s.t_cols(), 2);  // (K, J·r)
  if (g_u_tf32) uv::bench::round_to_tf32(be, u, s.k * s.t_cols());
  f.x = t.make(be, s.m * s.k, 1); f.u = u; f.v = t.make(be, s.rank * s.n, 3);
  f.bias = t.make(be, s.n, 4); f.saved = t.make(be, uv::predicted_linear_saved_floats(s, strategy), 5);
  f.y = t.make(be, s.m * s.n, 6);
  uv::PredictedLinearBackwardArgs b;
  b.shape = s; b.strategy = strategy; b.x = f.x; b.u = f.u; b.v = f.v; b.saved = f.saved;
  b.dy = t.make(be, s.m * s.n, 7);
  b.scratch = t.make(be, uv::predicted_linear_backward_scratch_floats(s, strategy), 8);
  b.dx = t.make(be, s.m * s.k, 9); b.dv = t.make(be, s.rank * s.n, 10); b.dbias = t.make(be, s.n, 11);
  auto work = [&] {
    be.predicted_linear_forward(f);
    if (pass == Pass::Step) be.predicted_linear_backward(b);
  };
  const double ms = timed_loop(state, be, work);
  state.counters["check_rel_err"] = check_against_chain(be, f, b, pass, work);
  // The cost model counts a whole step; a forward pass is about a third of its FLOPs (1 of 3
  // products per operand), so the forward counters use that share.
  const uv::Roofline roofline = uv::roofline_for(be.device());
  const uv::StrategyCost cost = uv::predicted_step_cost(s, strategy, roofline);
  const double share = pass == Pass::Step ? 1.0 : 1.0 / 3.0;
  state.counters["TFLOP/s"] = cost.flops * share / (ms / 1e3) / 1e12;
  state.counters["GB/s"] = cost.bytes * share / (ms / 1e3) / 1e9;
  state.counters["model_ms"] = cost.seconds * share * 1e3;  // the auto strategy's estimate
  // The hardware floor: the strategy's FLOPs at the float32 peak or its bytes at full bandwidth;
  // where the products ran on the 3xTF32 tensor-core GEMM, at its peak instead.
  const bool cuda = be.device() != uv::Device::CPU;
  const bool on_tf32x3 =
      cuda && ((strategy == uv::PredictedStrategy::ChainFused && !uv::cuda::chain_fused_supported(s)) ||
               (uv::bench::gemm_library() == uv::GemmLibrary::Tf32x3 &&
                (strategy == uv::PredictedStrategy::Chain || strategy == uv::PredictedStrategy::Materialise)));
  const uv::Roofline peak = on_tf32x3 ? uv::tf32x3_peak_roofline() : uv::peak_roofline(be.device());
  state.counters["floor_ms"] = uv::roofline_floor_seconds(cost, peak) * share * 1e3;
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(s.m) * state.iterations(),
                                                   benchmark::Counter::kIsRate);
  // On a GPU: 1 where the products ran on the 3xTF32 tensor-core GEMM (kernels/cuda/tf32x3_gemm.h):
  // chain_fused past its on-chip kernels' limits, and chain and materialise with --gemm=tf32x3.
  if (cuda) state.counters["tf32x3"] = on_tf32x3 ? 1 : 0;
}

// The dense layer of the same size (what the prediction replaces): Y = X·W + b, and for a step
// dW = Xᵀ·dY, db, dX = dY·Wᵀ. Arguments as above; r and J are ignored.
void dense(benchmark::State& state, Pass pass) {
  uv::Backend& be = *g_backend;
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensors t;
  float *x = t.make(be, m * k, 1), *w = t.make(be, k * n, 2), *bias = t.make(be, n, 3), *y = t.make(be, m * n, 4),
        *dy = t.make(be, m * n, 5), *dw = t.make(be, k * n, 6), *db = t.make(be, n, 7), *dx = t.make(be, m * k, 8);
  auto work = [&] {
    be.gemm(false, false, m, n, k, 1.f, x, k, w, n, 0.f, y, n);
    be.bias_add_rows(y, bias, m, n);
    if (pass == Pass::Forward) return;
    be.gemm(true, false, k, n, m, 1.f, x, k, dy, n, 0.f, dw, n);
    be.column_sums(dy, m, n, db, uv::GradientMode::Overwrite);
    be.gemm(false, true, m, k, n, 1.f, dy, n, w, n, 0.f, dx, k);
  };
  const double ms = timed_loop(state, be, work);
  const double flops = 2.0 * m * k * n * (pass == Pass::Step ? 3 : 1);
  state.counters["TFLOP/s"] = flops / (ms / 1e3) / 1e12;
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(m) * state.iterations(),
                                                   benchmark::Counter::kIsRate);
}

void paper_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r", "J"})->UseManualTime()->Unit(benchmark::kMicrosecond);
  for (int64_t m : {100, 1024}) {
    b->Args({m, 784, 500, 78, 1});
    b->Args({m, 500, 500, 50, 1});
    b->Args({m, 784, 500, 78, 5});
  }
}

// The large shapes of issue 3: M ∈ {4096, 32768}, K = N ∈ {4096, 16384}, fraction ∈ {5, 10, 25,
// 50}%. Only on a GPU (a 2-core CPU would take minutes per call).
void large_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r", "J"})->UseManualTime()->Unit(benchmark::kMillisecond);
  for (int64_t m : {4096, 32768})
    for (int64_t k : {4096, 16384})
      for (int64_t percent : {5, 10, 25, 50}) b->Args({m, k, k, k * percent / 100, 1});
}

void register_all(bool cuda) {
  using uv::PredictedStrategy;
  const bool large = cuda;
  std::vector<std::pair<const char*, PredictedStrategy>> strategies = {
      {"chain", PredictedStrategy::Chain},
      {"chain_fused", PredictedStrategy::ChainFused},
      {"materialise", PredictedStrategy::Materialise}};
  // On the CPU onthefly_w is materialise's arithmetic (W tiles are a GPU idea): timed on CUDA only.
  if (cuda) strategies.push_back({"onthefly_w", PredictedStrategy::OnTheFlyW});
  for (auto [name, strategy] : strategies)
    for (auto [pass_name, pass] : {std::pair{"forward", Pass::Forward}, std::pair{"step", Pass::Step}}) {
      const std::string base = std::string(name) + "/" + pass_name;
      benchmark::RegisterBenchmark((base + "/paper").c_str(), predicted, strategy, pass)->Apply(paper_shapes);
      if (large)
        benchmark::RegisterBenchmark((base + "/large").c_str(), predicted, strategy, pass)->Apply(large_shapes);
    }
  for (auto [pass_name, pass] : {std::pair{"forward", Pass::Forward}, std::pair{"step", Pass::Step}}) {
    const std::string base = std::string("dense/") + pass_name;
    benchmark::RegisterBenchmark((base + "/paper").c_str(), dense, pass)->Apply(paper_shapes);
    if (large) benchmark::RegisterBenchmark((base + "/large").c_str(), dense, pass)->Apply(large_shapes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!uv::bench::take_dictionary_precision(argc, argv, "bench_predicted_linear", g_u_tf32)) return 2;
  return uv::bench::run(argc, argv, "bench_predicted_linear", [](uv::Backend& backend) {
    g_backend = &backend;
    register_all(backend.device() == uv::Device::CUDA);
  });
}
