// CUDA im2col, col2im and max-pooling (NHWC, kernels/conv2d_args.h): the twins of kernels/cpu/conv2d.h,
// sharing its index arithmetic; and the filter-bank transpose of the cuDNN paths. col2im and the pooling backward gather per input element (no atomics),
// summing windows in the CPU's order, so results are deterministic and equal the CPU's.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/conv2d_args.h"

namespace uv::cuda {

void im2col(const Conv2dShape& s, const float* x, float* cols, cudaStream_t stream);
void col2im(const Conv2dShape& s, const float* dcols, float* dx, cudaStream_t stream);
void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, cudaStream_t stream);
void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx, cudaStream_t stream);
// out (cols × rows) (+)= aᵀ, a (rows × cols), both row-major: a filter bank between the engine's
// (p·p·C_in, F) layout and cuDNN's KRSC (F, p, p, C_in), each way.
void transpose(const float* a, int64_t rows, int64_t cols, float* out, GradientMode mode, cudaStream_t stream);

}  // namespace uv::cuda
