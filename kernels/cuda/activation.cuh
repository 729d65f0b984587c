// The activations' device arithmetic, shared by the elementwise kernels and the GEMM epilogues
// (kernels/cuda/small_gemm.cu). CPU twins: kernels/cpu/elementwise.cpp.
#pragma once

#include "engine/backend/backend.h"

namespace uv::cuda {

__device__ __forceinline__ float sigmoid(float x) {
  // Split by sign so __expf never overflows (the CPU twin does the same).
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

__device__ __forceinline__ float activate(Activation act, float v) {
  switch (act) {
    case Activation::Identity: return v;
    case Activation::Sigmoid: return sigmoid(v);
    case Activation::Tanh: return tanhf(v);
    case Activation::ReLU: return v > 0.f ? v : 0.f;
  }
  return v;
}

}  // namespace uv::cuda
