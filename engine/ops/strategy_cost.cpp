#include "engine/ops/strategy_cost.h"

#include "kernels/cuda/chain_fused_tile.h"  // plain C++: tile shapes, no CUDA headers
#include "kernels/cuda/onthefly_w_tile.h"

namespace uv {

Roofline roofline_for(Device device, bool wgmma_tensor_chain) {
  if (device == Device::CUDA) return {35e12, 4.0e12, 1.5e12, 5.0e12, wgmma_tensor_chain ? 1.4 * 35e12 : 0.0};
  return {150e9, 20e9, 150e9, 150e9};
}

Roofline peak_roofline(Device device) {
  if (device == Device::CUDA) return {67e12, 4.8e12, 67e12, 67e12};
  return roofline_for(Device::CPU);
}

Roofline tf32x3_peak_roofline() { return {494.7e12 / 3, 4.8e12, 494.7e12 / 3, 494.7e12 / 3}; }

double roofline_floor_seconds(const StrategyCost& cost, const Roofline& peak) {
  const double compute = cost.flops / peak.flops_per_second, memory = cost.bytes / peak.bytes_per_second;
  return compute > memory ? compute : memory;
}

namespace {

// A row-major product C (m×n) = A (m×k)·B (k×n): 2mnk FLOPs, and each operand read or written once.
void add_gemm(StrategyCost& c, double m, double n, double k) {
  c.flops += 2 * m * n * k;
  c.bytes += 4 * (m * k + k * n + m * n);
}

// One of onthefly_w's kernels: C (m×n) = A (m×k)·B (k×n) with B = F·G rebuilt from F (k×r) and
// G (r×n) once per row tile of C (spec: 2·M·K·N plus 2·K·N·r per row tile of M); A, F, G read and
// C written once.
void add_rebuilt_gemm(StrategyCost& c, double m, double n, double k, double r, double row_tiles) {
  c.flops += 2 * m * n * k + 2 * k * n * r * row_tiles;
  c.bytes += 4 * (m * k + k * r + r * n + m * n);
}

}  // namespace

StrategyCost predicted_step_cost(const PredictedLinearShape& s, PredictedStrategy strategy,
                                 const Roofline& roofline) {
  const double m = static_cast<double>(s.m), k = static_cast<double>(s.k), n = static_cast<double>(s.n);
  const double r = static_cast<double>(s.rank), nc = static_cast<double>(s.n_per_column()),
               tc = static_cast<double>(s.t_cols()), J = static_cast<double>(s.columns);
  StrategyCost c;
  switch (strategy) {
    case PredictedStrategy::Chain:
    case PredictedStrategy::ChainFused:
      add_gemm(c, m, tc, k);        // T = X·U
      for (int pass = 0; pass < 3; ++pass)  // Y_j = T_j·V_j, dV_j = T_jᵀ·dY_j, dT_j = dY_j·V_jᵀ
        for (double j = 0; j < J; ++j) add_gemm(c, m, nc, r);
      add_gemm(c, m, k, tc);        // dX = dT·Uᵀ
      // chain_fused on chip: forward reads its T row tile from chip, not memory, and dT never
      // leaves it (written and read back by the chain): 3 M×J·r transfers fewer. Past the on-chip
      // limits it is the chain, on the tensor cores.
      if (strategy == PredictedStrategy::ChainFused && cuda::chain_fused_supported(s)) c.bytes -= 4 * 3 * m * tc;
      break;
    case PredictedStrategy::Materialise:
      for (double j = 0; j < J; ++j) add_gemm(c, k, nc, r);  // W_j = U_j·V_j
      add_gemm(c, m, n, k);         // Y = X·W
      add_gemm(c, k, n, m);         // dW = Xᵀ·dY
      for (double j = 0; j < J; ++j) add_gemm(c, r, nc, k);  // dV_j = U_jᵀ·dW_j
      add_gemm(c, m, k, n);         // dX = dY·Wᵀ
      break;
    case PredictedStrategy::OnTheFlyW: {
      const double row_tiles = static_cast<double>(cuda::onthefly_w_row_tiles(s.m));
      add_rebuilt_gemm(c, m, n, k, r, row_tiles);  // Y = X·W, W_j tiles = U_j·V_j tiles
      add_gemm(c, m, tc, k);                       // T = X·U, recomputed for dV
      for (double j = 0; j < J; ++j) add_gemm(c, r, nc, m);  // dV_j = T_jᵀ·dY_j
      add_rebuilt_gemm(c, m, k, n, r, row_tiles);  // dX = dY·Wᵀ, Wᵀ tiles = V_jᵀ·U_jᵀ tiles
      break;
    }
  }
  const double tensor_chain = roofline.tensor_chain_flops_per_second > 0 ? roofline.tensor_chain_flops_per_second
                                                                          : roofline.flops_per_second;
  const double rate = strategy == PredictedStrategy::ChainFused
                          ? (cuda::chain_fused_supported(s) ? roofline.chain_fused_flops_per_second : tensor_chain)
                      : strategy == PredictedStrategy::OnTheFlyW ? roofline.onthefly_w_flops_per_second
                                                                 : roofline.flops_per_second;
  c.seconds = c.flops / rate + c.bytes / roofline.bytes_per_second;
  return c;
}

std::vector<PredictedStrategy> priced_strategies(const PredictedLinearShape& s, Device device,
                                                 bool wgmma_tensor_chain) {
  std::vector<PredictedStrategy> out = {PredictedStrategy::Chain, PredictedStrategy::Materialise};
  if (device == Device::CUDA) {
    // Past the on-chip limits only on the shapes the tensor chain was measured on (M, K and N of
    // 4096 and up): the thin products of an im2col convolution (K = 25 to 800) were not.
    const bool measured = s.m >= 4096 && s.k >= 4096 && s.n_per_column() >= 4096;
    if (cuda::chain_fused_supported(s) ||
        (measured && roofline_for(device, wgmma_tensor_chain).tensor_chain_flops_per_second > 0))
      out.push_back(PredictedStrategy::ChainFused);
    if (cuda::onthefly_w_supported(s)) out.push_back(PredictedStrategy::OnTheFlyW);
  }
  return out;
}

PredictedStrategy choose_predicted_strategy(const PredictedLinearShape& s, Device device, bool wgmma_tensor_chain) {
  const Roofline roofline = roofline_for(device, wgmma_tensor_chain);
  PredictedStrategy best = PredictedStrategy::Chain;
  double best_seconds = predicted_step_cost(s, best, roofline).seconds;
  for (PredictedStrategy strategy : priced_strategies(s, device, wgmma_tensor_chain)) {
    const double seconds = predicted_step_cost(s, strategy, roofline).seconds;
    if (seconds < best_seconds) {
      best = strategy;
      best_seconds = seconds;
    }
  }
  return best;
}

}  // namespace uv
