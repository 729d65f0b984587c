// The small fused GEMM (kernels/cuda/small_gemm.h): a block per 32×64 tile of y, k in slices of 16
// staged in shared memory, each thread 2×4 outputs in registers, the bias and activation applied
// as the outputs leave.
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
  const int tr = (t / T::kThreadCols) * T::kRowsPerThread, tc = t % T::kThreadCols;
  float acc[T::kRowsPerThread][T::kColsPerThread] = {};
  for (int64_t k0 = 0; k0 < k; k0 += T::kDepth) {
    // Stage A (32 × 16: 2 a thread) and B (16 × 64: 4 a thread), zeros beyond the edges.
    for (int e = t; e < T::kRows * T::kDepth; e += T::kThreads) {
      const int r = e / T::kDepth, kk = e % T::kDepth;
      const int64_t gr = row0 + r, gk = k0 + kk;
      a_tile[kk][r] = gr < m && gk < k ? a[gr * lda + gk] : 0.f;
    }
    for (int e = t; e < T::kDepth * T::kCols; e += T::kThreads) {
      const int kk = e / T::kCols, c = e % T::kCols;
      const int64_t gk = k0 + kk, gc = col0 + c;
      b_tile[kk][c] = gk < k && gc < n ? b[gk * ldb + gc] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < T::kDepth; ++kk) {
      float av[T::kRowsPerThread], bv[T::kColsPerThread];
#pragma unroll
      for (int i = 0; i < T::kRowsPerThread; ++i) av[i] = a_tile[kk][tr + i];
#pragma unroll
      for (int c = 0; c < T::kColsPerThread; ++c) bv[c] = b_tile[kk][tc + c * T::kThreadCols];
#pragma unroll
      for (int i = 0; i < T::kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < T::kColsPerThread; ++c) acc[i][c] += av[i] * bv[c];
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
