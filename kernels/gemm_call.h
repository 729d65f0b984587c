// One row-major float32 product with an optional bias epilogue, as the GEMM orchestrations of
// kernels/predicted_linear_algorithm.h hand it to a backend that can fuse the epilogue into the
// product (cuBLASLt: kernels/cuda/cublaslt_gemm.h). Plain C++: no CUDA header needed.
#pragma once

#include <cstdint>
#include <cstddef>

namespace uv {

enum class GemmEpilogue : uint8_t {
  None,
  Bias,          // C (m×n) += bias (n) on every row
  BiasGradient,  // bias (n) = Σ_p op(B)[p, :] over the k rows of op(B), written (not added);
                 // fused only for an untransposed B and alpha = 1 (cuBLASLt's BGRADA)
};

// C (m×n) = alpha·op(A)·op(B) + beta·C, `count` products at constant strides (A_i = a + i·stride_a,
// ...), as gemm_batched. With an epilogue and count > 1, product i's bias is bias + i·n.
struct GemmCall {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0.f;
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t count = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  GemmEpilogue epilogue = GemmEpilogue::None;
  float* bias = nullptr;  // read (Bias) or written (BiasGradient)
};

// The largest power of two, up to 256, dividing a device address: the alignment cuBLASLt's
// heuristic is told, so it never picks a kernel that needs more.
inline int64_t pointer_alignment(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  if (address == 0) return 256;
  int64_t alignment = 1;
  while (alignment < 256 && (address & static_cast<uintptr_t>(alignment)) == 0) alignment <<= 1;
  return alignment;
}

}  // namespace uv
