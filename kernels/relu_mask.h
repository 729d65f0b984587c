// The ReLU bit mask's layout, shared by the CPU and CUDA kernels and the ops that plan its buffer:
// ⌈n/32⌉ uint32 words, bit i % 32 of word i / 32 set where x_i > 0. Plain C++ (host and device).
#pragma once

#include <cstdint>

#include "engine/core/host_device.h"

namespace uv {

UV_HOST_DEVICE inline int64_t relu_mask_words(int64_t n) { return (n + 31) / 32; }
UV_HOST_DEVICE inline bool relu_mask_bit(const uint32_t* mask, int64_t i) { return (mask[i / 32] >> (i % 32)) & 1u; }

}  // namespace uv
