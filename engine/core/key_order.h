// data.shuffle = device: an epoch's order as 0..n-1 sorted by Philox keys. One definition for the
// host reference (data::sorted_key_permutation) and the CPU backend; the CUDA backend computes the
// same order with CUB's radix sort (kernels/cuda/shuffle.cu), which is stable, hence "ties by index".
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/core/philox.h"

namespace uv {

// order (n) = 0..n-1 sorted by philox_bits64(seed, stream, i), ties by index.
inline void philox_key_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<std::pair<uint64_t, int32_t>> keyed(static_cast<size_t>(n));  // (n): (key, index)
  for (int64_t i = 0; i < n; ++i)
    keyed[i] = {philox_bits64(seed, stream, static_cast<uint64_t>(i)), static_cast<int32_t>(i)};
  std::sort(keyed.begin(), keyed.end());
  for (int64_t i = 0; i < n; ++i) order[i] = keyed[i].second;
}

}  // namespace uv
