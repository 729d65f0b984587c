// onthefly_w: the predicted layer as a tiled GEMM whose W tiles are rebuilt in shared memory from
// U and V tiles inside the main loop, so no K×N W ever exists in device memory (spec section 7:
// 2·M·K·N FLOPs plus 2·K·N·r per row tile of M to rebuild W).
//   forward:         Y = X·W + b, W chunks rebuilt per output tile.
//   backward-data:   dX = dY·Wᵀ, Wᵀ chunks rebuilt the same way.
//   backward-weight: dV_j = T_jᵀ·dY_j needs T = X·U; the backend recomputes T with cuBLAS into the
//                    layer's backward scratch (predicted_linear_backward_scratch_floats) rather
//                    than keeping it from forward, and db comes from the column sums.
// Columns (J > 1) live inside the same launch: a forward output tile and a backward reduction
// chunk each belong to one column block (kernels/cuda/onthefly_w_tile.h).
// The conv form (implicit GEMM, the predicted convolution with no im2col matrix in memory):
//   forward:         Y (B·Ho·Wo, C_out) = im2col(X)·W + b: the forward kernel with its A tiles
//                    gathered from the NHWC input (Im2colRowsA) instead of read from a matrix.
//   backward-weight: T = im2col(X)·U by a kernel with the same implicit A tiles and B = U, into
//                    the layer's backward scratch; then dV and db as above.
//   backward-data:   dcols = dY·Wᵀ by the backward-data kernel, then col2im (kernels/cuda/conv2d.h).
// First version: float32 SIMT, 64×64 output tiles, 4×4 register tiles. Timed on an H200
// (2026-11-26, docs/gpu-results.md, first session): 4–8 TFLOP/s at M = K = N = 4096, and 0.09–0.20×
// the best cuBLAS path on the paper's shapes' forward; `auto` never picks it (engine/ops/strategy_cost.h).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/onthefly_w_tile.h"

namespace uv::cuda {

// Y (M, N) = X (M, K) · W + bias (N, or null); writes nothing K×N.
void onthefly_w_forward(const PredictedLinearShape& s, const float* x, const float* u, const float* v,
                        const float* bias, float* y, cudaStream_t stream);
// dX (M, K) = dY (M, N) · Wᵀ.
void onthefly_w_backward_data(const PredictedLinearShape& s, const float* dy, const float* u,
                              const float* v, float* dx, cudaStream_t stream);

// The conv form, X (B, H, W, C_in) NHWC, U (p·p·C_in, J·r), V (J, r, C_out/J):
// Y (B, Ho, Wo, C_out) = im2col(X)·W + bias, no im2col matrix and no W in memory.
void onthefly_w_conv2d_forward(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x, const float* u,
                               const float* v, const float* bias, float* y, cudaStream_t stream);
// T (B·Ho·Wo, J·r) = im2col(X)·U, no im2col matrix in memory.
void onthefly_w_conv2d_t(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x, const float* u,
                         float* t, cudaStream_t stream);

}  // namespace uv::cuda
