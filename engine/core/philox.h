// Counter-based RNG (Philox4x32-10, Salmon et al. SC'11). Every draw is a pure function of
// (seed, stream, offset), so the CPU and every device backend produce identical streams and a resumed
// run needs only the offset to continue. Header-only and __host__ __device__ so CUDA kernels share it.
#pragma once

#include <cmath>
#include <cstdint>

#include "engine/core/host_device.h"

namespace uv {

struct Philox4x32 {
  uint32_t v[4];
};

UV_HOST_DEVICE inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// Ten rounds of Philox4x32 on counter (offset, stream) with key = seed.
UV_HOST_DEVICE inline Philox4x32 philox4x32(uint64_t seed, uint64_t stream, uint64_t offset) {
  uint32_t c0 = static_cast<uint32_t>(offset), c1 = static_cast<uint32_t>(offset >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float).
UV_HOST_DEVICE inline float philox_uniform01(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// The i-th uniform float of a stream: element i uses word i%4 of block i/4.
UV_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4x32 block = philox4x32(seed, stream, i >> 2);
  return philox_uniform01(block.v[i & 3]);
}

// 64 random bits for index i (used for shuffles and index draws on the host).
UV_HOST_DEVICE inline uint64_t philox_bits64(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4x32 block = philox4x32(seed, stream, i >> 1);
  const int w = static_cast<int>(i & 1) * 2;
  return (static_cast<uint64_t>(block.v[w]) << 32) | block.v[w + 1];
}

// Named streams so that independent consumers of one seed never overlap.
enum class RngStream : uint64_t {
  kInit = 1,        // parameter initialisation; combined with the parameter index
  kShuffle = 2,     // per-epoch data permutation; combined with the epoch
  kDictionary = 3,  // α draws and random dictionaries; combined with layer and column
  kTest = 99,
};

inline uint64_t rng_stream(RngStream kind, uint64_t sub) {
  return (static_cast<uint64_t>(kind) << 48) ^ sub;
}

}  // namespace uv
