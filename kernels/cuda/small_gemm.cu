// The small fused GEMM (kernels/cuda/small_gemm.h): a block per 32×32 tile of y, k in slices of
// 128 staged in shared memory (a thread's 32 loads of a slice issued before any is stored), each
// thread 2×2 outputs in registers, the bias and activation applied as the outputs leave.
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/small_gemm.h"

namespace uv::cuda {

__global__ void __launch_bounds__(SmallGemmTile::kThreads)
    small_gemm_bias_activation_kernel(int64_t m, int64_t n, int64_t k, const float* __restrict__ a, int64_t lda,
                                      const float* __restrict__ b, int64_t ldb, const float* __restrict__ bias,
                                      Activation act, float* __restrict__ y, int64_t ldy) {
  using T = SmallGemmTile;
  __shared__ float a_tile[T::kDepth][T::kRows + 1];  // transposed: a thread's two rows are adjacent
  __shared__ float b_tile[T::kDepth][T::kCols];
  const int t = static_cast<int>(threadIdx.x);
  const int64_t row0 = int64_t{blockIdx.y} * T::kRows, col0 = int64_t{blockIdx.x} * T::kCols;
  const int tr = small_gemm_thread_row(t), tc = small_gemm_thread_col(t);
  float acc[T::kRowsPerThread][T::kColsPerThread] = {};
  for (int64_t k0 = 0; k0 < k; k0 += T::kDepth) {
    // Element e = t + it·kThreads of each tile: A's (r = e / kDepth, kk = e % kDepth) and B's
    // (kk = e / kCols, c = e % kCols), adjacent threads on adjacent addresses. All loads first,
    // zeros beyond the edges, then the stores.
    float av[T::kALoads], bv[T::kBLoads];
#pragma unroll
    for (int it = 0; it < T::kALoads; ++it) {
      const int e = t + it * T::kThreads;
      const int64_t gr = row0 + e / T::kDepth, gk = k0 + e % T::kDepth;
      av[it] = gr < m && gk < k ? a[gr * lda + gk] : 0.f;
    }
#pragma unroll
    for (int it = 0; it < T::kBLoads; ++it) {
      const int e = t + it * T::kThreads;
      const int64_t gk = k0 + e / T::kCols, gc = col0 + e % T::kCols;
      bv[it] = gk < k && gc < n ? b[gk * ldb + gc] : 0.f;
    }
#pragma unroll
    for (int it = 0; it < T::kALoads; ++it) {
      const int e = t + it * T::kThreads;
      a_tile[e % T::kDepth][e / T::kDepth] = av[it];
    }
#pragma unroll
    for (int it = 0; it < T::kBLoads; ++it) {
      const int e = t + it * T::kThreads;
      b_tile[e / T::kCols][e % T::kCols] = bv[it];
    }
    __syncthreads();
    const int depth = k - k0 < T::kDepth ? static_cast<int>(k - k0) : T::kDepth;
    for (int kk = 0; kk < depth; ++kk) {
      float x[T::kRowsPerThread], w[T::kColsPerThread];
#pragma unroll
      for (int i = 0; i < T::kRowsPerThread; ++i) x[i] = a_tile[kk][tr + i];
#pragma unroll
      for (int c = 0; c < T::kColsPerThread; ++c) w[c] = b_tile[kk][tc + c * T::kThreadCols];
#pragma unroll
      for (int i = 0; i < T::kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < T::kColsPerThread; ++c) acc[i][c] += x[i] * w[c];
    }
    __syncthreads();  // the tiles are consumed before the next slice overwrites them
  }
#pragma unroll
  for (int i = 0; i < T::kRowsPerThread; ++i) {
    const int64_t row = small_gemm_row(blockIdx.y, t, i);
#pragma unroll
    for (int c = 0; c < T::kColsPerThread; ++c) {
      const int64_t col = small_gemm_col(blockIdx.x, t, c);
      if (row < m && col < n) y[row * ldy + col] = activate(act, bias ? acc[i][c] + bias[col] : acc[i][c]);
    }
  }
}

void small_gemm_bias_activation(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                int64_t ldb, const float* bias, Activation act, float* y, int64_t ldy,
                                cudaStream_t stream) {
  UV_CHECK(small_gemm_fits(m, n, k), "small_gemm_bias_activation: " << m << "×" << n << "×" << k << " is not small");
  UV_CHECK(act != Activation::ReLU, "small_gemm_bias_activation: a ReLU's mask is bias_activation_forward's");
  const dim3 grid(static_cast<unsigned>(small_gemm_col_blocks(n)), static_cast<unsigned>(small_gemm_row_blocks(m)));
  small_gemm_bias_activation_kernel<<<grid, SmallGemmTile::kThreads, 0, stream>>>(m, n, k, a, lda, b, ldb, bias, act,
                                                                                   y, ldy);
  CUDA_CHECK_LAUNCH();
}

}  // namespace uv::cuda
