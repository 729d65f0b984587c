// A Backend seen as the `Ops` of the GEMM orchestrations in kernels/*_algorithm.h (float only), so
// composite ops (dense layer, im2col convolution) run on whichever backend they are given.
#pragma once

#include "engine/backend/backend.h"

namespace uv {

struct BackendOps {
  using Scalar = float;
  Backend& backend;
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    backend.gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  // The backend has no batched product: one gemm per product (its ops use count 1).
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta, bool tb, int64_t m,
                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) {
    for (int64_t i = 0; i < count; ++i)
      backend.gemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
  }
  bool gemm_fused(const GemmCall& call) { return backend.gemm_fused(call); }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) { backend.bias_add_rows(y, bias, m, n); }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) {
    backend.column_sums(x, m, n, out, mode);
  }
  void predicted_forward(const PredictedLinearForwardArgs& a) { backend.predicted_linear_forward(a); }
  void predicted_backward(const PredictedLinearBackwardArgs& a) { backend.predicted_linear_backward(a); }
  void im2col(const Conv2dShape& s, const float* x, float* cols) { backend.im2col(s, x, cols); }
  void col2im(const Conv2dShape& s, const float* dcols, float* dx) { backend.col2im(s, dcols, dx); }
};

}  // namespace uv
