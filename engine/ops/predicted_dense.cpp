#include "engine/core/error.h"
#include "engine/ops/ops.h"

namespace uv {

FactoredParamIds add_factored_params(ParameterStore& store, const std::string& name, int64_t k, int64_t n,
                                     int64_t rank, int64_t columns, bool learn_u, float u_init_scale,
                                     float v_init_scale, float max_col_norm) {
  FactoredParamIds ids;
  ParamSpec u;
  u.name = name + ".U";
  u.shape = {k, columns * rank};
  if (learn_u) {
    u.kind = ParamKind::Learned;
    u.init = ParamInit::Uniform;
    u.init_scale = u_init_scale;
    u.weight_decay = true;
  } else {
    u.kind = ParamKind::Fixed;
    u.init = ParamInit::External;
  }
  ids.u = store.add(u);
  const int64_t nc = n / columns;
  ParamSpec v;
  v.name = name + ".V";
  v.shape = {columns, rank, nc};
  v.init = ParamInit::Uniform;
  v.init_scale = v_init_scale;
  v.weight_decay = true;
  if (max_col_norm > 0.f) {
    v.max_col_norm = true;
    v.norm_count = columns;
    v.norm_rows = rank;
    v.norm_cols = nc;
  }
  ids.v = store.add(v);
  return ids;
}

PredictedDense::PredictedDense(std::string name, ParameterStore& store,
                               const PredictedDenseConfig& config)
    : Op(std::move(name), config.in, config.out), config_(config) {
  UV_REQUIRE(config.columns >= 1, name_ << ": columns must be ≥ 1, got " << config.columns);
  UV_REQUIRE(config.out % config.columns == 0,
             name_ << ": units (" << config.out << ") must be divisible by columns (" << config.columns << ")");
  UV_REQUIRE(config.rank >= 1 && config.rank <= config.in,
             name_ << ": rank n_alpha = " << config.rank << " must be in [1, " << config.in
                   << "] (the layer's input size)");
  const FactoredParamIds ids = add_factored_params(store, name_, config.in, config.out, config.rank, config.columns,
                                                   config.learn_u, config.u_init_scale, config.v_init_scale,
                                                   config.max_col_norm);
  u_ = ids.u;
  v_ = ids.v;
  ParamSpec b;
  b.name = name_ + ".b";
  b.shape = {config.out};
  bias_ = store.add(b);
  gradient_params_ = {v_, bias_};
  if (config.learn_u) gradient_params_.push_back(u_);
}

PredictedLinearShape PredictedDense::shape(int64_t m) const {
  PredictedLinearShape s;
  s.m = m;
  s.k = config_.in;
  s.n = config_.out;
  s.rank = config_.rank;
  s.columns = config_.columns;
  return s;
}

std::vector<BufferRequest> PredictedDense::buffers(int64_t max_batch) const {
  const PredictedLinearShape s = shape(max_batch);
  const int64_t saved = predicted_linear_saved_floats(s, config_.strategy),
                scratch = predicted_linear_backward_scratch_floats(s, config_.strategy);
  std::vector<BufferRequest> requests;
  switch (config_.strategy) {
    case PredictedStrategy::Materialise:
      requests = {{"W", saved, BufferLife::Saved, BufferCategory::MaterialisedWeight},
                  {"dW", scratch, BufferLife::BackwardScratch, BufferCategory::MaterialisedWeight}};
      break;
    case PredictedStrategy::OnTheFlyW:  // nothing saved (an empty buffer keeps the positions); T in backward
      requests = {{"none", saved, BufferLife::Saved}, {"T", scratch, BufferLife::BackwardScratch}};
      break;
    default:
      requests = {{"T", saved, BufferLife::Saved}, {"dT", scratch, BufferLife::BackwardScratch}};
  }
  folded_.add_buffers(requests, max_batch, config_.out);  // buffer 2
  return requests;
}

bool PredictedDense::backward_reads_input() const {
  return config_.learn_u || config_.strategy == PredictedStrategy::Materialise ||
         config_.strategy == PredictedStrategy::OnTheFlyW;
}

void PredictedDense::forward(OpContext& ctx) {
  PredictedLinearForwardArgs args;
  args.shape = shape(ctx.m);
  args.strategy = config_.strategy;
  args.x = ctx.x;
  args.u = ctx.params->at(u_).value;
  args.v = ctx.params->at(v_).value;
  const float* bias = ctx.params->at(bias_).value;
  args.bias = folded_.active() ? nullptr : bias;
  args.saved = ctx.buffers.at(0);
  args.y = ctx.y;
  const PredictedLinearShape& s = args.shape;
  if (config_.strategy == PredictedStrategy::Chain && s.columns == 1 && folded_.fuses_product(ctx, s.n, s.rank)) {
    // The chain's two products, the second with the bias and activation in its kernel:
    // T (m × r, rows t_ld apart as backward reads them) = X·U, kept for backward, then Y = act(T·V + b).
    ctx.backend->gemm(false, false, s.m, s.rank, s.k, 1.f, args.x, s.k, args.u, s.rank, 0.f, args.saved, s.t_ld());
    folded_.forward_product(ctx, s.n, s.rank, args.saved, s.t_ld(), args.v, s.n, bias);
    return;
  }
  ctx.backend->predicted_linear_forward(args);
  if (folded_.active()) folded_.forward(ctx, bias, config_.out, 2);
}

void PredictedDense::backward(OpContext& ctx) {
  PredictedLinearBackwardArgs args;
  args.shape = shape(ctx.m);
  args.strategy = config_.strategy;
  // The graph may have reused X's memory already where backward does not read it: no pointer then.
  args.x = backward_reads_input() ? ctx.x : nullptr;
  args.u = ctx.params->at(u_).value;
  args.v = ctx.params->at(v_).value;
  args.saved = ctx.buffers.at(0);
  args.dy = ctx.dy;
  args.scratch = ctx.buffers.at(1);
  args.dx = ctx.dx;
  args.dv = ctx.params->at(v_).grad;
  args.dbias = ctx.params->at(bias_).grad;
  if (folded_.active()) {  // dY·act' in place, and db with it
    folded_.backward(ctx, args.dbias, gradient_mode(bias_), config_.out, 2);
    args.dbias = nullptr;
  }
  args.dv_mode = gradient_mode(v_);
  args.dbias_mode = gradient_mode(bias_);
  if (config_.learn_u) {
    args.du = ctx.params->at(u_).grad;
    args.du_mode = gradient_mode(u_);
  }
  ctx.backend->predicted_linear_backward(args);
}

ProjectedInputDense::ProjectedInputDense(const PredictedDense& layer)
    : Op(layer.name(), layer.config().columns * layer.config().rank, layer.out_features()), layer_(layer) {
  UV_REQUIRE(!layer.config().learn_u, name_ << ": a LowRank layer learns U, so X·U cannot be computed once");
  gradient_params_ = {layer.v(), layer.bias()};
}

void ProjectedInputDense::forward(OpContext& ctx) {
  const PredictedDenseConfig& c = layer_.config();
  const int64_t r = c.rank, jr = c.columns * r, nc = c.out / c.columns;
  const float* v = ctx.params->at(layer_.v()).value;  // (J, r, N/J)
  const float* bias = ctx.params->at(layer_.bias()).value;
  const FoldedActivation& folded = layer_.folded_activation();
  if (c.columns == 1 && folded.fuses_product(ctx, c.out, r)) {  // Y = act(T·V + b), one launch
    folded.forward_product(ctx, c.out, r, ctx.x, jr, v, nc, bias);
    return;
  }
  for (int64_t j = 0; j < c.columns; ++j)  // Y[:, block j] (m × N/J) = T[:, block j] (m × r)·V_j
    ctx.backend->gemm(false, false, ctx.m, nc, r, 1.f, ctx.x + j * r, jr, v + j * r * nc, nc, 0.f,
                      ctx.y + j * nc, c.out);
  if (folded.active())
    folded.forward(ctx, bias, c.out, 0);
  else
    ctx.backend->bias_add_rows(ctx.y, bias, ctx.m, c.out);
}

std::vector<BufferRequest> ProjectedInputDense::buffers(int64_t max_batch) const {
  std::vector<BufferRequest> requests;
  layer_.folded_activation().add_buffers(requests, max_batch, out_features_);
  return requests;
}

void ProjectedInputDense::backward(OpContext& ctx) {
  UV_CHECK(ctx.dx == nullptr, name_ << ": a projected input layer must come first (it has no dX)");
  const PredictedDenseConfig& c = layer_.config();
  const int64_t r = c.rank, jr = c.columns * r, nc = c.out / c.columns;
  const FoldedActivation& folded = layer_.folded_activation();
  if (folded.active()) folded.backward(ctx, ctx.params->at(layer_.bias()).grad, gradient_mode(layer_.bias()), c.out, 0);
  const float beta = gradient_mode(layer_.v()) == GradientMode::Accumulate ? 1.f : 0.f;
  float* dv = ctx.params->at(layer_.v()).grad;
  for (int64_t j = 0; j < c.columns; ++j)  // dV_j (r × N/J) = T_jᵀ·dY_j
    ctx.backend->gemm(true, false, r, nc, ctx.m, 1.f, ctx.x + j * r, jr, ctx.dy + j * nc, c.out, beta,
                      dv + j * r * nc, nc);
  if (!folded.active())
    ctx.backend->column_sums(ctx.dy, ctx.m, c.out, ctx.params->at(layer_.bias()).grad, gradient_mode(layer_.bias()));
}

TiedDecoder::TiedDecoder(std::string name, ParameterStore& store, const PredictedDense& encoder)
    : Op(std::move(name), encoder.out_features(), encoder.in_features()), encoder_(encoder) {
  ParamSpec c;
  c.name = name_ + ".b";
  c.shape = {encoder.in_features()};
  bias_ = store.add(c);
  gradient_params_ = {encoder.v(), bias_};
  if (encoder.config().learn_u) gradient_params_.push_back(encoder.u());
}

std::vector<BufferRequest> TiedDecoder::buffers(int64_t max_batch) const {
  const int64_t floats = max_batch * encoder_.shape(max_batch).t_cols();
  return {{"S", floats, BufferLife::Saved}, {"dS", floats, BufferLife::BackwardScratch}};
}

void TiedDecoder::forward(OpContext& ctx) {
  const ParameterStore& p = *ctx.params;
  ctx.backend->tied_decoder_forward(encoder_.shape(ctx.m), ctx.x, p.at(encoder_.u()).value,
                                    p.at(encoder_.v()).value, p.at(bias_).value, ctx.buffers.at(0),
                                    ctx.y);
}

void TiedDecoder::backward(OpContext& ctx) {
  ParameterStore& p = *ctx.params;
  const bool learn_u = encoder_.config().learn_u;
  ctx.backend->tied_decoder_backward(
      encoder_.shape(ctx.m), ctx.x, p.at(encoder_.u()).value, p.at(encoder_.v()).value,
      ctx.buffers.at(0), ctx.dy, ctx.buffers.at(1), ctx.dx, p.at(encoder_.v()).grad,
      p.at(bias_).grad, learn_u ? p.at(encoder_.u()).grad : nullptr, gradient_mode(encoder_.v()),
      gradient_mode(bias_), learn_u ? gradient_mode(encoder_.u()) : GradientMode::Overwrite);
}

}  // namespace uv
