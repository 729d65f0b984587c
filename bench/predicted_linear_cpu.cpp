// CPU predicted-linear layer: forward and forward+backward of each strategy on the paper's shapes,
// side by side with the dense layer of the same size (what the prediction saves).
//   build/bench_predicted_linear_cpu --benchmark_out=bench.json --benchmark_out_format=json
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu/predicted_linear.h"

namespace {

struct Layer {
  uv::PredictedLinearShape shape;
  std::vector<float> x, u, v, b, saved, y, dy, scratch, dx, dv, db, w, dw;

  Layer(int64_t m, int64_t k, int64_t n, int64_t rank, int64_t columns, uv::PredictedStrategy strategy) {
    shape.m = m; shape.k = k; shape.n = n; shape.rank = rank; shape.columns = columns;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    auto fill = [&](std::vector<float>& a, int64_t size) {
      a.resize(static_cast<size_t>(size));
      for (float& value : a) value = dist(rng);
    };
    fill(x, m * k); fill(u, k * shape.t_cols()); fill(v, rank * n); fill(b, n); fill(dy, m * n);
    fill(w, k * n);
    saved.resize(static_cast<size_t>(uv::predicted_linear_saved_floats(shape, strategy)));
    scratch.resize(static_cast<size_t>(uv::predicted_linear_backward_scratch_floats(shape, strategy)));
    y.resize(static_cast<size_t>(m * n)); dx.resize(static_cast<size_t>(m * k));
    dv.resize(v.size()); db.resize(b.size()); dw.resize(w.size());
  }
};

// Arguments: M, K, N, rank, columns.
void run_predicted(benchmark::State& state, uv::PredictedStrategy strategy, bool backward) {
  Layer l(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), strategy);
  uv::PredictedLinearForwardArgs f;
  f.shape = l.shape; f.strategy = strategy; f.x = l.x.data(); f.u = l.u.data(); f.v = l.v.data();
  f.bias = l.b.data(); f.saved = l.saved.data(); f.y = l.y.data();
  uv::PredictedLinearBackwardArgs bw;
  bw.shape = l.shape; bw.strategy = strategy; bw.x = l.x.data(); bw.u = l.u.data(); bw.v = l.v.data();
  bw.saved = l.saved.data(); bw.dy = l.dy.data(); bw.scratch = l.scratch.data(); bw.dx = l.dx.data();
  bw.dv = l.dv.data(); bw.dbias = l.db.data();
  for (auto _ : state) {
    uv::cpu::predicted_linear_forward(f);
    if (backward) uv::cpu::predicted_linear_backward(bw);
    benchmark::DoNotOptimize(l.y.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));  // samples/s
}

void run_dense(benchmark::State& state, bool backward) {
  Layer l(state.range(0), state.range(1), state.range(2), 1, 1, uv::PredictedStrategy::Chain);
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  for (auto _ : state) {
    uv::cpu::dense_forward(l.x.data(), l.w.data(), l.b.data(), l.y.data(), m, k, n);
    if (backward)
      uv::cpu::dense_backward(l.x.data(), l.w.data(), l.dy.data(), l.dx.data(), l.dw.data(), l.db.data(),
                              m, k, n, uv::GradientMode::Overwrite, uv::GradientMode::Overwrite);
    benchmark::DoNotOptimize(l.y.data());
  }
  state.SetItemsProcessed(state.iterations() * m);
}

// The paper's MLP layers at batch 100 and 1024 (10% learned), and a wide layer at 5%.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "r", "J"});
  for (int64_t m : {100, 1024}) {
    b->Args({m, 784, 500, 78, 1});
    b->Args({m, 500, 500, 50, 1});
    b->Args({m, 784, 500, 78, 5});
  }
  b->Args({256, 4096, 4096, 204, 1});
}

}  // namespace

BENCHMARK_CAPTURE(run_predicted, chain_forward, uv::PredictedStrategy::Chain, false)->Apply(shapes);
BENCHMARK_CAPTURE(run_predicted, materialise_forward, uv::PredictedStrategy::Materialise, false)->Apply(shapes);
BENCHMARK_CAPTURE(run_dense, dense_forward, false)->Apply(shapes);
BENCHMARK_CAPTURE(run_predicted, chain_step, uv::PredictedStrategy::Chain, true)->Apply(shapes);
BENCHMARK_CAPTURE(run_predicted, materialise_step, uv::PredictedStrategy::Materialise, true)->Apply(shapes);
BENCHMARK_CAPTURE(run_dense, dense_step, true)->Apply(shapes);
BENCHMARK_MAIN();
