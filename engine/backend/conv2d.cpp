// The default convolution of every backend: kernels/conv2d_algorithm.h over the backend itself.
#include "engine/backend/backend.h"
#include "engine/backend/backend_ops.h"
#include "kernels/conv2d_algorithm.h"

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

}  // namespace uv
