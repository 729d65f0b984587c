// The `auto` strategy's cost model (spec section 7).
#include <gtest/gtest.h>

#include "engine/ops/strategy_cost.h"

namespace uv {
namespace {

PredictedLinearShape shape(int64_t m, int64_t k, int64_t n, int64_t rank, int64_t columns = 1) {
  PredictedLinearShape s;
  s.m = m; s.k = k; s.n = n; s.rank = rank; s.columns = columns;
  return s;
}

TEST(StrategyCost, FlopsFollowTheSpecFormulas) {
  // Chain: 2·M·r·(K+N) per pass, three products through V and two through U over a step:
  // 2·M·K·r·2 + 2·M·r·N·3. Materialise: 2·K·r·N to form W and again for dV, 2·M·K·N three times.
  const PredictedLinearShape s = shape(100, 784, 500, 78);
  const Roofline cpu = roofline_for(Device::CPU);
  EXPECT_DOUBLE_EQ(predicted_step_cost(s, PredictedStrategy::Chain, cpu).flops,
                   2.0 * 100 * 784 * 78 * 2 + 2.0 * 100 * 78 * 500 * 3);
  EXPECT_DOUBLE_EQ(predicted_step_cost(s, PredictedStrategy::Materialise, cpu).flops,
                   2.0 * 784 * 78 * 500 * 2 + 2.0 * 100 * 784 * 500 * 3);
  // Columns split N, not the work per output: the same FLOPs with J = 5 and N/J outputs each.
  const PredictedLinearShape c5 = shape(100, 784, 500, 78, 5);
  EXPECT_DOUBLE_EQ(predicted_step_cost(c5, PredictedStrategy::Chain, cpu).flops,
                   2.0 * 100 * 784 * 390 * 2 + 2.0 * 100 * 78 * 500 * 3);
}

TEST(StrategyCost, ChainWinsAtSmallRankMaterialiseAtRankNearK) {
  for (Device device : {Device::CPU, Device::CUDA}) {
    const Roofline roofline = roofline_for(device);
    // The paper's MLP layers at 10% learned.
    EXPECT_EQ(choose_predicted_strategy(shape(100, 784, 500, 78), roofline), PredictedStrategy::Chain);
    EXPECT_EQ(choose_predicted_strategy(shape(100, 500, 500, 50), roofline), PredictedStrategy::Chain);
    // Wide layers: chain at 25% learned, materialise at 90% with a large batch
    // (10·M·r·K > 6·M·K² + 4·r·K² once r > ~0.6·K for M ≫ K).
    EXPECT_EQ(choose_predicted_strategy(shape(32768, 4096, 4096, 1024), roofline), PredictedStrategy::Chain);
    EXPECT_EQ(choose_predicted_strategy(shape(32768, 4096, 4096, 3686), roofline),
              PredictedStrategy::Materialise);
  }
}

}  // namespace
}  // namespace uv
