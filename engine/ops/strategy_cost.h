// The cost model behind `strategy: "auto"` (spec section 7): FLOPs and bytes of one training step
// (forward + backward) of a predicted layer under each strategy, turned into a time with a simple
// roofline, and the cheapest strategy the device runs chosen per layer shape.
#pragma once

#include <vector>

#include "engine/core/tensor.h"
#include "kernels/predicted_linear_args.h"

namespace uv {

struct StrategyCost {
  double flops = 0;   // multiply-adds counted as 2
  double bytes = 0;   // float32 traffic of the operands each product or kernel reads and writes
  double seconds = 0; // flops / peak + bytes / bandwidth
};

// A device's throughput as the model sees it. The CPU figure is the order of what
// bench_predicted_linear --device=cpu shows for the dense step on a 2-core AVX-512 machine. The GPU
// figures were measured on an H200 (2026-11-26, docs/gpu-results.md): cuBLAS float32 GEMMs through
// the chain at about 35 TFLOP/s, and the project's own float32 SIMT kernels far below that,
// chain_fused at 1.2 to 1.9 TFLOP/s and onthefly_w at about 5.5 (model FLOPs), so each is priced at
// its own rate. On the CPU all three rates are one (chain_fused is the chain there).
struct Roofline {
  double flops_per_second;             // library GEMMs (cuBLAS, oneDNN/OpenBLAS)
  double bytes_per_second;
  double chain_fused_flops_per_second; // uvtrain's fused T-on-chip kernels
  double onthefly_w_flops_per_second;  // uvtrain's W-tile-rebuilding kernels
  // chain_fused past its on-chip limits: the chain on uvtrain's 3xTF32 tensor-core GEMM. 0 where
  // it is not faster than the library: priced then at the library rate, and not among the
  // strategies `auto` compares.
  double tensor_chain_flops_per_second = 0;
};
// `wgmma_tensor_chain`: the device runs that chain's big tiles on Hopper's wgmma
// (Backend::wgmma_tensor_chain). Measured on an H100 (2026-11-26, docs/gpu-results.md, thirteenth
// session), with U in float32 it beat the best cuBLAS path on all 14 pass-shapes timed at M = 4096,
// by a median 1.44× (1.29× to 1.64×), so it is priced at 1.4 × the library rate there. On the
// default kernel since (2026-11-27) it was 1.25× to 1.92× on all 24 large pass-shapes, a median
// 1.66×; the price stays at 1.4, on the safe side. With U rounded to TF32 (dictionary_precision)
// it was 1.35× to 2.17×, which the model leaves out, as it does not change a choice. Elsewhere the
// mma.sync kernel runs it, which lost to cuBLAS on most of them (0.69× to 1.0×): 0, as the library.
Roofline roofline_for(Device device, bool wgmma_tensor_chain = false);
// The hardware floor a strategy's measured time is reported against (bench_predicted_linear's
// floor_ms). Every product runs at the chip's float32 peak and every byte at its memory bandwidth,
// and the floor is the larger of the two times. GPU: an H200's float32 SIMT peak (67 TFLOP/s) and
// HBM3e bandwidth (4.8 TB/s); on an H100 the bandwidth is 3.35 TB/s, so the floor is optimistic
// there. CPU: roofline_for's figures, since this 2-core guest has no datasheet.
Roofline peak_roofline(Device device);
// The same floor for products on the tensor cores by 3xTF32 (kernels/cuda/tf32x3_gemm.h): three
// TF32 products per float32 one at the H100/H200 SXM's dense TF32 rate (494.7 TFLOP/s), 165 TFLOP/s.
Roofline tf32x3_peak_roofline();
double roofline_floor_seconds(const StrategyCost& cost, const Roofline& peak);

// One forward + backward (with dX) of the layer at batch s.m, as the strategy's CUDA kernels run
// it: chain_fused moves no T row tile through memory except the one write kept for dV, and
// onthefly_w rebuilds W once per row tile of OnTheFlyWTile::kRows (forward and backward-data) and
// recomputes T = X·U for dV. On the CPU chain_fused is the chain and onthefly_w is materialise's
// arithmetic, so the CPU prices only those two.
StrategyCost predicted_step_cost(const PredictedLinearShape& s, PredictedStrategy strategy,
                                 const Roofline& roofline);
// The strategies `auto` compares on a device for this shape: CPU chain and materialise; CUDA also
// chain_fused where its on-chip limits hold (chain_fused_supported) or, past them, where the tensor
// chain has a measured rate and the shape is of those it was measured on (M, K, N ≥ 4096), and
// onthefly_w.
std::vector<PredictedStrategy> priced_strategies(const PredictedLinearShape& s, Device device,
                                                 bool wgmma_tensor_chain = false);
// The cheapest of priced_strategies on the device's roofline (ties go to the earlier in the list).
PredictedStrategy choose_predicted_strategy(const PredictedLinearShape& s, Device device,
                                            bool wgmma_tensor_chain = false);

}  // namespace uv
