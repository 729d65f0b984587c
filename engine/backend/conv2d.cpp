// The default convolution of every backend: kernels/conv2d_algorithm.h over the backend itself;
// and the host arithmetic of the CUDA backend's cuDNN route (kernels/cudnn_conv_shape.h), here so
// that every build, the CPU-only one included, compiles and tests it.
#include <algorithm>
#include <limits>

#include "engine/backend/backend.h"
#include "engine/backend/backend_ops.h"
#include "engine/core/error.h"
#include "kernels/conv2d_algorithm.h"
#include "kernels/cudnn_conv_shape.h"

namespace uv {

Conv2dBuffers conv2d_im2col_buffers(const Conv2dLayout& l) {
  Conv2dBuffers b;
  const int64_t cols = l.conv.rows() * l.conv.patch();
  b.forward_cols = cols;
  b.backward_cols = conv2d_backward_reads_cols(l.predicted, l.strategy, l.learn_u) ? cols : 0;
  b.dcols = cols;
  if (l.predicted) {
    const PredictedLinearShape s = l.linear();
    b.saved = predicted_linear_saved_floats(s, l.strategy);
    b.backward_scratch = predicted_linear_backward_scratch_floats(s, l.strategy);
  }
  return b;
}

void Backend::conv2d_forward(const Conv2dForwardArgs& args) {
  BackendOps ops{*this};
  algorithm::conv2d_forward(ops, args);
}

void Backend::conv2d_backward(const Conv2dBackwardArgs& args) {
  BackendOps ops{*this};
  algorithm::conv2d_backward(ops, args);
}

Conv2dBuffers Backend::conv2d_buffers(const Conv2dLayout& layer) const { return conv2d_im2col_buffers(layer); }

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// Whether each per-sample tensor of the cuDNN convolution has an int element count.
bool cudnn_sample_fits_int(const Conv2dShape& s, int64_t filters) {
  return s.in_features() <= kIntMax && s.out_h * s.out_w * filters <= kIntMax && s.patch() * filters <= kIntMax;
}

}  // namespace

Conv2dRoute cuda_conv2d_route(const Conv2dShape& s, bool predicted, PredictedStrategy strategy, int64_t rank,
                              int64_t columns) {
  if (predicted && strategy == PredictedStrategy::OnTheFlyW) return Conv2dRoute::OnTheFlyWImplicit;
  if (predicted && strategy == PredictedStrategy::ChainFused) return Conv2dRoute::Im2col;
  // ASSUMPTION: cuDNN pads both sides of a dimension alike; the asymmetric "same" of an even filter
  // stays on im2col rather than padding a copy of the input.
  if (!cudnn_conv_padding_matches(s)) return Conv2dRoute::Im2col;
  if (!cudnn_sample_fits_int(s, cudnn_conv_filters(predicted, strategy, s.out_c, rank, columns)))
    return Conv2dRoute::Im2col;
  return Conv2dRoute::Cudnn;
}

CudnnConvDims cudnn_conv_dims(const Conv2dShape& s, int64_t filters) {
  UV_CHECK(cudnn_conv_padding_matches(s), "cuDNN conv: padding " << s.pad_top << "/" << s.pad_left
                                                                  << " on both sides does not give the "
                                                                  << s.out_h << "x" << s.out_w << " output");
  UV_CHECK(cudnn_sample_fits_int(s, filters), "cuDNN conv: a sample's tensors exceed int sizes");
  const int64_t largest = s.batch * std::max(s.in_features(), s.out_h * s.out_w * filters);
  UV_REQUIRE(largest <= kIntMax, "conv: a batch of " << s.batch << " makes a " << largest
                                                     << "-element tensor, beyond the 2^31 − 1 of cuDNN's "
                                                        "descriptors; lower the batch size");
  CudnnConvDims d;
  d.n = static_cast<int>(s.batch);
  d.in_c = static_cast<int>(s.in_c);
  d.in_h = static_cast<int>(s.in_h);
  d.in_w = static_cast<int>(s.in_w);
  d.filters = static_cast<int>(filters);
  d.kernel = static_cast<int>(s.kernel);
  d.out_h = static_cast<int>(s.out_h);
  d.out_w = static_cast<int>(s.out_w);
  d.pad_h = static_cast<int>(s.pad_top);
  d.pad_w = static_cast<int>(s.pad_left);
  d.stride = static_cast<int>(s.stride);
  return d;
}

Conv2dBuffers cudnn_conv2d_buffers(const Conv2dLayout& l) {
  Conv2dBuffers b;
  const int64_t patch = l.conv.patch();
  if (!l.predicted) {
    b.forward_filter = b.backward_filter = patch * l.conv.out_c;
    return b;
  }
  const PredictedLinearShape s{l.conv.rows(), patch, l.conv.out_c, l.rank, l.columns};
  if (l.strategy == PredictedStrategy::Materialise) {
    b.saved = b.backward_scratch = patch * l.conv.out_c;  // Wᵀ, dWᵀ
    return b;
  }
  b.saved = b.backward_scratch = s.m * s.t_cols();  // T, dT: packed as cuDNN writes them (no padded rows)
  b.forward_filter = b.backward_filter = patch * s.t_cols();
  return b;
}

Conv2dBuffers onthefly_w_implicit_conv2d_buffers(const Conv2dLayout& l) {
  Conv2dBuffers b;
  const int64_t cols = l.conv.rows() * l.conv.patch();
  b.backward_scratch = predicted_linear_backward_scratch_floats(l.linear(), l.strategy);  // T
  b.dcols = cols;
  if (l.learn_u) b.backward_cols = cols;  // LowRank's backward runs the im2col route
  return b;
}

Conv2dBuffers cuda_conv2d_buffers(const Conv2dLayout& l) {
  switch (cuda_conv2d_route(l.conv, l.predicted, l.strategy, l.rank, l.columns)) {
    case Conv2dRoute::Cudnn: return cudnn_conv2d_buffers(l);
    case Conv2dRoute::OnTheFlyWImplicit: return onthefly_w_implicit_conv2d_buffers(l);
    case Conv2dRoute::Im2col: break;
  }
  return conv2d_im2col_buffers(l);
}

}  // namespace uv
