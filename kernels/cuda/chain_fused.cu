// chain_fused kernels (forward, backward-data) and their launchers. See chain_fused.h.
#include "kernels/cuda/chain_fused.h"
#include "kernels/cuda/cuda_check.h"

namespace uv::cuda {

// ------------------------------------------------------------------------------------------------
// kernels
// ------------------------------------------------------------------------------------------------

// Block b owns rows [b·kRows, b·kRows + rows). Each thread owns the same T entries in every K
// chunk, so the accumulation in shared memory needs no atomics.
__global__ void chain_fused_forward_kernel(PredictedLinearShape s, const float* __restrict__ x,
                                           const float* __restrict__ u, const float* __restrict__ v,
                                           const float* __restrict__ bias, float* __restrict__ t,
                                           float* __restrict__ y) {
  extern __shared__ float smem[];
  const int64_t tc = s.t_cols(), nc = s.n_per_column();
  float* t_tile = smem;                                  // (kRows, tc)
  float* x_chunk = smem + ChainFusedTile::kRows * tc;    // (kRows, kKChunk)
  const int64_t row0 = blockIdx.x * int64_t{ChainFusedTile::kRows};
  const int64_t rows = chain_fused_tile_rows(blockIdx.x, s.m);
  for (int64_t i = threadIdx.x; i < rows * tc; i += blockDim.x) t_tile[i] = 0.f;
  for (int64_t k0 = 0; k0 < s.k; k0 += ChainFusedTile::kKChunk) {
    const int64_t width = s.k - k0 < ChainFusedTile::kKChunk ? s.k - k0 : ChainFusedTile::kKChunk;
    __syncthreads();  // the previous chunk is consumed
    for (int64_t i = threadIdx.x; i < rows * ChainFusedTile::kKChunk; i += blockDim.x) {
      const int64_t r = i / ChainFusedTile::kKChunk, kk = i % ChainFusedTile::kKChunk;
      x_chunk[i] = kk < width ? x[(row0 + r) * s.k + k0 + kk] : 0.f;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < rows * tc; i += blockDim.x) {
      const int64_t r = i / tc, c = i % tc;
      float acc = t_tile[i];
      for (int64_t kk = 0; kk < width; ++kk) acc += x_chunk[r * ChainFusedTile::kKChunk + kk] * u[(k0 + kk) * tc + c];
      t_tile[i] = acc;
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < rows * tc; i += blockDim.x)  // once, for backward: rows t_ld apart
    t[(row0 + i / tc) * s.t_ld() + i % tc] = t_tile[i];
  for (int64_t i = threadIdx.x; i < rows * s.n; i += blockDim.x) {
    const int64_t r = i / s.n, col = i % s.n, j = col / nc, cc = col % nc;
    float acc = bias ? bias[col] : 0.f;
    const float* t_row = t_tile + r * tc + j * s.rank;
    const float* v_col = v + j * s.rank * nc + cc;
    for (int64_t q = 0; q < s.rank; ++q) acc += t_row[q] * v_col[q * nc];
    y[(row0 + r) * s.n + col] = acc;
  }
}

__global__ void chain_fused_backward_data_kernel(PredictedLinearShape s, const float* __restrict__ dy,
                                                 const float* __restrict__ u, const float* __restrict__ v,
                                                 float* __restrict__ dx) {
  extern __shared__ float smem[];
  const int64_t tc = s.t_cols(), nc = s.n_per_column();
  float* dt_tile = smem;  // (kRows, tc)
  const int64_t row0 = blockIdx.x * int64_t{ChainFusedTile::kRows};
  const int64_t rows = chain_fused_tile_rows(blockIdx.x, s.m);
  // dT_j = dY_j · V_jᵀ
  for (int64_t i = threadIdx.x; i < rows * tc; i += blockDim.x) {
    const int64_t r = i / tc, c = i % tc, j = c / s.rank;
    const float* dy_row = dy + (row0 + r) * s.n + j * nc;
    const float* v_row = v + c * nc;  // row (j·r + q) of the (J·r, N/J) stack of V_j
    float acc = 0.f;
    for (int64_t cc = 0; cc < nc; ++cc) acc += dy_row[cc] * v_row[cc];
    dt_tile[i] = acc;
  }
  __syncthreads();
  // dX = dT · Uᵀ
  for (int64_t i = threadIdx.x; i < rows * s.k; i += blockDim.x) {
    const int64_t r = i / s.k, k = i % s.k;
    const float* dt_row = dt_tile + r * tc;
    const float* u_row = u + k * tc;
    float acc = 0.f;
    for (int64_t c = 0; c < tc; ++c) acc += dt_row[c] * u_row[c];
    dx[(row0 + r) * s.k + k] = acc;
  }
}

// ------------------------------------------------------------------------------------------------
// launchers
// ------------------------------------------------------------------------------------------------

void chain_fused_forward(const PredictedLinearShape& s, const float* x, const float* u, const float* v,
                         const float* bias, float* t, float* y, cudaStream_t stream) {
  const size_t smem = chain_fused_forward_smem_bytes(s.t_cols());
  CUDA_CHECK(cudaFuncSetAttribute(chain_fused_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  chain_fused_forward_kernel<<<static_cast<unsigned>(chain_fused_blocks(s.m)), ChainFusedTile::kThreads, smem,
                               stream>>>(s, x, u, v, bias, t, y);
  CUDA_CHECK_LAUNCH();
}

void chain_fused_backward_data(const PredictedLinearShape& s, const float* dy, const float* u,
                               const float* v, float* dx, cudaStream_t stream) {
  const size_t smem = chain_fused_backward_smem_bytes(s.t_cols());
  CUDA_CHECK(cudaFuncSetAttribute(chain_fused_backward_data_kernel,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  chain_fused_backward_data_kernel<<<static_cast<unsigned>(chain_fused_blocks(s.m)), ChainFusedTile::kThreads,
                                     smem, stream>>>(s, dy, u, v, dx);
  CUDA_CHECK_LAUNCH();
}

}  // namespace uv::cuda
