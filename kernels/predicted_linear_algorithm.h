// The GEMM orchestration of the predicted-linear layer, dense layer and tied decoder, written once
// over a backend's primitive `Ops` so the CPU (OpenBLAS/oneDNN) and the cuBLAS baselines run the
// same sequence of products. `Ops` provides, for its `Scalar`:
//   gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)       row-major
//   gemm_batched(count, stride_a, stride_b, stride_c, <same as gemm>)          count products
//   bias_add_rows(y, bias, m, n)          y (m×n) += bias
//   column_sums(x, m, n, out, mode)       out (n) (+)= Σ_rows x
// and may provide (float only)
//   gemm_fused(GemmCall) -> bool          a product with its bias epilogue in one launch, or false
//                                         (nothing run): the product and the bias kernel run then
// The J columns of a layer are one batched product with constant strides (spec section 3).
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "engine/core/error.h"
#include "kernels/gemm_call.h"
#include "kernels/predicted_linear_args.h"

namespace uv::algorithm {

// An Ops that records the products an orchestration asks for instead of running them (the bias
// ops run nothing): what a bench replays one product at a time (bench/predicted_products.cpp) and
// a test inspects for strides and alignment.
struct GemmRecorder {
  using Scalar = float;
  std::vector<GemmCall> calls;
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta, bool tb, int64_t m,
                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) {
    calls.push_back(gemm_call(count, stride_a, stride_b, stride_c, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
  }
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
            int64_t ldb, float beta, float* c, int64_t ldc) {
    gemm_batched(1, 0, 0, 0, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void bias_add_rows(float*, const float*, int64_t, int64_t) {}
  void column_sums(const float*, int64_t, int64_t, float*, GradientMode) {}
};

template <typename Scalar>
Scalar beta_of(GradientMode mode) {
  return mode == GradientMode::Accumulate ? Scalar(1) : Scalar(0);
}

namespace detail {
template <typename Ops, typename = void>
struct fuses_epilogues : std::false_type {};
template <typename Ops>
struct fuses_epilogues<Ops, std::void_t<decltype(std::declval<Ops&>().gemm_fused(GemmCall{}))>> : std::true_type {};

template <typename Ops>
bool try_fused(Ops& ops, const GemmCall& call) {
  if constexpr (fuses_epilogues<Ops>::value) {
    return ops.gemm_fused(call);
  } else {
    (void)ops;
    (void)call;
    return false;
  }
}
}  // namespace detail

// C (m × count·n) = the `count` products op(A_i)·op(B_i) side by side (C_i = columns [i·n, (i+1)·n)),
// then + bias (count·n) on every row, where given: one launch where the Ops fuse the bias.
template <typename Ops, typename Scalar = typename Ops::Scalar>
void gemm_batched_bias_rows(Ops& ops, int64_t count, int64_t stride_a, int64_t stride_b, bool ta, bool tb,
                            int64_t m, int64_t n, int64_t k, const Scalar* a, int64_t lda, const Scalar* b,
                            int64_t ldb, const Scalar* bias, Scalar* c) {
  if constexpr (std::is_same_v<Scalar, float>) {
    if (bias) {
      GemmCall call = gemm_call(count, stride_a, stride_b, n, ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, count * n);
      call.epilogue = GemmEpilogue::Bias;
      call.bias = const_cast<float*>(bias);  // read only, for a Bias epilogue
      if (detail::try_fused(ops, call)) return;
    }
  }
  ops.gemm_batched(count, stride_a, stride_b, n, ta, tb, m, n, k, Scalar(1), a, lda, b, ldb, Scalar(0), c, count * n);
  if (bias) ops.bias_add_rows(c, bias, m, count * n);
}

// The weight and bias gradients from one dY: C_i (+)= op(A_i) · B_i, where B_i = columns
// [i·n, (i+1)·n) of B (k × count·n), and bias (count·n) (+)= Σ_rows B, where given. One launch
// where the Ops fuse the bias gradient (cuBLASLt writes it, so only when it overwrites).
template <typename Ops, typename Scalar = typename Ops::Scalar>
void gemm_batched_column_sums(Ops& ops, int64_t count, int64_t stride_a, int64_t stride_c, bool ta, int64_t m,
                              int64_t n, int64_t k, const Scalar* a, int64_t lda, const Scalar* b, Scalar beta,
                              Scalar* c, int64_t ldc, Scalar* bias, GradientMode bias_mode) {
  if constexpr (std::is_same_v<Scalar, float>) {
    if (bias && bias_mode == GradientMode::Overwrite) {
      GemmCall call = gemm_call(count, stride_a, n, stride_c, ta, false, m, n, k, 1.f, a, lda, b, count * n, beta, c, ldc);
      call.epilogue = GemmEpilogue::BiasGradient;
      call.bias = bias;
      if (detail::try_fused(ops, call)) return;
    }
  }
  if (bias) ops.column_sums(b, k, count * n, bias, bias_mode);
  ops.gemm_batched(count, stride_a, n, stride_c, ta, false, m, n, k, Scalar(1), a, lda, b, count * n, beta, c, ldc);
}

template <typename Ops>
void predicted_linear_forward(Ops& ops, const PredictedLinearForwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank, J = s.columns;
  UV_CHECK(a.strategy != PredictedStrategy::OnTheFlyW, "onthefly_w has no full-buffer sequence: "
                                                       "use materialise_in_panels_forward");
  if (a.strategy != PredictedStrategy::Materialise) {  // chain, and chain_fused's reference
    Scalar* t = a.saved;  // (M, J·r), rows t_ld apart
    ops.gemm(false, false, s.m, tc, s.k, Scalar(1), a.x, s.k, a.u, tc, Scalar(0), t, s.t_ld());
    // Y_j = T_j · V_j (+ b_j)
    gemm_batched_bias_rows(ops, J, r, r * nc, false, false, s.m, nc, r, t, s.t_ld(), a.v, nc, a.bias, a.y);
  } else {
    Scalar* w = a.saved;  // (K, N): the materialised weight, kept for backward-data
    // W_j = U_j · V_j
    ops.gemm_batched(J, r, r * nc, nc, false, false, s.k, nc, r, Scalar(1), a.u, tc, a.v, nc,
                     Scalar(0), w, s.n);
    gemm_batched_bias_rows(ops, 1, 0, 0, false, false, s.m, s.n, s.k, a.x, s.k, w, s.n, a.bias, a.y);
  }
}

// The chain's weight gradients from the saved T (rows ldt apart: a linear layer's t_ld, a
// convolution's packed t_cols): db = Σ_rows dY and dV_j = T_jᵀ · dY_j. Shared by the chain, by
// chain_fused, whose data gradient is a kernel of its own, and by the convolutions.
template <typename Ops>
void chain_backward_weights(Ops& ops, const PredictedLinearBackwardArgsT<typename Ops::Scalar>& a, int64_t ldt) {
  using Scalar = typename Ops::Scalar;
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), r = s.rank;
  gemm_batched_column_sums(ops, s.columns, r, r * nc, true, r, nc, s.m, a.saved, ldt, a.dy,
                           beta_of<Scalar>(a.dv_mode), a.dv, nc, a.dbias, a.dbias_mode);
}

template <typename Ops>
void predicted_linear_backward(Ops& ops, const PredictedLinearBackwardArgsT<typename Ops::Scalar>& a) {
  using Scalar = typename Ops::Scalar;
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank, J = s.columns;
  UV_CHECK(a.strategy != PredictedStrategy::OnTheFlyW, "onthefly_w has no full-buffer sequence: "
                                                       "use materialise_in_panels_backward");
  if (a.strategy != PredictedStrategy::Materialise) {  // chain, and chain_fused's reference
    Scalar* dt = a.scratch;  // (M, J·r), rows t_ld apart as T's
    const int64_t lt = s.t_ld();
    chain_backward_weights(ops, a, lt);
    if (!a.dx && !a.du) return;  // a first layer: nothing upstream needs dT
    // dT_j = dY_j · V_jᵀ
    ops.gemm_batched(J, nc, r * nc, r, false, true, s.m, r, nc, Scalar(1), a.dy, s.n, a.v, nc,
                     Scalar(0), dt, lt);
    if (a.dx) ops.gemm(false, true, s.m, s.k, tc, Scalar(1), dt, lt, a.u, tc, Scalar(0), a.dx, s.k);
    if (a.du)
      ops.gemm(true, false, s.k, tc, s.m, Scalar(1), a.x, s.k, dt, lt, beta_of<Scalar>(a.du_mode),
               a.du, tc);
  } else {
    const Scalar* w = a.saved;  // (K, N)
    Scalar* dw = a.scratch;     // (K, N) = Xᵀ·dY, what autograd would form
    gemm_batched_column_sums(ops, 1, 0, 0, true, s.k, s.n, s.m, a.x, s.k, a.dy, Scalar(0), dw, s.n, a.dbias,
                             a.dbias_mode);
    // dV_j = U_jᵀ · dW_j
    ops.gemm_batched(J, r, nc, r * nc, true, false, r, nc, s.k, Scalar(1), a.u, tc, dw, s.n,
                     beta_of<Scalar>(a.dv_mode), a.dv, nc);
    // dU_j = dW_j · V_jᵀ
    if (a.du)
      ops.gemm_batched(J, nc, r * nc, r, false, true, s.k, r, nc, Scalar(1), dw, s.n, a.v, nc,
                       beta_of<Scalar>(a.du_mode), a.du, tc);
    if (a.dx) ops.gemm(false, true, s.m, s.k, s.n, Scalar(1), a.dy, s.n, w, s.n, Scalar(0), a.dx, s.k);
  }
}

// Materialise's products with W (and dW) formed `panel_rows` rows at a time in `panel`
// (panel_rows × N), so no K×N buffer exists: onthefly_w on a backend without W tiles in shared
// memory (the CPU). Rows [k0, k0 + p) of W are W_p = U[k0:k0+p]·V (per column), and
//   Y = Σ_p X[:, p]·W_p,   dX[:, p] = dY·W_pᵀ,   dW_p = X[:, p]ᵀ·dY,
//   dV_j = Σ_p U_j[p]ᵀ·dW_p,j,   dU_j[p] = dW_p,j·V_jᵀ.
template <typename Ops>
void materialise_in_panels_forward(Ops& ops, const PredictedLinearForwardArgsT<typename Ops::Scalar>& a,
                                   typename Ops::Scalar* panel, int64_t panel_rows) {
  using Scalar = typename Ops::Scalar;
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank;
  for (int64_t k0 = 0; k0 < s.k; k0 += panel_rows) {
    const int64_t p = std::min(panel_rows, s.k - k0);
    ops.gemm_batched(s.columns, r, r * nc, nc, false, false, p, nc, r, Scalar(1), a.u + k0 * tc, tc, a.v,
                     nc, Scalar(0), panel, s.n);
    ops.gemm(false, false, s.m, s.n, p, Scalar(1), a.x + k0, s.k, panel, s.n, Scalar(k0 == 0 ? 0 : 1),
             a.y, s.n);
  }
  if (a.bias) ops.bias_add_rows(a.y, a.bias, s.m, s.n);
}

template <typename Ops>
void materialise_in_panels_backward(Ops& ops, const PredictedLinearBackwardArgsT<typename Ops::Scalar>& a,
                                    typename Ops::Scalar* panel, int64_t panel_rows) {
  using Scalar = typename Ops::Scalar;
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank, J = s.columns;
  if (a.dbias) ops.column_sums(a.dy, s.m, s.n, a.dbias, a.dbias_mode);
  for (int64_t k0 = 0; k0 < s.k; k0 += panel_rows) {
    const int64_t p = std::min(panel_rows, s.k - k0);
    if (a.dx) {
      ops.gemm_batched(J, r, r * nc, nc, false, false, p, nc, r, Scalar(1), a.u + k0 * tc, tc, a.v, nc,
                       Scalar(0), panel, s.n);  // W_p
      ops.gemm(false, true, s.m, p, s.n, Scalar(1), a.dy, s.n, panel, s.n, Scalar(0), a.dx + k0, s.k);
    }
    ops.gemm(true, false, p, s.n, s.m, Scalar(1), a.x + k0, s.k, a.dy, s.n, Scalar(0), panel, s.n);  // dW_p
    const Scalar dv_beta = k0 == 0 ? beta_of<Scalar>(a.dv_mode) : Scalar(1);
    ops.gemm_batched(J, r, nc, r * nc, true, false, r, nc, p, Scalar(1), a.u + k0 * tc, tc, panel, s.n,
                     dv_beta, a.dv, nc);
    if (a.du)
      ops.gemm_batched(J, nc, r * nc, r, false, true, p, r, nc, Scalar(1), panel, s.n, a.v, nc,
                       beta_of<Scalar>(a.du_mode), a.du + k0 * tc, tc);
  }
}

// Y (M×N) = X (M×K) · W (K×N) + b
template <typename Ops, typename Scalar = typename Ops::Scalar>
void dense_forward(Ops& ops, const Scalar* x, const Scalar* w, const Scalar* bias, Scalar* y,
                   int64_t m, int64_t k, int64_t n) {
  gemm_batched_bias_rows(ops, 1, 0, 0, false, false, m, n, k, x, k, w, n, bias, y);
}

template <typename Ops, typename Scalar = typename Ops::Scalar>
void dense_backward(Ops& ops, const Scalar* x, const Scalar* w, const Scalar* dy, Scalar* dx,
                    Scalar* dw, Scalar* dbias, int64_t m, int64_t k, int64_t n, GradientMode dw_mode,
                    GradientMode dbias_mode) {
  gemm_batched_column_sums(ops, 1, 0, 0, true, k, n, m, x, k, dy, beta_of<Scalar>(dw_mode), dw, n, dbias,
                           dbias_mode);
  if (dx) ops.gemm(false, true, m, k, n, Scalar(1), dy, n, w, n, Scalar(0), dx, k);
}

// Tied decoder of a dense encoder Y = X·W + b (W: K×N): Z (M×K) = H (M×N) · Wᵀ + c. The
// autoencoder that builds an `ae` dictionary (engine/dict/autoencoder.h) decodes with it.
template <typename Ops, typename Scalar = typename Ops::Scalar>
void tied_dense_decoder_forward(Ops& ops, const Scalar* h, const Scalar* w, const Scalar* bias, Scalar* z,
                                int64_t m, int64_t k, int64_t n) {
  ops.gemm(false, true, m, k, n, Scalar(1), h, n, w, n, Scalar(0), z, k);
  if (bias) ops.bias_add_rows(z, bias, m, k);
}

// dW (K×N) (+)= dZᵀ·H, dc (+)= Σ_rows dZ, dH = dZ·W. The encoder writes dW too: the graph gives
// whichever of the two runs backward first Overwrite and the other Accumulate.
template <typename Ops, typename Scalar = typename Ops::Scalar>
void tied_dense_decoder_backward(Ops& ops, const Scalar* h, const Scalar* w, const Scalar* dz, Scalar* dh,
                                 Scalar* dw, Scalar* dbias, int64_t m, int64_t k, int64_t n,
                                 GradientMode dw_mode, GradientMode dbias_mode) {
  ops.gemm(true, false, k, n, m, Scalar(1), dz, k, h, n, beta_of<Scalar>(dw_mode), dw, n);
  if (dbias) ops.column_sums(dz, m, k, dbias, dbias_mode);
  if (dh) ops.gemm(false, false, m, n, k, Scalar(1), dz, k, w, n, Scalar(0), dh, n);
}

// Tied decoder of a predicted encoder: Z (M×K) = H (M×N) · (U·V)ᵀ + c = S·Uᵀ + c with
// S = [H_j·V_jᵀ] (M×J·r), so W is never formed.
template <typename Ops, typename Scalar = typename Ops::Scalar>
void tied_decoder_forward(Ops& ops, const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                          const Scalar* v, const Scalar* bias, Scalar* s_saved, Scalar* z) {
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank;
  ops.gemm_batched(s.columns, nc, r * nc, r, false, true, s.m, r, nc, Scalar(1), h, s.n, v, nc,
                   Scalar(0), s_saved, tc);
  ops.gemm(false, true, s.m, s.k, tc, Scalar(1), s_saved, tc, u, tc, Scalar(0), z, s.k);
  if (bias) ops.bias_add_rows(z, bias, s.m, s.k);
}

// dS = dZ·U; dV_j (+)= dS_jᵀ·H_j; dH_j = dS_j·V_j; dU (+)= dZᵀ·S. `scratch` (M×J·r) holds dS.
template <typename Ops, typename Scalar = typename Ops::Scalar>
void tied_decoder_backward(Ops& ops, const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                           const Scalar* v, const Scalar* s_saved, const Scalar* dz, Scalar* scratch,
                           Scalar* dh, Scalar* dv, Scalar* dbias, Scalar* du, GradientMode dv_mode,
                           GradientMode dbias_mode, GradientMode du_mode) {
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank;
  if (dbias) ops.column_sums(dz, s.m, s.k, dbias, dbias_mode);
  Scalar* ds = scratch;  // (M, J·r)
  ops.gemm(false, false, s.m, tc, s.k, Scalar(1), dz, s.k, u, tc, Scalar(0), ds, tc);
  ops.gemm_batched(s.columns, r, nc, r * nc, true, false, r, nc, s.m, Scalar(1), ds, tc, h, s.n,
                   beta_of<Scalar>(dv_mode), dv, nc);
  if (dh)
    ops.gemm_batched(s.columns, r, r * nc, nc, false, false, s.m, nc, r, Scalar(1), ds, tc, v, nc,
                     Scalar(0), dh, s.n);
  if (du)
    ops.gemm(true, false, s.k, tc, s.m, Scalar(1), dz, s.k, s_saved, tc, beta_of<Scalar>(du_mode), du, tc);
}

}  // namespace uv::algorithm
