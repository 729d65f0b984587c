// The CPU's primitives for the GEMM orchestrations in kernels/*_algorithm.h, in float (training)
// and double (finite-difference checks).
#pragma once

#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/predicted_linear.h"

namespace uv::cpu {

template <typename T>
struct CpuOps {
  using Scalar = T;
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
            const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    cpu::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta,
                    bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                    const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    for (int64_t i = 0; i < count; ++i)
      cpu::gemm(ta, tb, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                c + i * stride_c, ldc);
  }
  void bias_add_rows(T* y, const T* bias, int64_t m, int64_t n) { cpu::bias_add_rows(y, bias, m, n); }
  void column_sums(const T* x, int64_t m, int64_t n, T* out, GradientMode mode) {
    cpu::column_sums(x, m, n, out, mode);
  }
  void predicted_forward(const PredictedLinearForwardArgsT<T>& a) { cpu::predicted_linear_forward(a); }
  void predicted_backward(const PredictedLinearBackwardArgsT<T>& a) { cpu::predicted_linear_backward(a); }
  void im2col(const Conv2dShape& s, const T* x, T* cols) { cpu::im2col(s, x, cols); }
  void col2im(const Conv2dShape& s, const T* dcols, T* dx) { cpu::col2im(s, dcols, dx); }
};

}  // namespace uv::cpu
