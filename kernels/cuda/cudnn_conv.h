// cuDNN convolutions of the CUDA backend (legacy cudnnConvolution* API, NHWC tensors, KRSC filters):
// a handle on the backend's stream, descriptors and algorithms chosen once per distinct shape, one
// workspace grown on demand from the backend's pool; then the dense, materialise and chain conv
// layers on them (kernels/conv2d_krsc_algorithm.h over cuBLAS and cuDNN; which layers come here,
// and with what buffers: kernels/cudnn_conv_shape.h). Host code, ordered on the backend's stream.
#pragma once

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "engine/core/tensor.h"
#include "kernels/conv2d_args.h"
#include "kernels/cuda/cublas_ops.h"

namespace uv::cuda {

class CudnnConv {
 public:
  // `allocate` hands out device memory ordered on `stream` (the backend's pool, so the workspace
  // counts in the backend's allocated and peak bytes).
  CudnnConv(cudaStream_t stream, std::function<Buffer(size_t)> allocate);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  // A convolution of x (B, H, W, C_in) with `filters` KRSC filters (filters, p, p, C_in) on the
  // geometry of `s` (its out_c is ignored: the output has `filters` channels). All overwrite.
  // y (B, Ho, Wo, filters) = x ⋆ w
  void forward(const Conv2dShape& s, int64_t filters, const float* x, const float* w, float* y);
  // dx (B, H, W, C_in) = the adjoint of forward applied to dy (B, Ho, Wo, filters)
  void backward_data(const Conv2dShape& s, int64_t filters, const float* w, const float* dy, float* dx);
  // dw (filters, p, p, C_in) = Σ_rows dy ⊗ the input window of the row
  void backward_filter(const Conv2dShape& s, int64_t filters, const float* x, const float* dy, float* dw);

  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  struct Plan;
  Plan& plan(const Conv2dShape& s, int64_t filters);
  void* workspace(size_t bytes);

  cudnnHandle_t handle_ = nullptr;
  std::function<Buffer(size_t)> allocate_;
  // Key: batch, in_h, in_w, in_c, filters, kernel, stride, pad_top, pad_left.
  std::map<std::array<int64_t, 9>, std::unique_ptr<Plan>> plans_;
  Buffer workspace_;  // one for every call: the calls are ordered on one stream
};

// The conv layers on cuDNN (cuda_conv2d_route(...) == Conv2dRoute::Cudnn), with the buffers of
// cudnn_conv2d_buffers; the GEMMs of the predicted layers and the biases go through `blas`.
void cudnn_conv2d_forward(CudnnConv& cudnn, CublasOps blas, const Conv2dForwardArgs& args);
void cudnn_conv2d_backward(CudnnConv& cudnn, CublasOps blas, const Conv2dBackwardArgs& args);

}  // namespace uv::cuda
