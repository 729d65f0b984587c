#include "kernels/cpu/predicted_linear.h"

#include <cstring>

#include "engine/core/error.h"
#include "kernels/cpu/blas.h"

namespace uv {

PredictedStrategy parse_predicted_strategy(const std::string& name) {
  if (name == "materialise" || name == "materialize") return PredictedStrategy::Materialise;
  if (name == "chain") return PredictedStrategy::Chain;
  UV_FAIL("unknown strategy '" << name << "' (expected materialise or chain)");
}

const char* predicted_strategy_name(PredictedStrategy strategy) {
  return strategy == PredictedStrategy::Materialise ? "materialise" : "chain";
}

int64_t predicted_linear_saved_floats(const PredictedLinearShape& s, PredictedStrategy strategy) {
  return strategy == PredictedStrategy::Chain ? s.m * s.t_cols() : s.k * s.n;
}

int64_t predicted_linear_backward_scratch_floats(const PredictedLinearShape& s,
                                                 PredictedStrategy strategy) {
  return strategy == PredictedStrategy::Chain ? s.m * s.t_cols() : s.k * s.n;
}

namespace cpu {

void throw_dnnl_error(dnnl_status_t status, int64_t m, int64_t n, int64_t k) {
  UV_CHECK(false, "oneDNN sgemm failed with status " << static_cast<int>(status) << " for M=" << m
                                                     << " N=" << n << " K=" << k);
}

template <typename Scalar>
static Scalar beta_of(GradientMode mode) {
  return mode == GradientMode::Accumulate ? Scalar(1) : Scalar(0);
}

template <typename Scalar>
void bias_add_rows(Scalar* y, const Scalar* bias, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    Scalar* row = y + i * n;
    for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
  }
}

template <typename Scalar>
void column_sums(const Scalar* x, int64_t m, int64_t n, Scalar* out, GradientMode mode) {
  if (mode == GradientMode::Overwrite) std::memset(out, 0, sizeof(Scalar) * static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    const Scalar* row = x + i * n;
    for (int64_t j = 0; j < n; ++j) out[j] += row[j];
  }
}

template <typename Scalar>
void predicted_linear_forward(const PredictedLinearForwardArgsT<Scalar>& a) {
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols();
  if (a.strategy == PredictedStrategy::Chain) {
    Scalar* t = a.saved;  // (M, J·r)
    gemm(false, false, s.m, tc, s.k, Scalar(1), a.x, s.k, a.u, tc, Scalar(0), t, tc);
    for (int64_t j = 0; j < s.columns; ++j)
      gemm(false, false, s.m, nc, s.rank, Scalar(1), t + j * s.rank, tc, a.v + j * s.rank * nc, nc,
           Scalar(0), a.y + j * nc, s.n);
  } else {
    Scalar* w = a.saved;  // (K, N): the materialised weight, kept for backward-data
    for (int64_t j = 0; j < s.columns; ++j)
      gemm(false, false, s.k, nc, s.rank, Scalar(1), a.u + j * s.rank, tc, a.v + j * s.rank * nc,
           nc, Scalar(0), w + j * nc, s.n);
    gemm(false, false, s.m, s.n, s.k, Scalar(1), a.x, s.k, w, s.n, Scalar(0), a.y, s.n);
  }
  if (a.bias) bias_add_rows(a.y, a.bias, s.m, s.n);
}

template <typename Scalar>
void predicted_linear_backward(const PredictedLinearBackwardArgsT<Scalar>& a) {
  const PredictedLinearShape& s = a.shape;
  const int64_t nc = s.n_per_column(), tc = s.t_cols();
  if (a.dbias) column_sums(a.dy, s.m, s.n, a.dbias, a.dbias_mode);
  if (a.strategy == PredictedStrategy::Chain) {
    const Scalar* t = a.saved;  // (M, J·r)
    Scalar* dt = a.scratch;     // (M, J·r)
    for (int64_t j = 0; j < s.columns; ++j) {
      const Scalar* dy_j = a.dy + j * nc;
      const Scalar* v_j = a.v + j * s.rank * nc;
      // dV_j = T_jᵀ · dY_j
      gemm(true, false, s.rank, nc, s.m, Scalar(1), t + j * s.rank, tc, dy_j, s.n,
           beta_of<Scalar>(a.dv_mode), a.dv + j * s.rank * nc, nc);
      // dT_j = dY_j · V_jᵀ (only when something upstream needs it)
      if (a.dx || a.du)
        gemm(false, true, s.m, s.rank, nc, Scalar(1), dy_j, s.n, v_j, nc, Scalar(0),
             dt + j * s.rank, tc);
    }
    if (a.dx) gemm(false, true, s.m, s.k, tc, Scalar(1), dt, tc, a.u, tc, Scalar(0), a.dx, s.k);
    if (a.du)
      gemm(true, false, s.k, tc, s.m, Scalar(1), a.x, s.k, dt, tc, beta_of<Scalar>(a.du_mode), a.du,
           tc);
  } else {
    const Scalar* w = a.saved;  // (K, N)
    Scalar* dw = a.scratch;     // (K, N) = Xᵀ·dY, what autograd would form
    gemm(true, false, s.k, s.n, s.m, Scalar(1), a.x, s.k, a.dy, s.n, Scalar(0), dw, s.n);
    for (int64_t j = 0; j < s.columns; ++j) {
      const Scalar* dw_j = dw + j * nc;
      gemm(true, false, s.rank, nc, s.k, Scalar(1), a.u + j * s.rank, tc, dw_j, s.n,
           beta_of<Scalar>(a.dv_mode), a.dv + j * s.rank * nc, nc);
      if (a.du)
        gemm(false, true, s.k, s.rank, nc, Scalar(1), dw_j, s.n, a.v + j * s.rank * nc, nc,
             beta_of<Scalar>(a.du_mode), a.du + j * s.rank, tc);
    }
    if (a.dx) gemm(false, true, s.m, s.k, s.n, Scalar(1), a.dy, s.n, w, s.n, Scalar(0), a.dx, s.k);
  }
}

template <typename Scalar>
void dense_forward(const Scalar* x, const Scalar* w, const Scalar* bias, Scalar* y, int64_t m,
                   int64_t k, int64_t n) {
  gemm(false, false, m, n, k, Scalar(1), x, k, w, n, Scalar(0), y, n);
  if (bias) bias_add_rows(y, bias, m, n);
}

template <typename Scalar>
void dense_backward(const Scalar* x, const Scalar* w, const Scalar* dy, Scalar* dx, Scalar* dw,
                    Scalar* dbias, int64_t m, int64_t k, int64_t n, GradientMode dw_mode,
                    GradientMode dbias_mode) {
  gemm(true, false, k, n, m, Scalar(1), x, k, dy, n, beta_of<Scalar>(dw_mode), dw, n);
  if (dbias) column_sums(dy, m, n, dbias, dbias_mode);
  if (dx) gemm(false, true, m, k, n, Scalar(1), dy, n, w, n, Scalar(0), dx, k);
}

template <typename Scalar>
void tied_decoder_forward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                          const Scalar* v, const Scalar* bias, Scalar* s_saved, Scalar* z) {
  // s.m rows of H (M×N); Z = Σ_j (H_j·V_jᵀ)·U_jᵀ = S·Uᵀ with S = [H_j·V_jᵀ] (M×J·r).
  const int64_t nc = s.n_per_column(), tc = s.t_cols();
  for (int64_t j = 0; j < s.columns; ++j)
    gemm(false, true, s.m, s.rank, nc, Scalar(1), h + j * nc, s.n, v + j * s.rank * nc, nc,
         Scalar(0), s_saved + j * s.rank, tc);
  gemm(false, true, s.m, s.k, tc, Scalar(1), s_saved, tc, u, tc, Scalar(0), z, s.k);
  if (bias) bias_add_rows(z, bias, s.m, s.k);
}

template <typename Scalar>
void tied_decoder_backward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                           const Scalar* v, const Scalar* s_saved, const Scalar* dz,
                           Scalar* scratch, Scalar* dh, Scalar* dv, Scalar* dbias, Scalar* du,
                           GradientMode dv_mode, GradientMode dbias_mode, GradientMode du_mode) {
  // dS = dZ·U (M×J·r); dH_j = dS_j·V_j; dV_j += dS_jᵀ·H_j; dU += dZᵀ·S.
  const int64_t nc = s.n_per_column(), tc = s.t_cols();
  if (dbias) column_sums(dz, s.m, s.k, dbias, dbias_mode);
  Scalar* ds = scratch;  // (M, J·r)
  gemm(false, false, s.m, tc, s.k, Scalar(1), dz, s.k, u, tc, Scalar(0), ds, tc);
  for (int64_t j = 0; j < s.columns; ++j) {
    gemm(true, false, s.rank, nc, s.m, Scalar(1), ds + j * s.rank, tc, h + j * nc, s.n,
         beta_of<Scalar>(dv_mode), dv + j * s.rank * nc, nc);
    if (dh)
      gemm(false, false, s.m, nc, s.rank, Scalar(1), ds + j * s.rank, tc, v + j * s.rank * nc, nc,
           Scalar(0), dh + j * nc, s.n);
  }
  if (du) gemm(true, false, s.k, tc, s.m, Scalar(1), dz, s.k, s_saved, tc, beta_of<Scalar>(du_mode), du, tc);
}

#define UV_INSTANTIATE(Scalar)                                                                  \
  template void predicted_linear_forward<Scalar>(const PredictedLinearForwardArgsT<Scalar>&);     \
  template void predicted_linear_backward<Scalar>(const PredictedLinearBackwardArgsT<Scalar>&);   \
  template void dense_forward<Scalar>(const Scalar*, const Scalar*, const Scalar*, Scalar*,       \
                                      int64_t, int64_t, int64_t);                                \
  template void dense_backward<Scalar>(const Scalar*, const Scalar*, const Scalar*, Scalar*,      \
                                       Scalar*, Scalar*, int64_t, int64_t, int64_t, GradientMode, \
                                       GradientMode);                                            \
  template void tied_decoder_forward<Scalar>(const PredictedLinearShape&, const Scalar*,          \
                                             const Scalar*, const Scalar*, const Scalar*, Scalar*, \
                                             Scalar*);                                           \
  template void tied_decoder_backward<Scalar>(                                                    \
      const PredictedLinearShape&, const Scalar*, const Scalar*, const Scalar*, const Scalar*,    \
      const Scalar*, Scalar*, Scalar*, Scalar*, Scalar*, Scalar*, GradientMode, GradientMode,      \
      GradientMode);                                                                             \
  template void bias_add_rows<Scalar>(Scalar*, const Scalar*, int64_t, int64_t);                  \
  template void column_sums<Scalar>(const Scalar*, int64_t, int64_t, Scalar*, GradientMode);
UV_INSTANTIATE(float)
UV_INSTANTIATE(double)
#undef UV_INSTANTIATE

}  // namespace cpu
}  // namespace uv
