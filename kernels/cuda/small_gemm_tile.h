// The small fused GEMM's tile shape and launch arithmetic (kernels/cuda/small_gemm.cu), in plain
// C++ so CPU tests check that the grid covers every output once, in builds with or without CUDA.
//
// Why a GEMM of our own: at the paper's batch of 100 rows a layer's product Y = T·V + b is a few
// MFLOP, and cuBLAS's kernel for it and the bias+activation kernel after it each cost a launch's
// latency. One kernel with the bias and activation in its epilogue should do the product in about
// the time of one of them (to be measured: tools/gpu-check run gemm). Such a product is bound by memory latency, not arithmetic: small tiles give
// many blocks (100 × 500 is 64 of them), and a deep k-slice (all of a MNIST layer's k = 78 at once)
// puts every load of a block in flight before the first wait. Only for small products: beyond
// kSmallGemmMaxFlops cuBLAS's tuned kernels win.
#pragma once

#include <cstdint>

#include "engine/core/host_device.h"

namespace uv::cuda {

struct SmallGemmTile {
  static constexpr int kRows = 32;      // rows of C per block
  static constexpr int kCols = 32;      // columns of C per block
  static constexpr int kDepth = 128;    // the k-slice staged in shared memory at a time
  static constexpr int kThreads = 256;  // 16 × 16: each thread 2 rows × 2 columns
  static constexpr int kThreadCols = 16;
  static constexpr int kRowsPerThread = kRows / (kThreads / kThreadCols);  // 2
  static constexpr int kColsPerThread = kCols / kThreadCols;               // 2
  static constexpr int kALoads = kRows * kDepth / kThreads;                // 16 a thread
  static constexpr int kBLoads = kDepth * kCols / kThreads;                // 16 a thread
  static_assert(kRowsPerThread * (kThreads / kThreadCols) == kRows, "rows split evenly");
  static_assert(kColsPerThread * kThreadCols == kCols, "columns split evenly");
  static_assert(kALoads * kThreads == kRows * kDepth && kBLoads * kThreads == kDepth * kCols, "loads split evenly");
};

// 2·m·n·k ≤ 32 Mi: a MNIST layer (100 × 500 × 78) is 7.8 MFLOP; the wide MLP's 100 × 4096 × 204, 167.
constexpr int64_t kSmallGemmMaxFlops = int64_t{32} << 20;

UV_HOST_DEVICE inline int64_t small_gemm_row_blocks(int64_t m) {
  return (m + SmallGemmTile::kRows - 1) / SmallGemmTile::kRows;
}
UV_HOST_DEVICE inline int64_t small_gemm_col_blocks(int64_t n) {
  return (n + SmallGemmTile::kCols - 1) / SmallGemmTile::kCols;
}
// Thread t's first row and column within its block's tile; its outputs are rows +i (i < 2) and
// columns +16c (c < 2), so a warp's 32 threads cover 2 rows × 16 adjacent columns per store.
UV_HOST_DEVICE inline int small_gemm_thread_row(int t) {
  return (t / SmallGemmTile::kThreadCols) * SmallGemmTile::kRowsPerThread;
}
UV_HOST_DEVICE inline int small_gemm_thread_col(int t) { return t % SmallGemmTile::kThreadCols; }
// Output (row, col) of thread t's element (i, c) in block (bx = column block, by = row block).
UV_HOST_DEVICE inline int64_t small_gemm_row(int64_t by, int t, int i) {
  return by * SmallGemmTile::kRows + small_gemm_thread_row(t) + i;
}
UV_HOST_DEVICE inline int64_t small_gemm_col(int64_t bx, int t, int c) {
  return bx * SmallGemmTile::kCols + small_gemm_thread_col(t) + c * SmallGemmTile::kThreadCols;
}
inline bool small_gemm_fits(int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kSide = int64_t{1} << 25;  // each factor first, so the product cannot overflow
  return m > 0 && n > 0 && k > 0 && m < kSide && n < kSide && k < kSide &&
         2 * m * n * k <= kSmallGemmMaxFlops &&
         small_gemm_row_blocks(m) <= 65535;  // gridDim.y's limit
}

}  // namespace uv::cuda
