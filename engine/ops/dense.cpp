#include "engine/core/error.h"
#include "engine/backend/backend_ops.h"
#include "engine/ops/ops.h"
#include "kernels/predicted_linear_algorithm.h"
#include "kernels/relu_mask.h"

namespace uv {

void Op::set_gradient_mode(int param, GradientMode mode) {
  for (size_t i = 0; i < gradient_params_.size(); ++i)
    if (gradient_params_[i] == param) {
      gradient_modes_.resize(gradient_params_.size(), GradientMode::Overwrite);
      gradient_modes_[i] = mode;
      return;
    }
  UV_CHECK(false, "op " << name_ << " does not write the gradient of parameter " << param);
}

GradientMode Op::gradient_mode(int param) const {
  for (size_t i = 0; i < gradient_params_.size(); ++i)
    if (gradient_params_[i] == param)
      return i < gradient_modes_.size() ? gradient_modes_[i] : GradientMode::Overwrite;
  UV_CHECK(false, "op " << name_ << " does not write the gradient of parameter " << param);
}

Dense::Dense(std::string name, ParameterStore& store, int64_t in, int64_t out, float init_scale,
             float max_col_norm)
    : Op(std::move(name), in, out) {
  ParamSpec w;
  w.name = name_ + ".W";
  w.shape = {in, out};
  w.init = ParamInit::Uniform;
  w.init_scale = init_scale;
  w.weight_decay = true;
  if (max_col_norm > 0.f) {
    w.max_col_norm = true;
    w.norm_rows = in;
    w.norm_cols = out;
  }
  weight_ = store.add(w);
  ParamSpec b;
  b.name = name_ + ".b";
  b.shape = {out};
  bias_ = store.add(b);
  gradient_params_ = {weight_, bias_};
}


namespace {
// A ReLU's mask for `max_batch` rows of `features`, kept from forward to backward: uint32 words
// (kernels/relu_mask.h), planned as floats.
BufferRequest relu_mask_request(const char* name, int64_t max_batch, int64_t features) {
  return {name, relu_mask_words(max_batch * features), BufferLife::Saved};
}
}  // namespace

void FoldedActivation::add_buffers(std::vector<BufferRequest>& requests, int64_t max_batch, int64_t features) const {
  if (act_ == Activation::ReLU) requests.push_back(relu_mask_request("relu_mask", max_batch, features));
}

void FoldedActivation::forward(OpContext& ctx, const float* bias, int64_t features, size_t mask_index) const {
  uint32_t* mask = act_ == Activation::ReLU ? reinterpret_cast<uint32_t*>(ctx.buffers.at(mask_index)) : nullptr;
  ctx.backend->bias_activation_forward(act_, ctx.y, bias, ctx.m, features, mask);
}

void FoldedActivation::backward(OpContext& ctx, float* dbias, GradientMode mode, int64_t features,
                                size_t mask_index) const {
  const uint32_t* mask =
      act_ == Activation::ReLU ? reinterpret_cast<const uint32_t*>(ctx.buffers.at(mask_index)) : nullptr;
  ctx.backend->activation_backward_bias(act_, ctx.y, mask, ctx.dy, ctx.m, features, dbias, mode);
}

std::vector<BufferRequest> Dense::buffers(int64_t max_batch) const {
  std::vector<BufferRequest> requests;
  folded_.add_buffers(requests, max_batch, out_features_);
  return requests;
}

void Dense::forward(OpContext& ctx) {
  BackendOps ops{*ctx.backend};
  const float* bias = ctx.params->at(bias_).value;
  if (folded_.fuses_product(ctx, out_features_, in_features_)) {  // one launch for all of it
    folded_.forward_product(ctx, out_features_, in_features_, ctx.x, in_features_, ctx.params->at(weight_).value,
                            out_features_, bias);
    return;
  }
  algorithm::dense_forward(ops, ctx.x, ctx.params->at(weight_).value, folded_.active() ? nullptr : bias, ctx.y,
                           ctx.m, in_features_, out_features_);
  if (folded_.active()) folded_.forward(ctx, bias, out_features_, 0);
}

void Dense::backward(OpContext& ctx) {
  BackendOps ops{*ctx.backend};
  const Parameter& w = ctx.params->at(weight_);
  float* dbias = ctx.params->at(bias_).grad;
  if (folded_.active()) {
    folded_.backward(ctx, dbias, gradient_mode(bias_), out_features_, 0);
    dbias = nullptr;
  }
  algorithm::dense_backward(ops, ctx.x, w.value, ctx.dy, ctx.dx, w.grad, dbias, ctx.m, in_features_,
                            out_features_, gradient_mode(weight_), gradient_mode(bias_));
}

TiedDenseDecoder::TiedDenseDecoder(std::string name, ParameterStore& store, const Dense& encoder)
    : Op(std::move(name), encoder.out_features(), encoder.in_features()), encoder_(encoder) {
  ParamSpec c;
  c.name = name_ + ".b";
  c.shape = {encoder.in_features()};
  bias_ = store.add(c);
  gradient_params_ = {encoder.weight(), bias_};
}

// The encoder maps K = out_features_ inputs to N = in_features_ codes; this op maps them back.
void TiedDenseDecoder::forward(OpContext& ctx) {
  BackendOps ops{*ctx.backend};
  algorithm::tied_dense_decoder_forward(ops, ctx.x, ctx.params->at(encoder_.weight()).value,
                                        ctx.params->at(bias_).value, ctx.y, ctx.m, out_features_,
                                        in_features_);
}

void TiedDenseDecoder::backward(OpContext& ctx) {
  BackendOps ops{*ctx.backend};
  const Parameter& w = ctx.params->at(encoder_.weight());
  algorithm::tied_dense_decoder_backward(ops, ctx.x, w.value, ctx.dy, ctx.dx, w.grad,
                                         ctx.params->at(bias_).grad, ctx.m, out_features_,
                                         in_features_, gradient_mode(encoder_.weight()),
                                         gradient_mode(bias_));
}

ActivationOp::ActivationOp(std::string name, int64_t features, Activation activation)
    : Op(std::move(name), features, features), activation_(activation) {}

std::vector<BufferRequest> ActivationOp::buffers(int64_t max_batch) const {
  if (activation_ != Activation::ReLU) return {};
  return {relu_mask_request("mask", max_batch, out_features_)};
}

void ActivationOp::forward(OpContext& ctx) {
  const int64_t n = ctx.m * out_features_;
  if (activation_ == Activation::ReLU)
    ctx.backend->relu_forward_mask(ctx.x, ctx.y, reinterpret_cast<uint32_t*>(ctx.buffers.at(0)), n);
  else
    ctx.backend->activation_forward(activation_, ctx.x, ctx.y, n);
}

void ActivationOp::backward(OpContext& ctx) {
  if (!ctx.dx) return;
  const int64_t n = ctx.m * out_features_;
  if (activation_ == Activation::ReLU)
    ctx.backend->relu_backward_mask(reinterpret_cast<const uint32_t*>(ctx.buffers.at(0)), ctx.dy, ctx.dx, n);
  else
    ctx.backend->activation_backward(activation_, ctx.y, ctx.dy, ctx.dx, n);
}

}  // namespace uv
