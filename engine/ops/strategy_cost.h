// The cost model behind `strategy: "auto"` (spec section 7): FLOPs and bytes of one training step
// (forward + backward) of a predicted layer under each strategy, turned into a time with a simple
// roofline, and the cheapest strategy chosen per layer shape.
#pragma once

#include "engine/core/tensor.h"
#include "kernels/predicted_linear_args.h"

namespace uv {

struct StrategyCost {
  double flops = 0;   // multiply-adds counted as 2
  double bytes = 0;   // float32 traffic of the operands each product reads and writes
  double seconds = 0; // flops / peak + bytes / bandwidth
};

// A device's throughput as the model sees it. These are planning figures, not measurements:
// the CPU figure is the order of what bench_predicted_linear --device=cpu shows for the dense step on a
// 2-core AVX-512 machine; the GPU figure is an H100's float32 SIMT peak and HBM3 bandwidth.
struct Roofline {
  double flops_per_second;
  double bytes_per_second;
};
Roofline roofline_for(Device device);

// One forward + backward (with dX) of the layer at batch s.m.
StrategyCost predicted_step_cost(const PredictedLinearShape& s, PredictedStrategy strategy,
                                 const Roofline& roofline);
PredictedStrategy choose_predicted_strategy(const PredictedLinearShape& s, const Roofline& roofline);

}  // namespace uv
