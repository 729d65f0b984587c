// Row-major GEMM on the CPU, overloaded for float and double so the same kernel templates serve
// training (float32) and finite-difference checks (float64).
//   float32: oneDNN's sgemm, measured 1.7-1.8x faster than OpenBLAS on one predicted-MLP step's
//            GEMMs on this project's 2-core machine (docs/cpu-gemm.md).
//   float64: OpenBLAS (oneDNN has no dgemm); only tests and the dictionaries' float64 maths use it.
#pragma once

#include <cblas.h>
#include <dnnl.h>

#include <cstdint>

namespace uv::cpu {

void throw_dnnl_error(dnnl_status_t status, int64_t m, int64_t n, int64_t k);

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                          lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) throw_dnnl_error(status, m, n, k);
}

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                 int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace uv::cpu
