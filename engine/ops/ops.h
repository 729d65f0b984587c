// Engine-level ops: shape checks and parameter bookkeeping here; arithmetic in the backend.
#pragma once

#include <memory>

#include "engine/graph/op.h"

namespace uv {

// An activation folded into a fully connected op (Op::fold_activation): Backend::bias_activation_*
// around the op's products, which then leave the bias out. A ReLU keeps its mask in a buffer planned
// after the op's own; σ and tanh read the op's output in backward.
class FoldedActivation {
 public:
  Activation act() const { return act_; }
  bool active() const { return act_ != Activation::Identity; }
  // Once per op, before any graph holding it is finalized (a graph plans the op's mask buffer and
  // how long its output lives from what it sees then).
  bool set(Activation act) {
    UV_CHECK(!active(), "an op folds one activation, once");
    act_ = act;
    return true;
  }
  bool reads_output() const { return act_ == Activation::Sigmoid || act_ == Activation::Tanh; }
  std::string type_suffix() const { return active() ? std::string("+") + activation_name(act_) : ""; }
  void add_buffers(std::vector<BufferRequest>& requests, int64_t max_batch, int64_t features) const;
  // y (m × features) = act(y + bias); the mask is buffer `mask_index` of the op.
  void forward(OpContext& ctx, const float* bias, int64_t features, size_t mask_index) const;
  // Whether the backend runs y = act(a·b + bias) for this product (m × n, depth k) in one launch
  // (Backend::fuses_bias_activation): the op then calls forward_product instead of its product,
  // its bias and forward(). Without a folded activation too (act_ is then the identity): the bias
  // alone is a launch.
  bool fuses_product(const OpContext& ctx, int64_t n, int64_t k) const {
    return ctx.backend->fuses_bias_activation(ctx.m, n, k, act_);
  }
  void forward_product(OpContext& ctx, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                       const float* bias) const {
    ctx.backend->gemm_bias_activation(ctx.m, n, k, a, lda, b, ldb, bias, act_, ctx.y, n);
  }
  // dy ← dy·act' in place; dbias (may be null) = its column sums per `mode`.
  void backward(OpContext& ctx, float* dbias, GradientMode mode, int64_t features, size_t mask_index) const;

 private:
  Activation act_ = Activation::Identity;
};

// Y = X·W + b, W (K×N) learned.
class Dense final : public Op {
 public:
  Dense(std::string name, ParameterStore& store, int64_t in, int64_t out, float init_scale,
        float max_col_norm);
  std::string type() const override { return "dense" + folded_.type_suffix(); }
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_input() const override { return true; }
  bool backward_reads_output() const override { return folded_.reads_output(); }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;
  bool fold_activation(Activation act) override { return folded_.set(act); }
  int weight() const { return weight_; }
  int bias() const { return bias_; }

 private:
  int weight_ = -1;  // (K, N)
  int bias_ = -1;    // (N)
  FoldedActivation folded_;
};

// Tied decoder of a Dense encoder: Z = H·Wᵀ + c with W (K×N) the encoder's; own bias c (K). The
// autoencoder behind the `ae` dictionary is Dense → sigmoid → TiedDenseDecoder → sigmoid.
class TiedDenseDecoder final : public Op {
 public:
  TiedDenseDecoder(std::string name, ParameterStore& store, const Dense& encoder);
  std::string type() const override { return "tied_dense_decoder"; }
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;
  int bias() const { return bias_; }

 private:
  const Dense& encoder_;
  int bias_ = -1;  // (K)
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

// The parameters of W = U·V shared by the predicted fully connected and conv layers: U (K, J·r),
// fixed (filled by a dictionary) unless learn_u (LowRank); V (J, r, N/J) ~ Uniform(±v_init_scale),
// its columns bounded in norm when max_col_norm > 0.
struct FactoredParamIds {
  int u = -1, v = -1;
};
FactoredParamIds add_factored_params(ParameterStore& store, const std::string& name, int64_t k, int64_t n,
                                     int64_t rank, int64_t columns, bool learn_u, float u_init_scale,
                                     float v_init_scale, float max_col_norm);

class PredictedDense final : public Op {
 public:
  PredictedDense(std::string name, ParameterStore& store, const PredictedDenseConfig& config);
  std::string type() const override {
    return (config_.learn_u ? "lowrank" : "predicted_dense") + folded_.type_suffix();
  }
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_output() const override { return folded_.reads_output(); }
  bool fold_activation(Activation act) override { return folded_.set(act); }
  const FoldedActivation& folded_activation() const { return folded_; }
  // Only materialise, onthefly_w and LowRank's dU read X in backward; the chain strategies read the
  // T = X·U they saved.
  bool backward_reads_input() const override;
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

  const PredictedDenseConfig& config() const { return config_; }
  // Before a graph is finalized (Network resolves `auto` and prices the materialise alternative); a
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
  FoldedActivation folded_;
};

// Feature-map geometry of a batch row (NHWC): rows × cols × channels.
struct ImageShape {
  int64_t h = 1, w = 1, c = 1;
  int64_t features() const { return h * w * c; }
};

struct Conv2dConfig {
  ImageShape input;
  int64_t filters = 0;  // C_out
  int64_t kernel = 1;   // p
  int64_t stride = 1;
  int64_t pad = 0;      // −1: "same"
  float init_scale = 0.1f;  // W (dense) or V (predicted)
  float max_col_norm = 0.f;
  // predicted only: W (p·p·C_in × C_out) = U·V, U fixed unless learn_u (LowRank)
  int64_t rank = 0, columns = 1;
  PredictedStrategy strategy = PredictedStrategy::Chain;
  bool learn_u = false;
  float u_init_scale = 0.1f;
  Conv2dShape shape(int64_t batch) const;
  ImageShape output() const;
};

// Y = conv(X, W) + b, W (p·p·C_in, C_out) learned: im2col + GEMM, or a library (Backend::conv2d_*).
// PredictedConv2d: W = U·V with U a fixed dictionary over (row, col, channel) of the filter and V
// learned; the chain strategy is conv with the n_α dictionary filters, then a 1×1 conv with V.
class Conv2d final : public Op {
 public:
  // `predicted` selects PredictedConv2d's parameters; the backend plans its own buffers.
  Conv2d(std::string name, ParameterStore& store, const Backend& backend, const Conv2dConfig& config,
         bool predicted);
  std::string type() const override;
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

  const Conv2dConfig& config() const { return config_; }
  bool predicted() const { return predicted_; }
  void set_strategy(PredictedStrategy strategy) { config_.strategy = strategy; }
  Conv2dLayout layout(int64_t batch) const;
  int weight() const { return weight_; }  // dense: W
  int u() const { return u_; }
  int v() const { return v_; }
  int bias() const { return bias_; }

 private:
  const Backend& backend_;
  Conv2dConfig config_;
  bool predicted_;
  int weight_ = -1, u_ = -1, v_ = -1, bias_ = -1;
};

class MaxPool2d final : public Op {
 public:
  MaxPool2d(std::string name, ImageShape input, int64_t size, int64_t stride);
  std::string type() const override { return "maxpool2d"; }
  bool backward_reads_input() const override { return true; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;
  ImageShape output() const;

 private:
  ImageShape input_;
  int64_t size_, stride_;
};

class ActivationOp final : public Op {
 public:
  ActivationOp(std::string name, int64_t features, Activation activation);
  std::string type() const override { return activation_name(activation_); }
  // ReLU keeps a bit mask for backward, not its output (1/32 of the bytes): the output then dies
  // once the next op has read it, unless that op's backward reads its input.
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_output() const override { return activation_ != Activation::ReLU; }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

 private:
  Activation activation_;
};

// A predicted first layer that reads T = X·U (m × J·r) in place of X. U is fixed and so is the
// data set, so the trainer computes T for every example once (Network::project_inputs) and
// batches T instead of X: the step skips X·U, its largest GEMM, and gathers J·r floats per example
// instead of K. Forward Y = T·V + b column by column, backward dV = Tᵀ·dY and db; no dX (nothing
// is upstream). Shares the layer's V and b, so the layer's own op serves pretraining unchanged.
class ProjectedInputDense final : public Op {
 public:
  explicit ProjectedInputDense(const PredictedDense& layer);
  // The layer's folded activation, if any, folded here too.
  std::string type() const override { return "projected_input" + layer_.folded_activation().type_suffix(); }
  std::vector<BufferRequest> buffers(int64_t max_batch) const override;
  bool backward_reads_input() const override { return true; }
  bool backward_reads_output() const override { return layer_.folded_activation().reads_output(); }
  void forward(OpContext& ctx) override;
  void backward(OpContext& ctx) override;

 private:
  const PredictedDense& layer_;
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
