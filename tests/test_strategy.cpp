// The `auto` strategy's cost model (spec section 7).
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/ops/strategy_cost.h"
#include "kernels/cuda/chain_fused_tile.h"
#include "kernels/cuda/onthefly_w_tile.h"

namespace uv {
namespace {

PredictedLinearShape shape(int64_t m, int64_t k, int64_t n, int64_t rank, int64_t columns = 1) {
  PredictedLinearShape s;
  s.m = m; s.k = k; s.n = n; s.rank = rank; s.columns = columns;
  return s;
}

double seconds(const PredictedLinearShape& s, PredictedStrategy strategy, Device device) {
  return predicted_step_cost(s, strategy, roofline_for(device)).seconds;
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
  // chain_fused: the chain's products; only T's and dT's trips through memory go.
  EXPECT_DOUBLE_EQ(predicted_step_cost(s, PredictedStrategy::ChainFused, cpu).flops,
                   predicted_step_cost(s, PredictedStrategy::Chain, cpu).flops);
  EXPECT_DOUBLE_EQ(predicted_step_cost(s, PredictedStrategy::Chain, cpu).bytes -
                       predicted_step_cost(s, PredictedStrategy::ChainFused, cpu).bytes,
                   4.0 * 3 * 100 * 78);
  // onthefly_w: 2·M·K·N plus 2·K·N·r per row tile of M, forward and backward-data (M = 100 is two
  // row tiles of 64), then T = X·U again and dV = Tᵀ·dY.
  ASSERT_EQ(cuda::OnTheFlyWTile::kRows, 64);
  EXPECT_DOUBLE_EQ(predicted_step_cost(s, PredictedStrategy::OnTheFlyW, cpu).flops,
                   2 * (2.0 * 100 * 784 * 500 + 2.0 * 784 * 500 * 78 * 2) + 2.0 * 100 * 784 * 78 +
                       2.0 * 100 * 78 * 500);
  // Columns split N, not the work per output: the same FLOPs with J = 5 and N/J outputs each.
  const PredictedLinearShape c5 = shape(100, 784, 500, 78, 5);
  EXPECT_DOUBLE_EQ(predicted_step_cost(c5, PredictedStrategy::Chain, cpu).flops,
                   2.0 * 100 * 784 * 390 * 2 + 2.0 * 100 * 78 * 500 * 3);
}

TEST(StrategyCost, EachDevicePricesTheStrategiesItRuns) {
  using PS = PredictedStrategy;
  const PredictedLinearShape paper = shape(100, 784, 500, 78);
  EXPECT_EQ(priced_strategies(paper, Device::CPU), (std::vector<PS>{PS::Chain, PS::Materialise}));
  EXPECT_EQ(priced_strategies(paper, Device::CUDA),
            (std::vector<PS>{PS::Chain, PS::Materialise, PS::ChainFused, PS::OnTheFlyW}));
  // chain_fused only within its on-chip limit, J·r ≤ 512.
  ASSERT_EQ(cuda::ChainFusedTile::kMaxTCols, 512);
  EXPECT_EQ(priced_strategies(shape(100, 784, 500, 78, 6), Device::CUDA),  // J·r = 468
            (std::vector<PS>{PS::Chain, PS::Materialise, PS::ChainFused, PS::OnTheFlyW}));
  EXPECT_EQ(priced_strategies(shape(100, 784, 500, 78, 10), Device::CUDA),  // J·r = 780
            (std::vector<PS>{PS::Chain, PS::Materialise, PS::OnTheFlyW}));
}

TEST(StrategyCost, ChainWinsAtSmallRankMaterialiseAtRankNearK) {
  using PS = PredictedStrategy;
  // The paper's MLP layers at 10% learned: the chain, on both devices. On the GPU chain_fused
  // moves the same FLOPs with three fewer trips of T through memory, but its SIMT kernel runs at a
  // twentieth of cuBLAS's measured rate, so the chain through cuBLAS wins.
  for (const PredictedLinearShape& s : {shape(100, 784, 500, 78), shape(100, 500, 500, 50), shape(100, 784, 500, 78, 5)}) {
    EXPECT_EQ(choose_predicted_strategy(s, Device::CPU), PS::Chain);
    EXPECT_EQ(choose_predicted_strategy(s, Device::CUDA), PS::Chain);
  }
  // Wide layers: chain at 25% learned (J·r = 1024: beyond chain_fused's limit), materialise at 90%
  // with a large batch (10·M·r·K > 6·M·K² + 4·r·K² once r > ~0.6·K for M ≫ K).
  for (Device device : {Device::CPU, Device::CUDA}) {
    EXPECT_EQ(choose_predicted_strategy(shape(32768, 4096, 4096, 1024), device), PS::Chain);
    EXPECT_EQ(choose_predicted_strategy(shape(32768, 4096, 4096, 3686), device), PS::Materialise);
  }
  // A small batch keeps the chain even at r near K: materialise's 2·K·r·N to form W (and again for
  // dV) is not spread over enough rows.
  EXPECT_EQ(choose_predicted_strategy(shape(100, 4096, 4096, 3686), Device::CPU), PS::Chain);
}

// Rebuilding W tiles beats materialising W where the rebuild is done once (M within one row
// tile): the same FLOPs without W's and dW's K×N trips through memory. With more row tiles the
// rebuild repeats, 2·K·N·r per tile.
TEST(StrategyCost, OnTheFlyWUndercutsMaterialiseWithinOneRowTile) {
  // At one rate for every kernel (the spec's model; the CPU's roofline has one).
  const PredictedLinearShape one_tile = shape(cuda::OnTheFlyWTile::kRows, 4096, 4096, 2048);
  EXPECT_LT(seconds(one_tile, PredictedStrategy::OnTheFlyW, Device::CPU),
            seconds(one_tile, PredictedStrategy::Materialise, Device::CPU));
  const PredictedLinearShape many_tiles = shape(32768, 4096, 4096, 2048);
  EXPECT_GT(seconds(many_tiles, PredictedStrategy::OnTheFlyW, Device::CUDA),
            10 * seconds(many_tiles, PredictedStrategy::Materialise, Device::CUDA));
}

// With the spec's formulas the chain never does more FLOPs than onthefly_w: per pass the chain
// does 2·M·r·(K+N), onthefly_w at least 2·M·K·N + 2·K·N·r·⌈M/64⌉ ≥ 2·K·N·M·(1 + r/64), the larger
// for N ≥ 64 and r ≤ K. Bytes can tip a tiny layer (K = N = 64, r = K) its way over the chain,
// never over every other strategy, so on these rooflines `auto` does not choose onthefly_w (name it
// in the config to run it); with its measured GPU rate below cuBLAS's, still less.
TEST(StrategyCost, AutoDoesNotChooseOnTheFlyWOnTheSpecFormulas) {
  for (Device device : {Device::CPU, Device::CUDA})
    for (int64_t m : {1, 16, 64, 100, 1024, 32768})
      for (int64_t k : {64, 784, 4096, 16384})
        for (int64_t percent : {1, 10, 25, 50, 90, 100}) {
          const PredictedLinearShape s = shape(m, k, k, std::max<int64_t>(1, k * percent / 100));
          const Roofline roofline = roofline_for(device);
          EXPECT_LT(predicted_step_cost(s, PredictedStrategy::Chain, roofline).flops,
                    predicted_step_cost(s, PredictedStrategy::OnTheFlyW, roofline).flops)
              << "M " << m << " K=N " << k << " r " << s.rank;
          EXPECT_NE(choose_predicted_strategy(s, device), PredictedStrategy::OnTheFlyW)
              << "M " << m << " K=N " << k << " r " << s.rank;
        }
}

// The measured rates: a kernel priced below the library's rate is chosen only where its saved bytes
// pay for it, which on the GPU rates of 2026-11-26 is nowhere on the shapes.
TEST(StrategyCost, MeasuredGpuRatesKeepAutoOnCublas) {
  const Roofline gpu = roofline_for(Device::CUDA), cpu = roofline_for(Device::CPU);
  EXPECT_LT(gpu.chain_fused_flops_per_second, gpu.flops_per_second);
  EXPECT_LT(gpu.onthefly_w_flops_per_second, gpu.flops_per_second);
  EXPECT_EQ(cpu.chain_fused_flops_per_second, cpu.flops_per_second);
  for (int64_t m : {100, 1024, 4096, 32768})
    for (int64_t k : {784, 4096, 16384})
      for (int64_t percent : {5, 10, 25, 50}) {
        const PredictedLinearShape s = shape(m, k, k, k * percent / 100);
        const PredictedStrategy chosen = choose_predicted_strategy(s, Device::CUDA);
        EXPECT_TRUE(chosen == PredictedStrategy::Chain || chosen == PredictedStrategy::Materialise)
            << "M " << m << " K=N " << k << " r " << s.rank;
      }
}

// On Hopper (Backend::wgmma_tensor_chain) the tensor chain is priced at the rate measured on an
// H100, 1.4× the library's: `auto` takes it on the large shapes it was measured on, past the
// on-chip limits, and nowhere else (not the paper's shapes, not an im2col convolution's thin
// products, not a large batch with narrow layers).
TEST(StrategyCost, HopperTakesTheTensorChainOnTheLargeShapesItWasMeasuredOn) {
  const Roofline hopper = roofline_for(Device::CUDA, true);
  EXPECT_DOUBLE_EQ(hopper.tensor_chain_flops_per_second, 1.4 * hopper.flops_per_second);
  EXPECT_EQ(roofline_for(Device::CUDA, false).tensor_chain_flops_per_second, 0);
  EXPECT_EQ(roofline_for(Device::CPU, true).tensor_chain_flops_per_second, 0);
  for (int64_t m : {4096, 32768})
    for (int64_t k : {4096, 16384})
      for (int64_t percent : {5, 10, 25, 50}) {
        const PredictedLinearShape s = shape(m, k, k, k * percent / 100);
        EXPECT_EQ(choose_predicted_strategy(s, Device::CUDA, true), PredictedStrategy::ChainFused)
            << "M " << m << " K=N " << k << " r " << s.rank;
        const PredictedStrategy generic = choose_predicted_strategy(s, Device::CUDA, false);
        EXPECT_TRUE(generic == PredictedStrategy::Chain || generic == PredictedStrategy::Materialise);
        EXPECT_EQ(choose_predicted_strategy(s, Device::CPU, true), choose_predicted_strategy(s, Device::CPU));
      }
  for (const PredictedLinearShape& s : {shape(100, 784, 500, 78), shape(100, 4096, 4096, 205),
                                        shape(78400, 25, 32, 5), shape(32768, 784, 500, 78),
                                        shape(1024, 4096, 4096, 1024)}) {
    const PredictedStrategy chosen = choose_predicted_strategy(s, Device::CUDA, true);
    EXPECT_EQ(chosen, choose_predicted_strategy(s, Device::CUDA, false)) << "M " << s.m << " K " << s.k;
  }
}

// chain_fused past its on-chip limits is the chain on the 3xTF32 tensor cores: the chain's FLOPs and
// bytes, at the tensor chain's rate once measured (the library's until then, and `auto` leaves it
// out); within the limits, its own on-chip kernels' rate and saved bytes.
TEST(StrategyCost, TensorChainIsTheChainAtItsOwnRate) {
  const PredictedLinearShape large = shape(4096, 4096, 4096, 1024), small = shape(100, 784, 500, 78);
  ASSERT_FALSE(cuda::chain_fused_supported(large));
  ASSERT_TRUE(cuda::chain_fused_supported(small));
  Roofline r = roofline_for(Device::CUDA);
  EXPECT_EQ(r.tensor_chain_flops_per_second, 0);  // a CUDA device without wgmma
  const StrategyCost chain = predicted_step_cost(large, PredictedStrategy::Chain, r);
  StrategyCost fused = predicted_step_cost(large, PredictedStrategy::ChainFused, r);
  EXPECT_DOUBLE_EQ(fused.flops, chain.flops);
  EXPECT_DOUBLE_EQ(fused.bytes, chain.bytes);
  EXPECT_DOUBLE_EQ(fused.seconds, chain.seconds);
  const auto cuda_priced = priced_strategies(large, Device::CUDA);
  EXPECT_EQ(std::count(cuda_priced.begin(), cuda_priced.end(), PredictedStrategy::ChainFused), 0);
  r.tensor_chain_flops_per_second = 2 * r.flops_per_second;
  fused = predicted_step_cost(large, PredictedStrategy::ChainFused, r);
  EXPECT_DOUBLE_EQ(fused.seconds, chain.flops / (2 * r.flops_per_second) + chain.bytes / r.bytes_per_second);
  EXPECT_LT(fused.seconds, chain.seconds);
  // Within the on-chip limits the tensor rate plays no part.
  EXPECT_DOUBLE_EQ(predicted_step_cost(small, PredictedStrategy::ChainFused, r).seconds,
                   predicted_step_cost(small, PredictedStrategy::ChainFused, roofline_for(Device::CUDA)).seconds);
}

// The bench's floor: the larger of FLOPs at peak and bytes at bandwidth, on a chip at least as fast
// as the planning figures, so no measured time can be under it by much.
TEST(StrategyCost, RooflineFloorIsTheLargerOfComputeAndMemoryAtPeak) {
  StrategyCost c;
  c.flops = 67e12;  // one second at the GPU's float32 peak
  c.bytes = 2.4e12; // half a second at its bandwidth
  EXPECT_DOUBLE_EQ(roofline_floor_seconds(c, peak_roofline(Device::CUDA)), 1.0);
  c.bytes = 9.6e12;  // two seconds
  EXPECT_DOUBLE_EQ(roofline_floor_seconds(c, peak_roofline(Device::CUDA)), 2.0);
  for (Device device : {Device::CPU, Device::CUDA}) {
    const Roofline peak = peak_roofline(device), plan = roofline_for(device);
    EXPECT_GE(peak.flops_per_second, plan.flops_per_second);
    EXPECT_GE(peak.bytes_per_second, plan.bytes_per_second);
    const PredictedLinearShape s = shape(4096, 4096, 4096, 204);
    for (PredictedStrategy strategy : {PredictedStrategy::Chain, PredictedStrategy::ChainFused})
      EXPECT_LE(roofline_floor_seconds(predicted_step_cost(s, strategy, peak), peak),
                predicted_step_cost(s, strategy, plan).seconds);
  }
}

}  // namespace
}  // namespace uv
