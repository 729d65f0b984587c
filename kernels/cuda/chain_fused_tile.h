// chain_fused's tile shape and launch arithmetic, in plain C++ (no CUDA headers): the kernels of
// kernels/cuda/chain_fused.cu use it, and so do CPU code (the `auto` cost model prices chain_fused
// only where chain_fused_supported holds) and CPU tests, in builds with or without CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/core/host_device.h"
#include "kernels/predicted_linear_args.h"

namespace uv::cuda {

// Tile shape, shared by the kernels and their launchers; tested on the CPU.
struct ChainFusedTile {
  static constexpr int kRows = 16;          // rows of X per block
  static constexpr int kKChunk = 32;        // columns of X staged in shared memory at a time
  static constexpr int kMaxTCols = 512;     // J·r held on chip: kRows·kMaxTCols floats
  // Batches up to this many rows. The kernels spread work over row tiles only, and at M = 4096 the
  // SIMT forward ran at 5% of the cuBLAS chain's speed on an H200 (docs/gpu-results.md): larger
  // batches take the chain on 3xTF32 tensor-core products (kernels/cuda/tf32x3_gemm.h).
  static constexpr int64_t kMaxRows = 1024;
  static constexpr int kThreads = 256;
  static_assert(kThreads % 32 == 0, "whole warps");
};

UV_HOST_DEVICE inline int64_t chain_fused_blocks(int64_t m) {
  return (m + ChainFusedTile::kRows - 1) / ChainFusedTile::kRows;
}
// Rows of the tile that starts at block `block` (the last tile may be short).
UV_HOST_DEVICE inline int64_t chain_fused_tile_rows(int64_t block, int64_t m) {
  const int64_t left = m - block * ChainFusedTile::kRows;
  return left < ChainFusedTile::kRows ? left : ChainFusedTile::kRows;
}
// Shared memory of the forward kernel: the T tile plus the staged X chunk.
UV_HOST_DEVICE inline size_t chain_fused_forward_smem_bytes(int64_t t_cols) {
  return sizeof(float) * static_cast<size_t>(ChainFusedTile::kRows) *
         static_cast<size_t>(t_cols + ChainFusedTile::kKChunk);
}
UV_HOST_DEVICE inline size_t chain_fused_backward_smem_bytes(int64_t t_cols) {
  return sizeof(float) * static_cast<size_t>(ChainFusedTile::kRows) * static_cast<size_t>(t_cols);
}
// Shapes the on-chip kernels take (LowRank, which learns U, runs the cuBLAS chain's backward here).
// chain_fused runs other shapes as the chain on 3xTF32 tensor-core products, and `auto` prices it
// only here.
inline bool chain_fused_supported(const PredictedLinearShape& s) {
  return s.t_cols() <= ChainFusedTile::kMaxTCols && s.m > 0 && s.m <= ChainFusedTile::kMaxRows;
}

}  // namespace uv::cuda
