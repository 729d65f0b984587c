// The device shuffle (see shuffle.h): Philox keys, then one CUB radix sort.
#include "kernels/cuda/shuffle.h"

#include <cub/device/device_radix_sort.cuh>

#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"

namespace uv::cuda {

namespace {

__global__ void shuffle_keys_kernel(uint64_t* keys, int32_t* index, int64_t n, uint64_t seed, uint64_t stream_id) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    keys[i] = philox_bits64(seed, stream_id, static_cast<uint64_t>(i));
    index[i] = static_cast<int32_t>(i);
  }
}

constexpr size_t kAlign = 256;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// CUB's scratch for n pairs (a size query: no device work).
size_t cub_bytes(int64_t n) {
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                             static_cast<uint64_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), static_cast<int>(n)));
  return bytes;
}

}  // namespace

size_t shuffled_order_scratch_bytes(int64_t n) {
  const size_t count = static_cast<size_t>(n);
  return 2 * aligned(count * sizeof(uint64_t)) + aligned(count * sizeof(int32_t)) + aligned(cub_bytes(n));
}

void shuffled_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream_id, void* scratch,
                    size_t scratch_bytes, cudaStream_t stream) {
  UV_CHECK(n > 0 && n <= INT32_MAX, "shuffled_order: " << n << " examples do not fit int32 indices");
  UV_CHECK(scratch_bytes >= shuffled_order_scratch_bytes(n), "shuffled_order: scratch too small");
  const size_t count = static_cast<size_t>(n);
  char* base = static_cast<char*>(scratch);
  uint64_t* keys = reinterpret_cast<uint64_t*>(base);                                        // (n)
  uint64_t* sorted_keys = reinterpret_cast<uint64_t*>(base + aligned(count * sizeof(uint64_t)));  // (n)
  int32_t* index = reinterpret_cast<int32_t*>(base + 2 * aligned(count * sizeof(uint64_t)));     // (n)
  void* cub_scratch = base + 2 * aligned(count * sizeof(uint64_t)) + aligned(count * sizeof(int32_t));
  size_t cub_scratch_bytes = cub_bytes(n);
  shuffle_keys_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(keys, index, n, seed, stream_id);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(cub_scratch, cub_scratch_bytes, keys, sorted_keys, index, order,
                                             static_cast<int>(n), 0, 64, stream));
}

}  // namespace uv::cuda
