#include "kernels/cpu/predicted_linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/core/error.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/predicted_linear_algorithm.h"

namespace uv {

PredictedStrategy parse_predicted_strategy(const std::string& name) {
  if (name == "materialise" || name == "materialize") return PredictedStrategy::Materialise;
  if (name == "chain") return PredictedStrategy::Chain;
  if (name == "chain_fused") return PredictedStrategy::ChainFused;
  if (name == "onthefly_w") return PredictedStrategy::OnTheFlyW;
  UV_FAIL("unknown strategy '" << name << "' (expected materialise, chain, chain_fused or onthefly_w)");
}

const char* predicted_strategy_name(PredictedStrategy strategy) {
  switch (strategy) {
    case PredictedStrategy::Materialise: return "materialise";
    case PredictedStrategy::Chain: return "chain";
    case PredictedStrategy::ChainFused: return "chain_fused";
    case PredictedStrategy::OnTheFlyW: return "onthefly_w";
  }
  return "?";
}

int64_t predicted_linear_saved_floats(const PredictedLinearShape& s, PredictedStrategy strategy) {
  switch (strategy) {
    case PredictedStrategy::Materialise: return s.k * s.n;  // W
    case PredictedStrategy::OnTheFlyW: return 0;            // forward keeps nothing
    default: return s.m * s.t_ld();                         // T
  }
}

// OnTheFlyW recomputes T = X·U in backward rather than keeping it from forward: the same
// 2·M·K·J·r FLOPs either way, but a backward scratch lives only during this layer's backward while
// a saved buffer lives from forward to backward beside every other layer's, and a forward-only
// pass (evaluation) never computes it.
int64_t predicted_linear_backward_scratch_floats(const PredictedLinearShape& s,
                                                 PredictedStrategy strategy) {
  return strategy == PredictedStrategy::Materialise ? s.k * s.n : s.m * s.t_ld();  // dW, dT or T
}

namespace cpu {

namespace {
// Rows of W the CPU forms at a time for onthefly_w: deep enough for efficient BLAS products,
// small enough that the panel (kPanelRows × N) is a fraction of W.
constexpr int64_t kPanelRows = 256;
int64_t panel_rows(const PredictedLinearShape& s) { return std::min(kPanelRows, s.k); }
}  // namespace

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

// onthefly_w: W tiles in shared memory are a GPU idea; the CPU runs materialise's products with W
// formed a panel of rows at a time, in a panel of its own (the CPU has no T to recompute, so the
// layer's backward scratch goes unused here). The panel is kept per thread and only ever grows, so
// steps after the first allocate nothing.
template <typename Scalar>
static Scalar* panel_buffer(const PredictedLinearShape& s) {
  thread_local std::vector<Scalar> panel;
  const size_t need = static_cast<size_t>(panel_rows(s) * s.n);
  if (panel.size() < need) panel.resize(need);
  return panel.data();
}

template <typename Scalar>
void predicted_linear_forward(const PredictedLinearForwardArgsT<Scalar>& a) {
  CpuOps<Scalar> ops;
  if (a.strategy == PredictedStrategy::OnTheFlyW) {
    algorithm::materialise_in_panels_forward(ops, a, panel_buffer<Scalar>(a.shape), panel_rows(a.shape));
    return;
  }
  algorithm::predicted_linear_forward(ops, a);
}

template <typename Scalar>
void predicted_linear_backward(const PredictedLinearBackwardArgsT<Scalar>& a) {
  CpuOps<Scalar> ops;
  if (a.strategy == PredictedStrategy::OnTheFlyW) {
    algorithm::materialise_in_panels_backward(ops, a, panel_buffer<Scalar>(a.shape), panel_rows(a.shape));
    return;
  }
  algorithm::predicted_linear_backward(ops, a);
}

template <typename Scalar>
void dense_forward(const Scalar* x, const Scalar* w, const Scalar* bias, Scalar* y, int64_t m,
                   int64_t k, int64_t n) {
  CpuOps<Scalar> ops;
  algorithm::dense_forward(ops, x, w, bias, y, m, k, n);
}

template <typename Scalar>
void dense_backward(const Scalar* x, const Scalar* w, const Scalar* dy, Scalar* dx, Scalar* dw,
                    Scalar* dbias, int64_t m, int64_t k, int64_t n, GradientMode dw_mode,
                    GradientMode dbias_mode) {
  CpuOps<Scalar> ops;
  algorithm::dense_backward(ops, x, w, dy, dx, dw, dbias, m, k, n, dw_mode, dbias_mode);
}

template <typename Scalar>
void tied_dense_decoder_forward(const Scalar* h, const Scalar* w, const Scalar* bias, Scalar* z,
                                int64_t m, int64_t k, int64_t n) {
  CpuOps<Scalar> ops;
  algorithm::tied_dense_decoder_forward(ops, h, w, bias, z, m, k, n);
}

template <typename Scalar>
void tied_dense_decoder_backward(const Scalar* h, const Scalar* w, const Scalar* dz, Scalar* dh,
                                 Scalar* dw, Scalar* dbias, int64_t m, int64_t k, int64_t n,
                                 GradientMode dw_mode, GradientMode dbias_mode) {
  CpuOps<Scalar> ops;
  algorithm::tied_dense_decoder_backward(ops, h, w, dz, dh, dw, dbias, m, k, n, dw_mode, dbias_mode);
}

template <typename Scalar>
void tied_decoder_forward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                          const Scalar* v, const Scalar* bias, Scalar* s_saved, Scalar* z) {
  CpuOps<Scalar> ops;
  algorithm::tied_decoder_forward(ops, s, h, u, v, bias, s_saved, z);
}

template <typename Scalar>
void tied_decoder_backward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                           const Scalar* v, const Scalar* s_saved, const Scalar* dz,
                           Scalar* scratch, Scalar* dh, Scalar* dv, Scalar* dbias, Scalar* du,
                           GradientMode dv_mode, GradientMode dbias_mode, GradientMode du_mode) {
  CpuOps<Scalar> ops;
  algorithm::tied_decoder_backward(ops, s, h, u, v, s_saved, dz, scratch, dh, dv, dbias, du, dv_mode,
                                   dbias_mode, du_mode);
}

#define UV_INSTANTIATE(Scalar)                                                                  \
  template void predicted_linear_forward<Scalar>(const PredictedLinearForwardArgsT<Scalar>&);     \
  template void predicted_linear_backward<Scalar>(const PredictedLinearBackwardArgsT<Scalar>&);   \
  template void dense_forward<Scalar>(const Scalar*, const Scalar*, const Scalar*, Scalar*,       \
                                      int64_t, int64_t, int64_t);                                \
  template void dense_backward<Scalar>(const Scalar*, const Scalar*, const Scalar*, Scalar*,      \
                                       Scalar*, Scalar*, int64_t, int64_t, int64_t, GradientMode, \
                                       GradientMode);                                            \
  template void tied_dense_decoder_forward<Scalar>(const Scalar*, const Scalar*, const Scalar*,   \
                                                   Scalar*, int64_t, int64_t, int64_t);         \
  template void tied_dense_decoder_backward<Scalar>(const Scalar*, const Scalar*, const Scalar*,  \
                                                    Scalar*, Scalar*, Scalar*, int64_t, int64_t,  \
                                                    int64_t, GradientMode, GradientMode);        \
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
