// data.shuffle = device on CUDA: an epoch's order made on the device, the twin of
// uv::philox_key_order (engine/core/key_order.h), against which it is tested.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace uv::cuda {

// Bytes of scratch shuffled_order needs for n examples (keys, sorted keys, indices, CUB's own).
size_t shuffled_order_scratch_bytes(int64_t n);
// order (n) = 0..n-1 sorted by philox_bits64(seed, stream_id, i), ties by index: Philox keys
// drawn on the device, then CUB's stable radix sort of (key, index) pairs.
void shuffled_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream_id, void* scratch,
                    size_t scratch_bytes, cudaStream_t stream);

}  // namespace uv::cuda
