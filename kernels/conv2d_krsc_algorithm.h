// The dense, materialise and chain conv layers on a library convolution with KRSC filters (cuDNN on
// the CUDA backend), written once over `Ops` so a CPU reference of the library checks the data flow
// in every build (tests/test_cudnn_conv.cpp). `Ops` provides, for its `Scalar`:
//   gemm_batched, bias_add_rows, column_sums        as in kernels/predicted_linear_algorithm.h
//   transpose(a, rows, cols, out, mode)             out (cols × rows) (+)= aᵀ
//   conv_forward(s, filters, x, w, y)               y (B, Ho, Wo, F) = x ⋆ w, w (F, p, p, C_in)
//   conv_backward_data(s, filters, w, dy, dx)       dx (B, H, W, C_in), overwritten
//   conv_backward_filter(s, filters, x, dy, dw)     dw (F, p, p, C_in), overwritten
// with the geometry of s (its out_c aside: the library conv has F = `filters` output channels).
// Buffers: kernels/cudnn_conv_shape.h (cudnn_conv2d_buffers).
#pragma once

#include "kernels/conv2d_args.h"
#include "kernels/predicted_linear_algorithm.h"

namespace uv::algorithm {

template <typename Ops>
void conv2d_krsc_forward(Ops& ops, const Conv2dForwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const Conv2dShape& s = a.conv;
  const int64_t patch = s.patch(), n = s.out_c, rows = s.rows();
  if (!a.predicted) {
    // W (p·p·C_in, C_out) is stored for the im2col GEMM, the CPU and checkpoints; the library reads
    // a transposed copy (cuDNN's legacy filters are KRSC or KCRS, never RSCK).
    ops.transpose(a.w, patch, n, a.filter, GradientMode::Overwrite);  // Wᵀ (C_out, p, p, C_in)
    ops.conv_forward(s, n, a.x, a.filter, a.y);
  } else if (a.strategy == PredictedStrategy::Materialise) {
    const PredictedLinearShape l = a.linear();
    const int64_t nc = l.n_per_column(), r = l.rank, tc = l.t_cols();
    Scalar* wt = a.saved;  // Wᵀ (C_out, p, p, C_in), kept for backward-data
    // Wᵀ_j (nc × p·p·C_in) = V_jᵀ · U_jᵀ
    ops.gemm_batched(l.columns, r * nc, r, nc * patch, true, true, nc, patch, r, Scalar(1), a.v, nc, a.u, tc,
                     Scalar(0), wt, patch);
    ops.conv_forward(s, n, a.x, wt, a.y);
  } else {  // chain, the paper's Fig. 3: a conv with the J·r dictionary filters, then a 1×1 conv with V
    const PredictedLinearShape l = a.linear();
    const int64_t nc = l.n_per_column(), r = l.rank, tc = l.t_cols();
    // Transposed on every call: a LowRank layer learns U, and Uᵀ is small next to T.
    ops.transpose(a.u, patch, tc, a.filter, GradientMode::Overwrite);  // Uᵀ (J·r, p, p, C_in)
    Scalar* t = a.saved;                                               // T (B, Ho, Wo, J·r)
    ops.conv_forward(s, tc, a.x, a.filter, t);
    // Y_j = T_j · V_j
    ops.gemm_batched(l.columns, r, r * nc, nc, false, false, rows, nc, r, Scalar(1), t, tc, a.v, nc, Scalar(0), a.y,
                     n);
  }
  if (a.bias) ops.bias_add_rows(a.y, a.bias, rows, n);
}

template <typename Ops>
void conv2d_krsc_backward(Ops& ops, const Conv2dBackwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const Conv2dShape& s = a.conv;
  const int64_t patch = s.patch(), n = s.out_c, rows = s.rows();
  if (a.dbias) ops.column_sums(a.dy, rows, n, a.dbias, a.dbias_mode);
  if (!a.predicted) {
    Scalar* filter = a.filter;  // (C_out, p, p, C_in): Wᵀ for dX, then dWᵀ
    if (a.dx) {
      ops.transpose(a.w, patch, n, filter, GradientMode::Overwrite);
      ops.conv_backward_data(s, n, filter, a.dy, a.dx);
    }
    ops.conv_backward_filter(s, n, a.x, a.dy, filter);
    ops.transpose(filter, n, patch, a.dw, a.weight_mode);  // dW (+)= (dWᵀ)ᵀ
    return;
  }
  const PredictedLinearShape l = a.linear();
  const int64_t nc = l.n_per_column(), r = l.rank, tc = l.t_cols(), J = l.columns;
  if (a.strategy == PredictedStrategy::Materialise) {
    Scalar* dwt = a.scratch;  // dWᵀ (C_out, p, p, C_in)
    ops.conv_backward_filter(s, n, a.x, a.dy, dwt);
    // dV_j = U_jᵀ · dW_j = U_jᵀ · (dWᵀ_j)ᵀ
    ops.gemm_batched(J, r, nc * patch, r * nc, true, true, r, nc, patch, Scalar(1), a.u, tc, dwt, patch,
                     beta_of<Scalar>(a.weight_mode), a.dv, nc);
    // dU_j = dW_j · V_jᵀ = (dWᵀ_j)ᵀ · V_jᵀ
    if (a.du)
      ops.gemm_batched(J, nc * patch, r * nc, r, true, true, patch, r, nc, Scalar(1), dwt, patch, a.v, nc,
                       beta_of<Scalar>(a.du_mode), a.du, tc);
    if (a.dx) ops.conv_backward_data(s, n, a.saved, a.dy, a.dx);  // with the saved Wᵀ
    return;
  }
  // chain: dV_j = T_jᵀ · dY_j from the saved T, then dT_j = dY_j · V_jᵀ for dX and dU
  PredictedLinearBackwardArgsT<Scalar> p;
  p.shape = l;
  p.strategy = a.strategy;
  p.saved = a.saved;
  p.dy = a.dy;
  p.dv = a.dv;
  p.dv_mode = a.weight_mode;  // db is done above
  chain_backward_weights(ops, p, tc);  // cuDNN wrote T packed
  if (!a.dx && !a.du) return;  // a first layer: nothing upstream needs dT
  Scalar* dt = a.scratch;      // dT (B, Ho, Wo, J·r)
  ops.gemm_batched(J, nc, r * nc, r, false, true, rows, r, nc, Scalar(1), a.dy, n, a.v, nc, Scalar(0), dt, tc);
  Scalar* filter = a.filter;  // (J·r, p, p, C_in): Uᵀ for dX, then dUᵀ
  if (a.dx) {
    ops.transpose(a.u, patch, tc, filter, GradientMode::Overwrite);
    ops.conv_backward_data(s, tc, filter, dt, a.dx);
  }
  if (a.du) {
    ops.conv_backward_filter(s, tc, a.x, dt, filter);
    ops.transpose(filter, tc, patch, a.du, a.du_mode);  // dU (+)= (dUᵀ)ᵀ
  }
}

}  // namespace uv::algorithm
