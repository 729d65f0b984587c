// Predicted convolution on a backend: forward and forward+backward (dX, dV or dW, db) of each
// strategy beside the dense convolution of the same size, on the paper's convnet layers (32x32x3
// CIFAR-10 sizes) and on the 28x28x1 variant that trains here (models/convnet_fashion.json).
//   build/bench_predicted_conv2d --device=cpu|cuda --benchmark_out=out.json --benchmark_out_format=json
//   tools/bench_table.py out.json --baselines dense,materialise
// On the GPU `dense` and `materialise` are cuDNN on a learned and on a materialised filter bank (the
// baselines), `chain` is cuDNN with the n_alpha dictionary filters then a GEMM with V, `chain_fused`
// the im2col rows through the fused predicted-linear kernels, `onthefly_w` the implicit-GEMM kernels
// (im2col tiles gathered from the input, filter tiles rebuilt from U and V on chip). Counters:
// TFLOP/s of the dense convolution's 2·rows·K·N per product (the work the layer stands for), GB/s of
// its operands, floor_ms (the dense convolution's roofline floor on the chip), samples/s.
#include <benchmark/benchmark.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "engine/backend/backend.h"
#include "engine/ops/strategy_cost.h"

namespace {

uv::Backend* g_backend = nullptr;
bool g_gpu = false;  // the GPU gets a bigger batch and the paper's CIFAR-10 layers too

using uv::bench::Pass;
using uv::bench::Tensors;
using uv::bench::timed_loop;

// Arguments: batch B, input H (= W), C_in, C_out, kernel p, rank r (per column; 0 for dense), J.
// "same" padding, stride 1, as the convnets use.
void conv(benchmark::State& state, bool predicted, uv::PredictedStrategy strategy, Pass pass) {
  uv::Backend& be = *g_backend;
  uv::Conv2dLayout layout;
  layout.conv = uv::make_conv2d_shape(state.range(0), state.range(1), state.range(1), state.range(2), state.range(3),
                                      state.range(4), 1, -1);
  layout.predicted = predicted;
  layout.strategy = strategy;
  layout.rank = state.range(5);
  layout.columns = state.range(6);
  const uv::Conv2dShape& s = layout.conv;
  const uv::Conv2dBuffers sizes = be.conv2d_buffers(layout);
  Tensors t;
  uv::Conv2dForwardArgs f;
  f.conv = s; f.predicted = predicted; f.strategy = strategy; f.rank = layout.rank; f.columns = layout.columns;
  f.x = t.make(be, s.batch * s.in_features(), 1);
  if (predicted) {
    f.u = t.make(be, s.patch() * layout.columns * layout.rank, 2);
    f.v = t.make(be, layout.rank * s.out_c, 3);
  } else {
    f.w = t.make(be, s.patch() * s.out_c, 2);
  }
  f.bias = t.make(be, s.out_c, 4);
  f.saved = t.make(be, sizes.saved, 5);
  f.cols = t.make(be, sizes.forward_cols, 6);
  f.filter = t.make(be, sizes.forward_filter, 15);  // cuDNN's KRSC copy of W or U
  f.y = t.make(be, s.rows() * s.out_c, 7);
  uv::Conv2dBackwardArgs b;
  b.conv = s; b.predicted = predicted; b.strategy = strategy; b.rank = layout.rank; b.columns = layout.columns;
  b.x = f.x; b.w = f.w; b.u = f.u; b.v = f.v; b.saved = f.saved;
  b.dy = t.make(be, s.rows() * s.out_c, 8);
  b.cols = t.make(be, sizes.backward_cols, 9);
  b.dcols = t.make(be, sizes.dcols, 10);
  b.scratch = t.make(be, sizes.backward_scratch, 11);
  b.filter = t.make(be, sizes.backward_filter, 16);
  b.dx = t.make(be, s.batch * s.in_features(), 12);
  if (predicted) b.dv = t.make(be, layout.rank * s.out_c, 13); else b.dw = t.make(be, s.patch() * s.out_c, 13);
  b.dbias = t.make(be, s.out_c, 14);
  auto work = [&] {
    be.conv2d_forward(f);
    if (pass == Pass::Step) be.conv2d_backward(b);
  };
  const double ms = timed_loop(state, be, work);
  const double flops = 2.0 * s.rows() * s.patch() * s.out_c * (pass == Pass::Step ? 3 : 1);
  state.counters["TFLOP/s"] = flops / (ms / 1e3) / 1e12;
  // The dense convolution's floor on this chip, for every strategy: its FLOPs at the float32 peak,
  // or its input, output and filter bank read or written once (each again for a step's backward)
  // at full bandwidth, the larger.
  const double bytes = 4.0 * (static_cast<double>(s.batch) * s.in_features() + static_cast<double>(s.rows()) * s.out_c +
                              static_cast<double>(s.patch()) * s.out_c) * (pass == Pass::Step ? 2 : 1);
  state.counters["GB/s"] = bytes / (ms / 1e3) / 1e9;
  uv::StrategyCost floor_cost;
  floor_cost.flops = flops;
  floor_cost.bytes = bytes;
  state.counters["floor_ms"] = uv::roofline_floor_seconds(floor_cost, uv::peak_roofline(be.device())) * 1e3;
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(s.batch) * state.iterations(),
                                                   benchmark::Counter::kIsRate);
}

// Each layer at 25% of its filter weights learned (n_alpha = p·p·C_in / 4), one column.
void layers(benchmark::internal::Benchmark* b) {
  const bool gpu = g_gpu;
  b->ArgNames({"B", "H", "C", "O", "p", "r", "J"})->UseManualTime()->Unit(benchmark::kMillisecond);
  const int64_t batch = gpu ? 128 : 32;
  auto add = [&](int64_t h, int64_t c, int64_t o, int64_t p) { b->Args({batch, h, c, o, p, p * p * c / 4, 1}); };
  add(28, 1, 32, 5);  // models/convnet_fashion.json
  add(14, 32, 64, 5);
  add(7, 64, 64, 5);
  if (!gpu) return;
  add(32, 3, 48, 8);  // the paper's convnet on CIFAR-10 (spec section 5)
  add(16, 48, 64, 8);
  add(8, 64, 64, 5);
}

void register_all(bool gpu) {
  g_gpu = gpu;
  using uv::PredictedStrategy;
  for (auto [pass_name, pass] : {std::pair{"forward", Pass::Forward}, std::pair{"step", Pass::Step}}) {
    benchmark::RegisterBenchmark((std::string("dense/") + pass_name + "/convnet").c_str(), conv, false,
                                 PredictedStrategy::Chain, pass)
        ->Apply(layers);
    for (auto [name, strategy] : {std::pair{"chain", PredictedStrategy::Chain},
                                  std::pair{"chain_fused", PredictedStrategy::ChainFused},
                                  std::pair{"onthefly_w", PredictedStrategy::OnTheFlyW},
                                  std::pair{"materialise", PredictedStrategy::Materialise}}) {
      // CUDA kernels: the CPU runs chain_fused as the chain, onthefly_w as materialise in panels.
      if (!gpu && (strategy == PredictedStrategy::ChainFused || strategy == PredictedStrategy::OnTheFlyW)) continue;
      benchmark::RegisterBenchmark((std::string(name) + "/" + pass_name + "/convnet").c_str(), conv, true, strategy, pass)
          ->Apply(layers);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  return uv::bench::run(argc, argv, "bench_predicted_conv2d", [](uv::Backend& backend) {
    g_backend = &backend;
    register_all(backend.device() == uv::Device::CUDA);
  });
}
