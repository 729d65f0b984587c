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
// The alignment every one of `count` floats arrays at p + i·stride keeps: p's, or less where the
// stride breaks it (a batch of J columns r = 7 floats apart is 4-byte aligned after the first).
inline int64_t batch_alignment(const float* p, int64_t count, int64_t stride) {
  const int64_t first = pointer_alignment(p);
  if (count <= 1 || p == nullptr) return first;
  const int64_t step = pointer_alignment(reinterpret_cast<const void*>(static_cast<uintptr_t>(stride) * sizeof(float)));
  return first < step ? first : step;
}

// A plain product's call (no epilogue), as gemm_batched's arguments.
inline GemmCall gemm_call(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta, bool tb,
                          int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                          int64_t ldb, float beta, float* c, int64_t ldc) {
  GemmCall g;
  g.ta = ta; g.tb = tb; g.m = m; g.n = n; g.k = k; g.alpha = alpha; g.a = a; g.lda = lda; g.b = b; g.ldb = ldb;
  g.beta = beta; g.c = c; g.ldc = ldc; g.count = count; g.stride_a = stride_a; g.stride_b = stride_b;
  g.stride_c = stride_c;
  return g;
}

}  // namespace uv
