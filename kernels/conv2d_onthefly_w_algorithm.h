// onthefly_w's implicit-GEMM convolution (the CUDA backend's OnTheFlyWImplicit route), written once
// over `Ops` so a float64 CPU model of the kernels checks the data flow and the buffers it uses in
// every build (tests/test_conv.cpp). `Ops` provides, for its `Scalar`:
//   gemm_batched, column_sums                     as in kernels/predicted_linear_algorithm.h
//   col2im(s, dcols, dx)                          as in kernels/conv2d_algorithm.h
//   onthefly_w_conv2d_forward(s, r, J, x, u, v, bias, y)   Y = im2col(X)·U·V + b, no im2col matrix
//   onthefly_w_conv2d_t(s, r, J, x, u, t)                  T = im2col(X)·U, no im2col matrix
//   onthefly_w_backward_data(shape, dy, u, v, dx)          dX (M, K) = dY·Wᵀ, W rebuilt on chip
// Backward: T = im2col(X)·U recomputed into the backward scratch (forward keeps nothing), db and
// dV_j = T_jᵀ·dY_j as in the chain; dcols = dY·Wᵀ into the dcols buffer, then col2im. LowRank's
// dU needs dT in memory: that layer's backward takes the im2col route instead (the caller's job).
// Buffers: kernels/cudnn_conv_shape.h (onthefly_w_implicit_conv2d_buffers).
#pragma once

#include "engine/core/error.h"
#include "kernels/conv2d_args.h"
#include "kernels/predicted_linear_algorithm.h"

namespace uv::algorithm {

template <typename Ops>
void conv2d_onthefly_w_forward(Ops& ops, const Conv2dForwardArgsT<typename Ops::Scalar>& a) {
  UV_CHECK(a.predicted && a.strategy == PredictedStrategy::OnTheFlyW, "implicit-GEMM conv: onthefly_w only");
  ops.onthefly_w_conv2d_forward(a.conv, a.rank, a.columns, a.x, a.u, a.v, a.bias, a.y);
}

template <typename Ops>
void conv2d_onthefly_w_backward(Ops& ops, const Conv2dBackwardArgsT<typename Ops::Scalar>& a) {
  UV_CHECK(a.predicted && a.strategy == PredictedStrategy::OnTheFlyW && !a.du,
           "implicit-GEMM conv backward: onthefly_w without dU only");
  PredictedLinearBackwardArgsT<typename Ops::Scalar> p;
  p.shape = a.linear();
  p.strategy = a.strategy;
  p.saved = a.scratch;  // T (B·Ho·Wo, J·r)
  p.dy = a.dy;
  p.dv = a.dv;
  p.dbias = a.dbias;
  p.dv_mode = a.weight_mode;
  p.dbias_mode = a.dbias_mode;
  ops.onthefly_w_conv2d_t(a.conv, a.rank, a.columns, a.x, a.u, a.scratch);
  chain_backward_weights(ops, p, p.shape.t_cols());  // the kernel wrote T packed
  if (!a.dx) return;
  ops.onthefly_w_backward_data(p.shape, a.dy, a.u, a.v, a.dcols);  // (B·Ho·Wo, p·p·C_in)
  ops.col2im(a.conv, a.dcols, a.dx);
}

}  // namespace uv::algorithm
