// TF32 (float32 with 10 of its 23 mantissa bits): the tensor cores' input precision. Host code only.
#pragma once

#include <cstdint>
#include <cstring>

namespace uv {

// x rounded to TF32: to nearest, ties away from zero (cvt.rna.tf32.f32's rounding, and the 3xTF32
// GEMM's split_tf32, kernels/cuda/tf32x3_device.cuh). Finite inputs; ±Inf and NaN keep their bits
// where the addition does not carry into the exponent (it cannot for Inf; a NaN stays a NaN).
inline float tf32_round(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

}  // namespace uv
