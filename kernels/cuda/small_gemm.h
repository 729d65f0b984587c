// One kernel for a small product with its bias and activation: y = act(a·b + bias). See
// small_gemm_tile.h for why and where.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/small_gemm_tile.h"

namespace uv {
enum class Activation;
}

namespace uv::cuda {

// Row-major y (m×n, ld ldy) = act(a (m×k, ld lda) · b (k×n, ld ldb) + bias (n)); bias may be null.
// Not for a ReLU, whose mask bias_activation_forward writes. Requires small_gemm_fits(m, n, k).
void small_gemm_bias_activation(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                int64_t ldb, const float* bias, Activation act, float* y, int64_t ldy,
                                cudaStream_t stream);

}  // namespace uv::cuda
