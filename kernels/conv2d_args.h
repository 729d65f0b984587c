// Shapes and arguments of the 2-D convolution and max-pooling ops, shared by every backend.
//
// Layout: NHWC everywhere (batch, row, col, channel; channel fastest). Why: the im2col matrix of an
// NHWC input has one row per output pixel and its columns in (filter row, filter col, channel)
// order, which is exactly the index space of the paper's filter bank W ∈ R^{(p·p·C_in)×C_out}
// (spec section 4) and of the SE dictionary over it (engine/dict image_coordinates(p, p, C_in)).
// A convolution is then the dense layer, and a predicted convolution the predicted-linear layer,
// on the im2col rows:
//   cols (B·Ho·Wo, p·p·C_in) = im2col(X);   Y (B·Ho·Wo, C_out) = cols·U·V + b
// and the chain strategy is the paper's Fig. 3 form: conv with the n_α dictionary filters U
// (T = cols·U) followed by a 1×1 convolution with V (Y = T·V). W is never formed.
// The index arithmetic is __host__ __device__ so the CPU and CUDA kernels share it and CPU tests
// cover it.
#pragma once

#include <cstdint>

#include "engine/core/host_device.h"
#include "kernels/predicted_linear_args.h"

namespace uv {

struct Conv2dShape {
  int64_t batch = 0;
  int64_t in_h = 0, in_w = 0, in_c = 0;
  int64_t out_c = 0;
  int64_t kernel = 1;               // p: square p×p filters
  int64_t stride = 1;
  int64_t pad_top = 0, pad_left = 0;  // bottom/right padding is implied by out_h/out_w
  int64_t out_h = 0, out_w = 0;
  UV_HOST_DEVICE int64_t rows() const { return batch * out_h * out_w; }  // im2col rows
  UV_HOST_DEVICE int64_t patch() const { return kernel * kernel * in_c; }  // im2col columns (K)
  UV_HOST_DEVICE int64_t in_features() const { return in_h * in_w * in_c; }
  UV_HOST_DEVICE int64_t out_features() const { return out_h * out_w * out_c; }
};

// Padding: `pad` ≥ 0 on all sides, or −1 for "same" (stride 1: out = in; for even p the extra
// row/column of zeros goes bottom/right, as in TensorFlow).
Conv2dShape make_conv2d_shape(int64_t batch, int64_t in_h, int64_t in_w, int64_t in_c, int64_t out_c,
                              int64_t kernel, int64_t stride, int64_t pad);

// Offset into the NHWC input of im2col element (row, col), or −1 where it reads padding.
UV_HOST_DEVICE inline int64_t conv2d_input_offset(const Conv2dShape& s, int64_t row, int64_t col) {
  const int64_t ox = row % s.out_w, oy = (row / s.out_w) % s.out_h, b = row / (s.out_w * s.out_h);
  const int64_t c = col % s.in_c, kx = (col / s.in_c) % s.kernel, ky = col / (s.in_c * s.kernel);
  const int64_t iy = oy * s.stride - s.pad_top + ky, ix = ox * s.stride - s.pad_left + kx;
  if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) return -1;
  return ((b * s.in_h + iy) * s.in_w + ix) * s.in_c + c;
}

// The output rows whose windows cover input row iy (or col ix): [first, last], empty if first > last.
UV_HOST_DEVICE inline int64_t conv2d_first_window(int64_t i, int64_t pad, int64_t kernel, int64_t stride) {
  const int64_t lo = i + pad - kernel + 1;  // smallest o with o·stride − pad + kernel − 1 ≥ i
  return lo <= 0 ? 0 : (lo + stride - 1) / stride;
}
UV_HOST_DEVICE inline int64_t conv2d_last_window(int64_t i, int64_t pad, int64_t stride, int64_t out) {
  const int64_t hi = (i + pad) / stride;  // largest o with o·stride − pad ≤ i
  return hi < out - 1 ? hi : out - 1;
}

struct Pool2dShape {
  int64_t batch = 0, in_h = 0, in_w = 0, channels = 0;
  int64_t size = 2, stride = 2;  // windows never read padding: out = (in − size)/stride + 1
  int64_t out_h = 0, out_w = 0;
  UV_HOST_DEVICE int64_t in_features() const { return in_h * in_w * channels; }
  UV_HOST_DEVICE int64_t out_features() const { return out_h * out_w * channels; }
};
Pool2dShape make_pool2d_shape(int64_t batch, int64_t in_h, int64_t in_w, int64_t channels, int64_t size,
                              int64_t stride);

// Which element of output window (b, oy, ox, c) is its maximum: the first in row-major window order
// among equals, so forward and backward agree on ties. Returns the NHWC input offset.
template <typename Scalar>
UV_HOST_DEVICE inline int64_t maxpool2d_argmax(const Pool2dShape& s, const Scalar* x, int64_t b, int64_t oy,
                                               int64_t ox, int64_t c) {
  int64_t best = ((b * s.in_h + oy * s.stride) * s.in_w + ox * s.stride) * s.channels + c;
  for (int64_t ky = 0; ky < s.size; ++ky)
    for (int64_t kx = 0; kx < s.size; ++kx) {
      const int64_t at = ((b * s.in_h + oy * s.stride + ky) * s.in_w + ox * s.stride + kx) * s.channels + c;
      if (x[at] > x[best]) best = at;
    }
  return best;
}

// One conv layer: dense (w set) or predicted (u, v set, J columns over the output channels).
template <typename Scalar>
struct Conv2dForwardArgsT {
  Conv2dShape conv;
  bool predicted = false;
  PredictedStrategy strategy = PredictedStrategy::Chain;  // predicted only
  int64_t rank = 0, columns = 1;                          // predicted only
  const Scalar* x = nullptr;     // (B, H, W, C_in)
  const Scalar* w = nullptr;     // dense: (p·p·C_in, C_out)
  const Scalar* u = nullptr;     // predicted: (p·p·C_in, J·r)
  const Scalar* v = nullptr;     // predicted: (J, r, C_out/J)
  const Scalar* bias = nullptr;  // (C_out)
  Scalar* saved = nullptr;       // predicted: T (B·Ho·Wo, J·r), or the filter bank: W (p·p·C_in, C_out) on
                                 // the im2col path, Wᵀ (C_out, p, p, C_in) on cuDNN's
  Scalar* cols = nullptr;        // (B·Ho·Wo, p·p·C_in) forward scratch
  Scalar* filter = nullptr;      // (F, p, p, C_in) KRSC filter bank for cuDNN (CUDA backend only)
  Scalar* y = nullptr;           // (B, Ho, Wo, C_out)
  PredictedLinearShape linear() const {
    return PredictedLinearShape{conv.rows(), conv.patch(), conv.out_c, rank, columns};
  }
};

template <typename Scalar>
struct Conv2dBackwardArgsT {
  Conv2dShape conv;
  bool predicted = false;
  PredictedStrategy strategy = PredictedStrategy::Chain;
  int64_t rank = 0, columns = 1;
  const Scalar* x = nullptr;
  const Scalar* w = nullptr;
  const Scalar* u = nullptr;
  const Scalar* v = nullptr;
  const Scalar* saved = nullptr;
  const Scalar* dy = nullptr;    // (B, Ho, Wo, C_out)
  Scalar* cols = nullptr;        // (B·Ho·Wo, p·p·C_in): im2col(X) rebuilt where backward reads X
  Scalar* dcols = nullptr;       // (B·Ho·Wo, p·p·C_in) when dx is wanted
  Scalar* scratch = nullptr;     // predicted: Conv2dBuffers::backward_scratch (the route's)
  Scalar* filter = nullptr;      // (F, p, p, C_in) KRSC filter bank for cuDNN (CUDA backend only)
  Scalar* dx = nullptr;          // (B, H, W, C_in) or null
  Scalar* dw = nullptr;          // dense
  Scalar* dv = nullptr;          // predicted
  Scalar* du = nullptr;          // LowRank conv only
  Scalar* dbias = nullptr;
  GradientMode weight_mode = GradientMode::Overwrite;  // of dw or dv
  GradientMode dbias_mode = GradientMode::Overwrite;
  GradientMode du_mode = GradientMode::Overwrite;
  PredictedLinearShape linear() const {
    return PredictedLinearShape{conv.rows(), conv.patch(), conv.out_c, rank, columns};
  }
};

using Conv2dForwardArgs = Conv2dForwardArgsT<float>;
using Conv2dBackwardArgs = Conv2dBackwardArgsT<float>;

// Whether backward needs im2col(X) again: the dense conv (dW = colsᵀ·dY) and the strategies whose
// weight gradient goes through X (materialise's dW; LowRank's dU). The chain's dV = Tᵀ·dY reads
// the saved T only, so the chain's backward never rebuilds the im2col matrix.
inline bool conv2d_backward_reads_cols(bool predicted, PredictedStrategy strategy, bool learn_u) {
  if (!predicted || learn_u) return true;
  return !(strategy == PredictedStrategy::Chain || strategy == PredictedStrategy::ChainFused);
}

// What a conv layer is, for buffer planning (shape at the planned maximum batch).
struct Conv2dLayout {
  Conv2dShape conv;
  bool predicted = false;
  PredictedStrategy strategy = PredictedStrategy::Chain;
  int64_t rank = 0, columns = 1;
  bool learn_u = false;
  // The predicted-linear layer on the im2col rows.
  PredictedLinearShape linear() const { return PredictedLinearShape{conv.rows(), conv.patch(), conv.out_c, rank, columns}; }
};

// Floats of each buffer a conv layer needs; 0 where a path needs none.
struct Conv2dBuffers {
  int64_t saved = 0;             // Saved: T or W of the predicted layer on the im2col rows
  int64_t forward_cols = 0;      // ForwardScratch: im2col(X)
  int64_t backward_cols = 0;     // BackwardScratch: im2col(X) rebuilt (conv2d_backward_reads_cols)
  int64_t dcols = 0;             // BackwardScratch: d im2col
  int64_t backward_scratch = 0;  // BackwardScratch: dT or dW of the predicted layer
  int64_t forward_filter = 0;    // ForwardScratch: a KRSC filter bank for cuDNN (Wᵀ or Uᵀ)
  int64_t backward_filter = 0;   // BackwardScratch: the same, then its gradient
};
// The im2col path's buffers (the default of every backend).
Conv2dBuffers conv2d_im2col_buffers(const Conv2dLayout& layer);

}  // namespace uv
