// Row-major GEMM on the CPU through OpenBLAS, overloaded for float and double so the same kernel
// templates serve training (float32) and finite-difference checks (float64).
#pragma once

#include <cblas.h>
#ifdef UV_WITH_DNNL
#include <dnnl.h>
#include <omp.h>
#endif

#include <cstdint>

#include "engine/core/error.h"

namespace uv::cpu {

// OpenBLAS splits every GEMM above about 262k multiply-adds across all its threads. On the engine's
// skinny predicted-layer shapes (r = 50..78 on one side, M = 100) the second thread costs more than
// it brings (docs/cpu-gemm.md): a predicted MNIST epoch took 0.355 s at 2 threads against 0.30 s at
// 1. So float GEMMs below kGemmParallelMacs multiply-adds run on one thread and the rest on all of
// OPENBLAS_NUM_THREADS; measured end to end, this is never slower than either fixed choice
// (docs/performance.md). The float64 overload (gradient checks) keeps OpenBLAS's own choice.
constexpr int64_t kGemmParallelMacs = 8'000'000;

// OpenBLAS's thread count at start-up (OPENBLAS_NUM_THREADS, else the cores): what large GEMMs get.
inline int gemm_threads() {
  static const int available = openblas_get_num_threads();
  return available;
}

inline void choose_gemm_threads(int64_t m, int64_t n, int64_t k) {
  if (gemm_threads() > 1) openblas_set_num_threads(m * n * k >= kGemmParallelMacs ? gemm_threads() : 1);
}

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
#ifdef UV_WITH_DNNL
  if (m == 0 || n == 0) return;
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b,
                                          ldb, beta, c, ldc);
  UV_CHECK(status == dnnl_success, "dnnl_sgemm failed with status " << static_cast<int>(status) << " on "
                                                                    << m << "x" << n << "x" << k);
  return;
#endif
  choose_gemm_threads(m, n, k);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                 int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace uv::cpu
