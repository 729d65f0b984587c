#include "engine/ops/strategy_cost.h"

namespace uv {

Roofline roofline_for(Device device) {
  if (device == Device::CUDA) return {60e12, 3.0e12};
  return {150e9, 20e9};
}

namespace {

// A row-major product C (m×n) = A (m×k)·B (k×n): 2mnk FLOPs, and each operand read or written once.
void add_gemm(StrategyCost& c, double m, double n, double k) {
  c.flops += 2 * m * n * k;
  c.bytes += 4 * (m * k + k * n + m * n);
}

}  // namespace

StrategyCost predicted_step_cost(const PredictedLinearShape& s, PredictedStrategy strategy,
                                 const Roofline& roofline) {
  const double m = static_cast<double>(s.m), k = static_cast<double>(s.k), n = static_cast<double>(s.n);
  const double r = static_cast<double>(s.rank), nc = static_cast<double>(s.n_per_column()),
               tc = static_cast<double>(s.t_cols()), J = static_cast<double>(s.columns);
  StrategyCost c;
  if (strategy != PredictedStrategy::Materialise) {  // chain_fused: same products, T kept on chip
    add_gemm(c, m, tc, k);        // T = X·U
    for (int pass = 0; pass < 3; ++pass)  // Y_j = T_j·V_j, dV_j = T_jᵀ·dY_j, dT_j = dY_j·V_jᵀ
      for (double j = 0; j < J; ++j) add_gemm(c, m, nc, r);
    add_gemm(c, m, k, tc);        // dX = dT·Uᵀ
  } else {
    for (double j = 0; j < J; ++j) add_gemm(c, k, nc, r);  // W_j = U_j·V_j
    add_gemm(c, m, n, k);         // Y = X·W
    add_gemm(c, k, n, m);         // dW = Xᵀ·dY
    for (double j = 0; j < J; ++j) add_gemm(c, r, nc, k);  // dV_j = U_jᵀ·dW_j
    add_gemm(c, m, k, n);         // dX = dY·Wᵀ
  }
  c.seconds = c.flops / roofline.flops_per_second + c.bytes / roofline.bytes_per_second;
  return c;
}

PredictedStrategy choose_predicted_strategy(const PredictedLinearShape& s, const Roofline& roofline) {
  const double chain = predicted_step_cost(s, PredictedStrategy::Chain, roofline).seconds;
  const double materialise = predicted_step_cost(s, PredictedStrategy::Materialise, roofline).seconds;
  return materialise < chain ? PredictedStrategy::Materialise : PredictedStrategy::Chain;
}

}  // namespace uv
