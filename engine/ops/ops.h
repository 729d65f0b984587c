// Engine-level ops: shape checks and parameter bookkeeping here; arithmetic in the backend.
#pragma once

#include <memory>

#include "engine/graph/op.h"

namespace uv {

// Y = X·W + b, W (K×N) learned.
class Dense final : public Op {
 public:
  Dense(std::string name, ParameterStore& store, int64_t in, int64_t out, float init_scale,
        float max_col_norm);
  std::string type() const override { return "dense"; }
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;
  int weight() const { return weight_; }
  int bias() const { return bias_; }

 private:
  int weight_ = -1;  // (K, N)
  int bias_ = -1;    // (N)
};

// Y = X·U·V + b with U fixed (a dictionary) and V learned, J columns; or LowRank, where U is learned.
struct PredictedDenseConfig {
  int64_t in = 0, out = 0;
  int64_t rank = 0;      // n_α per column
  int64_t columns = 1;   // J
  PredictedStrategy strategy = PredictedStrategy::Chain;
  bool learn_u = false;  // LowRank baseline
  float v_init_scale = 0.1f;
  float u_init_scale = 0.1f;  // LowRank only; dictionaries write U themselves
  float max_col_norm = 0.f;   // 0: no constraint
};

class PredictedDense final : public Op {
 public:
  PredictedDense(std::string name, ParameterStore& store, const PredictedDenseConfig& config);
  std::string type() const override { return config_.learn_u ? "lowrank" : "predicted_dense"; }
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

  const PredictedDenseConfig& config() const { return config_; }
  // Before a graph is finalized (Mlp resolves `auto` and prices the materialise alternative); a
  // finalized graph keeps the buffers it planned for the strategy it saw.
  void set_strategy(PredictedStrategy strategy) { config_.strategy = strategy; }
  PredictedLinearShape shape(int64_t m) const;
  int u() const { return u_; }
  int v() const { return v_; }
  int bias() const { return bias_; }

 private:
  PredictedDenseConfig config_;
  int u_ = -1;     // (K, J·r)
  int v_ = -1;     // (J, r, N/J)
  int bias_ = -1;  // (N)
};

class ActivationOp final : public Op {
 public:
  ActivationOp(std::string name, int64_t features, Activation activation);
  std::string type() const override { return activation_name(activation_); }
  bool backward_reads_output() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

 private:
  Activation activation_;
};

// Tied decoder of a predicted (or LowRank) encoder for autoencoder pretraining:
// Z = H·Wᵀ + c with W = U·V of the encoder; own bias c (K).
class TiedDecoder final : public Op {
 public:
  TiedDecoder(std::string name, ParameterStore& store, const PredictedDense& encoder);
  std::string type() const override { return "tied_decoder"; }
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

 private:
  const PredictedDense& encoder_;
  int bias_ = -1;  // (K)
};

}  // namespace uv
