#include "engine/core/error.h"
#include "engine/ops/ops.h"

namespace uv {

Conv2dShape Conv2dConfig::shape(int64_t batch) const {
  return make_conv2d_shape(batch, input.h, input.w, input.c, filters, kernel, stride, pad);
}

ImageShape Conv2dConfig::output() const {
  const Conv2dShape s = shape(1);
  return {s.out_h, s.out_w, s.out_c};
}

Conv2d::Conv2d(std::string name, ParameterStore& store, const Backend& backend, const Conv2dConfig& config,
               bool predicted)
    : Op(std::move(name), config.input.features(), config.output().features()),
      backend_(backend),
      config_(config),
      predicted_(predicted) {
  const Conv2dShape s = config.shape(1);
  const int64_t patch = s.patch();
  if (!predicted) {
    ParamSpec w;
    w.name = name_ + ".W";
    w.shape = {patch, config.filters};  // rows in (filter row, filter col, channel) order
    w.init = ParamInit::Uniform;
    w.init_scale = config.init_scale;
    w.weight_decay = true;
    if (config.max_col_norm > 0.f) {
      w.max_col_norm = true;
      w.norm_count = 1;
      w.norm_rows = patch;
      w.norm_cols = config.filters;
    }
    weight_ = store.add(w);
  } else {
    UV_REQUIRE(config.columns >= 1 && config.filters % config.columns == 0,
               name_ << ": filters (" << config.filters << ") must be divisible by columns (" << config.columns << ")");
    UV_REQUIRE(config.rank >= 1 && config.rank <= patch,
               name_ << ": rank n_alpha = " << config.rank << " must be in [1, " << patch << "] (p*p*C_in)");
    const FactoredParamIds ids = add_factored_params(store, name_, patch, config.filters, config.rank, config.columns,
                                                     config.learn_u, config.u_init_scale, config.init_scale,
                                                     config.max_col_norm);
    u_ = ids.u;
    v_ = ids.v;
  }
  ParamSpec b;
  b.name = name_ + ".b";
  b.shape = {config.filters};
  bias_ = store.add(b);
  gradient_params_ = predicted ? std::vector<int>{v_, bias_} : std::vector<int>{weight_, bias_};
  if (predicted && config.learn_u) gradient_params_.push_back(u_);
}

std::string Conv2d::type() const {
  if (!predicted_) return "conv2d";
  return config_.learn_u ? "lowrank_conv2d" : "predicted_conv2d";
}

Conv2dLayout Conv2d::layout(int64_t batch) const {
  Conv2dLayout l;
  l.conv = config_.shape(batch);
  l.predicted = predicted_;
  l.strategy = config_.strategy;
  l.rank = config_.rank;
  l.columns = config_.columns;
  l.learn_u = config_.learn_u;
  return l;
}

std::vector<BufferRequest> Conv2d::buffers(int64_t max_batch) const {
  const Conv2dBuffers b = backend_.conv2d_buffers(layout(max_batch));
  const bool materialised = predicted_ && config_.strategy == PredictedStrategy::Materialise;
  const BufferCategory weights = materialised ? BufferCategory::MaterialisedWeight : BufferCategory::Activation;
  // Order is the index into OpContext::buffers used below. The filter copies (cuDNN's KRSC Wᵀ or
  // Uᵀ) count as activations: they are op scratch, not a W = U·V the strategy chose to form.
  return {{materialised ? "W" : "T", b.saved, BufferLife::Saved, weights},
          {"cols", b.forward_cols, BufferLife::ForwardScratch, BufferCategory::Activation},
          {"cols.backward", b.backward_cols, BufferLife::BackwardScratch, BufferCategory::Activation},
          {"dcols", b.dcols, BufferLife::BackwardScratch, BufferCategory::Activation},
          {materialised ? "dW" : "dT", b.backward_scratch, BufferLife::BackwardScratch, weights},
          {"filter", b.forward_filter, BufferLife::ForwardScratch, BufferCategory::Activation},
          {"filter.backward", b.backward_filter, BufferLife::BackwardScratch, BufferCategory::Activation}};
}

void Conv2d::forward(OpContext& ctx) {
  const ParameterStore& p = *ctx.params;
  Conv2dForwardArgs a;
  a.conv = config_.shape(ctx.m);
  a.predicted = predicted_;
  a.strategy = config_.strategy;
  a.rank = config_.rank;
  a.columns = config_.columns;
  a.x = ctx.x;
  if (predicted_) {
    a.u = p.at(u_).value;
    a.v = p.at(v_).value;
  } else {
    a.w = p.at(weight_).value;
  }
  a.bias = p.at(bias_).value;
  a.saved = ctx.buffers.at(0);
  a.cols = ctx.buffers.at(1);
  a.filter = ctx.buffers.at(5);
  a.y = ctx.y;
  ctx.backend->conv2d_forward(a);
}

void Conv2d::backward(OpContext& ctx) {
  ParameterStore& p = *ctx.params;
  Conv2dBackwardArgs a;
  a.conv = config_.shape(ctx.m);
  a.predicted = predicted_;
  a.strategy = config_.strategy;
  a.rank = config_.rank;
  a.columns = config_.columns;
  a.x = ctx.x;
  a.dy = ctx.dy;
  a.saved = ctx.buffers.at(0);
  a.cols = ctx.buffers.at(2);
  a.dcols = ctx.buffers.at(3);
  a.scratch = ctx.buffers.at(4);
  a.filter = ctx.buffers.at(6);
  a.dx = ctx.dx;
  if (predicted_) {
    a.u = p.at(u_).value;
    a.v = p.at(v_).value;
    a.dv = p.at(v_).grad;
    a.weight_mode = gradient_mode(v_);
    if (config_.learn_u) {
      a.du = p.at(u_).grad;
      a.du_mode = gradient_mode(u_);
    }
  } else {
    a.w = p.at(weight_).value;
    a.dw = p.at(weight_).grad;
    a.weight_mode = gradient_mode(weight_);
  }
  a.dbias = p.at(bias_).grad;
  a.dbias_mode = gradient_mode(bias_);
  ctx.backend->conv2d_backward(a);
}

MaxPool2d::MaxPool2d(std::string name, ImageShape input, int64_t size, int64_t stride)
    : Op(std::move(name), input.features(), 0), input_(input), size_(size), stride_(stride) {
  out_features_ = output().features();
}

ImageShape MaxPool2d::output() const {
  const Pool2dShape s = make_pool2d_shape(1, input_.h, input_.w, input_.c, size_, stride_);
  return {s.out_h, s.out_w, s.channels};
}

void MaxPool2d::forward(OpContext& ctx) {
  ctx.backend->maxpool2d_forward(make_pool2d_shape(ctx.m, input_.h, input_.w, input_.c, size_, stride_), ctx.x,
                                 ctx.y);
}

void MaxPool2d::backward(OpContext& ctx) {
  if (ctx.dx)
    ctx.backend->maxpool2d_backward(make_pool2d_shape(ctx.m, input_.h, input_.w, input_.c, size_, stride_),
                                    ctx.x, ctx.dy, ctx.dx);
}

}  // namespace uv
