// cuBLAS primitives for kernels/predicted_linear_algorithm.h: the `materialise` and `chain`
// baselines on the GPU run the same product sequence as the CPU. Row-major C = op(A)·op(B) is
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so every call swaps the operands. With `lt` (train.gemm =
// cublaslt or cublaslt_one_kernel) the products go through cuBLASLt, which also fuses bias
// epilogues (gemm_fused); where it has no algorithm for a call, cublasSgemm runs it.
// With `tf32x3` (train.gemm = tf32x3) they run on our tensor-core GEMM.
#pragma once

#include <cublas_v2.h>

#include "kernels/cuda/cublaslt_gemm.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/tf32x3_gemm.h"
#include "kernels/gemm_call.h"

namespace uv::cuda {

struct CublasOps {
  using Scalar = float;
  cublasHandle_t handle;  // bound to `stream` by the backend
  cudaStream_t stream;
  LtGemm* lt = nullptr;   // null: cublasSgemm only
  // Set (train.gemm = tf32x3): every product on our 3xTF32 tensor-core GEMM instead, with its
  // split-K workspace.
  const Tf32x3Ops* tf32x3 = nullptr;

  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (tf32x3 && tf32x3_fits(1, m, n))  // past its grid, cuBLAS
      return tf32x3->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (lt && lt->run(gemm_call(1, 0, 0, 0, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), stream)) return;
    CUBLAS_CHECK(cublasSgemm(handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
                             static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c,
                             static_cast<int>(ldc)));
  }
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta,
                    bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (count == 1) return gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (tf32x3 && tf32x3_fits(count, m, n))  // past its grid, cuBLAS
      return tf32x3->gemm_batched(count, stride_a, stride_b, stride_c, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta,
                                  c, ldc);
    if (lt && lt->run(gemm_call(count, stride_a, stride_b, stride_c, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                ldc),
                      stream))
      return;
    CUBLAS_CHECK(cublasSgemmStridedBatched(
        handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
        static_cast<int>(m), static_cast<int>(k), &alpha, b, static_cast<int>(ldb), stride_b, a,
        static_cast<int>(lda), stride_a, &beta, c, static_cast<int>(ldc), stride_c,
        static_cast<int>(count)));
  }
  // A product with its bias epilogue in one launch; false (nothing run) without cuBLASLt or where
  // it has no algorithm for the call, and the orchestration runs the product and a bias kernel.
  bool gemm_fused(const GemmCall& c) {
    if (tf32x3) return tf32x3->gemm_fused(c);
    return lt && lt->run(c, stream);
  }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) {
    cuda::bias_add_rows(y, bias, m, n, stream);
  }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) {
    cuda::column_sums(x, m, n, out, mode, stream);
  }
};

}  // namespace uv::cuda
