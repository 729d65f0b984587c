// Scale study (issue 6 item 3): ONE fully connected layer, K = N grown from 512 to 32768 in powers
// of two at a fixed fraction learned (rank r = int(K·fraction) per column, J = 1), batch M. Per
// width and strategy: time per training step and the backend's peak memory.
//
//   build/bench_scale --device=cpu [--fraction=0.05] [--batch=100] [--max_gib=6] [--min_k=512]
//                     [--max_k=32768] --benchmark_out=scale.json --benchmark_out_format=json
//   tools/plot_scale.py scale.json -o scale.png --table
//
// Strategies: `materialise` and `chain` (predicted_dense, U fixed, V learned) and the dense layer
// (Dense op, W learned) as the reference; with --device=cuda also `chain_fused` and `onthefly_w`.
// Every case is built from the engine's own parts, so its memory is what the engine plans:
//   a fresh Backend (its peak_allocated_bytes() is this case's alone), a ParameterStore (learned
//   values, gradients and momentum in three arenas, the fixed U in a fourth), and a Graph of two
//   ops: an identity ActivationOp, then the layer. The identity op is there because Graph gives
//   op 0 no dX (Graph::backward passes dx = null to the first trainable op): the layer is timed as
//   a hidden layer, so it must compute dX = dY·Wᵀ (or dT·Uᵀ), and the identity op in front makes
//   the graph plan and pass that gradient. Its own cost is one M×K copy forward and nothing
//   backward (its dx is null), and its two M×K buffers are in the planned arena.
// A training step = Graph::forward on a fixed input X (M×K, Uniform(±1)), the output gradient
// copied from a fixed Uniform(±1/M) buffer (a loss would write it there; the copy is M·N floats),
// Graph::backward, and Backend::sgd_step on each learned parameter (momentum 0.9, weight decay
// 5e-5 on weights, lr 1e-4), as Run::sgd does, without the column-norm bound.
// The peak counts the four parameter arenas, the graph's activation arena (with materialise's W
// and dW), X and the dY source: everything the case allocates through the backend. Scratch that
// libraries keep for themselves (oneDNN's, cuBLAS's workspace) is not in it.
// Before allocating, each case prices those same buffers (`planned_bytes`) and is skipped with an
// error when that exceeds --max_gib (default 6 GiB on the CPU, 70 on a GPU): at fraction 0.05 the
// CPU then runs dense and materialise up to K = 16384 and the chain up to 32768.
// Iterations: Google Benchmark's default (each case repeats until --benchmark_min_time, 0.5 s,
// of measured step time, and a step longer than that is run once), after one untimed warm-up
// step per case; each iteration times one step (CUDA events on the GPU).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "engine/backend/backend.h"
#include "engine/graph/graph.h"
#include "engine/graph/parameters.h"
#include "engine/ops/ops.h"
#include "engine/ops/strategy_cost.h"
#include "kernels/cuda/chain_fused_tile.h"  // plain C++: chain_fused's on-chip limit

namespace {

struct Settings {
  double fraction = 0.05;
  int64_t batch = 100;
  double max_gib = 0;  // 0: 6 on the CPU, 70 on a GPU
  int64_t min_k = 512, max_k = 32768;
  std::string device = "cpu";  // what a case's fresh backend is made with
};
Settings g;

// A strategy of the study: the dense layer, or a predicted layer with one of its strategies.
struct Strategy {
  const char* name;
  bool dense;
  uv::PredictedStrategy predicted;
};

int64_t rank_for(int64_t k) {  // the spec's n_α = int(n_v · fraction), as models/network.cpp
  return std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(k) * g.fraction));
}

int64_t align16(int64_t floats) { return (floats + 15) / 16 * 16; }  // ParameterStore's arena alignment

// GEMM FLOPs of the step this benchmark runs (multiply-adds counted as 2). The predicted layer's
// count is the cost model's (engine/ops/strategy_cost.cpp), which prices exactly these products
// with dX computed: chain 2·M·K·r (T = X·U) + 3·2·M·r·N (Y = T·V, dV = Tᵀ·dY, dT = dY·Vᵀ) +
// 2·M·r·K (dX = dT·Uᵀ); materialise 2·K·r·N (W = U·V) + 3·2·M·K·N (Y, dW, dX) + 2·K·r·N
// (dV = Uᵀ·dW); chain_fused as the chain; onthefly_w 2·M·K·N + 2·K·r·N per 64-row tile for Y and
// again for dX, plus 2·M·K·r (T recomputed) + 2·M·r·N (dV). Dense: 3·2·M·K·N. Not counted: the
// bias add and column sums (M·N each), the identity copy, the dY copy and the SGD update (about
// 6 FLOPs per learned parameter).
double step_flops(const Strategy& s, const uv::PredictedLinearShape& shape, uv::Device device) {
  if (s.dense) return 6.0 * static_cast<double>(shape.m) * static_cast<double>(shape.k) * static_cast<double>(shape.n);
  return uv::predicted_step_cost(shape, s.predicted, uv::roofline_for(device)).flops;
}

void scale_case(benchmark::State& state, Strategy strategy) {
  const int64_t k = state.range(0), n = k, m = g.batch, r = rank_for(k);
  // Declared first so it is destroyed last: every buffer below returns its memory to it.
  std::unique_ptr<uv::Backend> backend = uv::make_backend(g.device);
  backend->set_gemm_library(uv::bench::gemm_library());
  uv::Backend& be = *backend;

  uv::ParameterStore store;
  uv::ActivationOp input("input", k, uv::Activation::Identity);
  std::unique_ptr<uv::Op> layer;
  uv::PredictedLinearShape shape;
  shape.m = m; shape.k = k; shape.n = n; shape.rank = r; shape.columns = 1;
  if (strategy.dense) {
    layer = std::make_unique<uv::Dense>("layer", store, k, n, 1.f / std::sqrt(static_cast<float>(k)), 0.f);
  } else {
    uv::PredictedDenseConfig c;
    c.in = k; c.out = n; c.rank = r; c.columns = 1;
    c.strategy = strategy.predicted;
    layer = std::make_unique<uv::PredictedDense>("layer", store, c);
  }
  uv::Graph graph(be, store, m);
  graph.add(&input);
  graph.add(layer.get());

  // What this case will allocate, priced before allocating anything.
  int64_t learned_floats = 0, learned_params = 0, fixed_floats = 0;
  for (const uv::Parameter& p : store.all()) {
    if (p.spec.kind == uv::ParamKind::Learned) {
      learned_floats += align16(p.numel());
      learned_params += p.numel();
    } else {
      fixed_floats += align16(p.numel());
    }
  }
  const uv::ActivationPlan plan = graph.replan();
  const double planned_bytes =
      4.0 * static_cast<double>(3 * learned_floats + fixed_floats + plan.arena_floats + m * k + m * n);
  const double limit = (g.max_gib > 0 ? g.max_gib : be.device() == uv::Device::CUDA ? 70.0 : 6.0) * 1073741824.0;
  if (planned_bytes > limit) {
    char why[160];
    std::snprintf(why, sizeof why, "skipped: needs %.2f GiB, over the %.0f GiB limit (--max_gib)",
                  planned_bytes / 1073741824.0, limit / 1073741824.0);
    state.SkipWithError(why);
    return;
  }

  store.allocate(be);
  for (const uv::Parameter& p : store.all()) {
    if (p.spec.kind == uv::ParamKind::Fixed)  // U: a dictionary would write it; random of that scale
      be.uniform_init(p.value, p.numel(), -1.f / std::sqrt(static_cast<float>(k)),
                      1.f / std::sqrt(static_cast<float>(k)), 7, 1);
    else if (p.spec.init == uv::ParamInit::Uniform)
      be.uniform_init(p.value, p.numel(), -p.spec.init_scale, p.spec.init_scale, 7, 2);
  }
  graph.finalize();
  uv::bench::Tensors t;
  const float* x = t.make(be, m * k, 3);
  float* dy_source = t.make(be, m * n, 4);
  be.uniform_init(dy_source, m * n, -1.f / static_cast<float>(m), 1.f / static_cast<float>(m), 7, 5);
  const std::vector<int> params = graph.trainable_params();

  auto step = [&] {
    graph.forward(x, m);
    be.copy(graph.output_grad(), dy_source, static_cast<size_t>(m * n) * sizeof(float));
    graph.backward(m);
    for (int index : params) {
      uv::Parameter& p = store.at(index);
      uv::SgdArgs args;
      args.params = p.value;
      args.grads = p.grad;
      args.momentum_buffer = p.momentum;
      args.n = p.numel();
      args.lr = 1e-4f;
      args.momentum = 0.9f;
      args.weight_decay = p.spec.weight_decay ? 5e-5f : 0.f;
      be.sgd_step(args);
    }
  };
  const double ms = uv::bench::timed_loop(state, be, step, /*reps=*/1);
  const double flops = step_flops(strategy, shape, be.device());

  state.SetLabel(strategy.name);
  state.counters["K"] = static_cast<double>(k);
  state.counters["M"] = static_cast<double>(m);
  state.counters["r"] = static_cast<double>(r);
  state.counters["ms_per_step"] = ms;
  state.counters["peak_bytes"] = static_cast<double>(be.peak_allocated_bytes());
  state.counters["planned_bytes"] = planned_bytes;
  state.counters["materialised_w_bytes"] = 4.0 * static_cast<double>(plan.materialised_weight_floats);
  state.counters["learned_params"] = static_cast<double>(learned_params);
  state.counters["weight_floats_if_dense"] = static_cast<double>(k * n);
  state.counters["flops_per_step"] = flops;
  state.counters["GFLOP/s"] = flops / (ms / 1e3) / 1e9;
  // chain_fused keeps T's row tile on chip only while J·r ≤ kMaxTCols; beyond, it runs the chain.
  if (!strategy.dense && strategy.predicted == uv::PredictedStrategy::ChainFused)
    state.counters["fused_on_chip"] = uv::cuda::chain_fused_supported(shape) ? 1 : 0;
}

void register_all(bool cuda) {
  using uv::PredictedStrategy;
  std::vector<Strategy> strategies = {{"dense", true, PredictedStrategy::Chain},
                                      {"materialise", false, PredictedStrategy::Materialise},
                                      {"chain", false, PredictedStrategy::Chain}};
  if (cuda) {
    strategies.push_back({"chain_fused", false, PredictedStrategy::ChainFused});
    strategies.push_back({"onthefly_w", false, PredictedStrategy::OnTheFlyW});
  }
  for (const Strategy& s : strategies) {
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(s.name, scale_case, s);
    b->ArgName("K")->UseManualTime()->Unit(benchmark::kMillisecond);
    for (int64_t k = 512; k <= 32768; k *= 2)
      if (k >= g.min_k && k <= g.max_k) b->Arg(k);
  }
}

// Takes --name=value off the command line; returns whether it was there.
bool take_flag(std::vector<char*>& args, const char* name, std::string& value) {
  const size_t len = std::strlen(name);
  for (auto it = args.begin(); it != args.end(); ++it)
    if (std::strncmp(*it, name, len) == 0 && (*it)[len] == '=') {
      value = *it + len + 1;
      args.erase(it);
      return true;
    }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string value;
  try {
    if (take_flag(args, "--fraction", value)) g.fraction = std::stod(value);
    if (take_flag(args, "--batch", value)) g.batch = std::stoll(value);
    if (take_flag(args, "--max_gib", value)) g.max_gib = std::stod(value);
    if (take_flag(args, "--min_k", value)) g.min_k = std::stoll(value);
    if (take_flag(args, "--max_k", value)) g.max_k = std::stoll(value);
  } catch (const std::exception&) {
    std::fprintf(stderr, "bench_scale: bad value '%s' (--fraction, --batch, --max_gib, --min_k, --max_k take numbers)\n",
                 value.c_str());
    return 2;
  }
  if (!(g.fraction > 0 && g.fraction <= 1) || g.batch < 1) {
    std::fprintf(stderr, "bench_scale: --fraction must be in (0, 1] and --batch ≥ 1\n");
    return 2;
  }
  benchmark::AddCustomContext("fraction", std::to_string(g.fraction));
  benchmark::AddCustomContext("batch", std::to_string(g.batch));
  int rest = static_cast<int>(args.size());
  return uv::bench::run(rest, args.data(), "bench_scale", [](uv::Backend& backend) {
    const bool cuda = backend.device() == uv::Device::CUDA;
    g.device = cuda ? "cuda" : "cpu";
    register_all(cuda);
  });
}
