// Which convolutions the CUDA backend sends to cuDNN, what it tells cuDNN's descriptors, and the
// buffers those paths need. Host arithmetic only (no cuDNN types), so the CPU tests check it in
// every build; kernels/conv2d_krsc_algorithm.h is the layers' data flow, kernels/cuda/cudnn_conv.cpp
// makes the calls.
//
// The cuDNN paths:
//   dense        y = conv(x, Wᵀ)                       Wᵀ (C_out, p, p, C_in): W transposed per call
//   materialise  y = conv(x, Wᵀ), Wᵀ_j = V_jᵀ·U_jᵀ     Wᵀ saved for backward-data
//   chain        T = conv(x, Uᵀ), Y_j = T_j·V_j        Uᵀ (J·r, p, p, C_in): the n_α·J dictionary filters
// W (p·p·C_in, C_out) has its rows in (filter row, filter col, channel) order, so its transpose is
// cuDNN's KRSC filter layout (CUDNN_TENSOR_NHWC filters) with no reordering beyond the transpose.
// chain_fused keeps the im2col path (its rows go through the fused predicted-linear kernels);
// onthefly_w takes its implicit-GEMM form (kernels/conv2d_onthefly_w_algorithm.h).
#pragma once

#include <cstdint>

#include "engine/core/host_device.h"
#include "kernels/conv2d_args.h"

namespace uv {

enum class Conv2dRoute {
  Im2col,  // Backend's default: kernels/conv2d_algorithm.h
  Cudnn,   // cuDNN convolution forward / backward-data / backward-filter
  OnTheFlyWImplicit,  // onthefly_w's implicit-GEMM kernels (kernels/cuda/onthefly_w.h, conv form)
};

// cuDNN's output extent with `pad` on both sides (cudnnGetConvolution2dForwardOutputDim, dilation 1).
UV_HOST_DEVICE inline int64_t cudnn_conv_out_extent(int64_t in, int64_t pad, int64_t kernel, int64_t stride) {
  return (in + 2 * pad - kernel) / stride + 1;
}

// Whether cuDNN's one-padding-per-dimension convolution produces exactly this shape's output: true
// for explicit padding, and for "same" with an odd filter; false for "same" with an even filter,
// whose extra zero row/column goes bottom/right only.
UV_HOST_DEVICE inline bool cudnn_conv_padding_matches(const Conv2dShape& s) {
  return cudnn_conv_out_extent(s.in_h, s.pad_top, s.kernel, s.stride) == s.out_h &&
         cudnn_conv_out_extent(s.in_w, s.pad_left, s.kernel, s.stride) == s.out_w;
}

// Output channels of the cuDNN convolution: C_out (the filter bank Wᵀ) for dense and materialise,
// J·r (the dictionary filters Uᵀ) for the chain.
inline int64_t cudnn_conv_filters(bool predicted, PredictedStrategy strategy, int64_t out_c, int64_t rank,
                                  int64_t columns) {
  return predicted && strategy != PredictedStrategy::Materialise ? rank * columns : out_c;
}

// The filter-bank transpose between the engine's (p·p·C_in, F) and KRSC (F, p, p, C_in), each way:
// element i of out (cols × rows, row-major) reads this element of a (rows × cols).
UV_HOST_DEVICE inline int64_t transpose_source(int64_t i, int64_t rows, int64_t cols) {
  return (i % rows) * cols + i / rows;
}

// Where the CUDA backend runs a conv layer. It depends on the per-sample shape only, never on the
// batch, so the buffers planned at the maximum batch fit every smaller batch's route.
Conv2dRoute cuda_conv2d_route(const Conv2dShape& s, bool predicted, PredictedStrategy strategy, int64_t rank,
                              int64_t columns);

// The legacy descriptors' arguments (int, cuDNN's argument order) for a conv with `filters`
// output channels:
//   x: cudnnSetTensor4dDescriptor(NHWC, n, in_c, in_h, in_w)
//   w: cudnnSetFilter4dDescriptor(NHWC, filters, in_c, kernel, kernel)   memory [K][R][S][C]
//   y: cudnnSetTensor4dDescriptor(NHWC, n, filters, out_h, out_w)
//   conv: cudnnSetConvolution2dDescriptor(pad_h, pad_w, stride, stride, 1, 1, cross-correlation)
struct CudnnConvDims {
  int n = 0, in_c = 0, in_h = 0, in_w = 0;
  int filters = 0, kernel = 0;
  int out_h = 0, out_w = 0;
  int pad_h = 0, pad_w = 0, stride = 1;
};
// Throws uv::Error when the padding is not cuDNN's or a tensor has ≥ 2^31 elements (the legacy
// descriptors take int sizes and strides).
CudnnConvDims cudnn_conv_dims(const Conv2dShape& s, int64_t filters);

// The buffers of the cuDNN paths (no im2col buffers):
//   dense        forward_filter = backward_filter = p·p·C_in·C_out (Wᵀ; backward: Wᵀ, then dWᵀ)
//   materialise  saved = backward_scratch = p·p·C_in·C_out (Wᵀ kept; dWᵀ)
//   chain        saved = backward_scratch = B·Ho·Wo·J·r (T; dT, packed as cuDNN writes them),
//                forward_filter = backward_filter = p·p·C_in·J·r (Uᵀ; backward: Uᵀ, then dUᵀ)
Conv2dBuffers cudnn_conv2d_buffers(const Conv2dLayout& layer);
// The buffers of onthefly_w's implicit-GEMM route: no im2col matrix forward, nothing saved;
// backward_scratch = B·Ho·Wo·t_ld (T = im2col(X)·U, recomputed and written packed; t_ld, the
// linear layer's padded rows, so that it also fits the im2col route's dT), dcols = B·Ho·Wo·p·p·C_in
// (dY·Wᵀ before col2im). LowRank (learn_u) backward falls back to the im2col route and also gets
// its backward_cols.
Conv2dBuffers onthefly_w_implicit_conv2d_buffers(const Conv2dLayout& layer);
// What the CUDA backend plans: each route's buffers (cuda_conv2d_route).
Conv2dBuffers cuda_conv2d_buffers(const Conv2dLayout& layer);

}  // namespace uv
