// The im2col form of the dense and predicted convolutions, written once over a backend's `Ops`:
//   im2col(shape, x, cols)  col2im(shape, dcols, dx)  gemm(...)  bias_add_rows  column_sums
//   predicted_forward(PredictedLinearForwardArgsT)  predicted_backward(PredictedLinearBackwardArgsT)
// The CPU runs it in float and in double (finite-difference checks); the CUDA backend runs it for
// the strategies cuDNN does not cover (its im2col rows go through the fused predicted-linear kernels).
#pragma once

#include "kernels/conv2d_args.h"
#include "kernels/predicted_linear_algorithm.h"

namespace uv::algorithm {

template <typename Ops>
void conv2d_forward(Ops& ops, const Conv2dForwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const Conv2dShape& s = a.conv;
  ops.im2col(s, a.x, a.cols);  // (rows, patch)
  if (!a.predicted) {
    ops.gemm(false, false, s.rows(), s.out_c, s.patch(), Scalar(1), a.cols, s.patch(), a.w, s.out_c,
             Scalar(0), a.y, s.out_c);
    if (a.bias) ops.bias_add_rows(a.y, a.bias, s.rows(), s.out_c);
    return;
  }
  PredictedLinearForwardArgsT<Scalar> p;
  p.shape = a.linear();
  p.strategy = a.strategy;
  p.x = a.cols;
  p.u = a.u;
  p.v = a.v;
  p.bias = a.bias;
  p.saved = a.saved;
  p.y = a.y;
  ops.predicted_forward(p);
}

template <typename Ops>
void conv2d_backward(Ops& ops, const Conv2dBackwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const Conv2dShape& s = a.conv;
  const int64_t rows = s.rows(), patch = s.patch(), n = s.out_c;
  const bool reads_cols = conv2d_backward_reads_cols(a.predicted, a.strategy, a.du != nullptr);
  if (reads_cols) ops.im2col(s, a.x, a.cols);  // recomputed rather than kept: it is the largest buffer
  Scalar* dcols = a.dx ? a.dcols : nullptr;
  if (!a.predicted) {
    ops.gemm(true, false, patch, n, rows, Scalar(1), a.cols, patch, a.dy, n, beta_of<Scalar>(a.weight_mode),
             a.dw, n);
    if (a.dbias) ops.column_sums(a.dy, rows, n, a.dbias, a.dbias_mode);
    if (dcols) ops.gemm(false, true, rows, patch, n, Scalar(1), a.dy, n, a.w, n, Scalar(0), dcols, patch);
  } else {
    PredictedLinearBackwardArgsT<Scalar> p;
    p.shape = a.linear();
    p.strategy = a.strategy;
    p.x = reads_cols ? a.cols : nullptr;
    p.u = a.u;
    p.v = a.v;
    p.saved = a.saved;
    p.dy = a.dy;
    p.scratch = a.scratch;
    p.dx = dcols;
    p.dv = a.dv;
    p.dbias = a.dbias;
    p.du = a.du;
    p.dv_mode = a.weight_mode;
    p.dbias_mode = a.dbias_mode;
    p.du_mode = a.du_mode;
    ops.predicted_backward(p);
  }
  if (a.dx) ops.col2im(s, dcols, a.dx);
}

}  // namespace uv::algorithm
