// chain_fused: the chain strategy with each row tile of T = X·U kept in shared memory.
//   forward:        one kernel per row tile computes T_tile (on chip), writes it once for
//                   backward, and streams V through it into Y_tile; W never exists.
//   backward-data:  one kernel per row tile computes dT_tile = dY_tile·Vᵀ on chip and
//                   dX_tile = dT_tile·Uᵀ from it; dT never reaches device memory.
//   backward-weight dV = Tᵀ·dY (a reduction over all rows) stays a cuBLAS product on the saved T.
// First version: float32 SIMT, correct before fast; tiling for speed comes with a GPU to measure on.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/chain_fused_tile.h"

namespace uv::cuda {

void chain_fused_forward(const PredictedLinearShape& s, const float* x, const float* u, const float* v,
                         const float* bias, float* t /* (M, J·r), rows t_ld apart */, float* y,
                         cudaStream_t stream);
void chain_fused_backward_data(const PredictedLinearShape& s, const float* dy, const float* u,
                               const float* v, float* dx, cudaStream_t stream);

}  // namespace uv::cuda
