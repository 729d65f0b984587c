// The 3xTF32 tensor-core GEMM's tile shapes, load mapping and rounding (kernels/cuda/tf32x3_gemm.cu),
// in plain C++ so CPU tests check the arithmetic in builds with or without CUDA.
//
// Why: float32 SIMT GEMMs (cublasSgemm) top out near 50 TFLOP/s on an H100/H200, and the chain's
// products there are what issue 3's fused strategy has to beat by 1.3×. The tensor cores take TF32
// operands: float32 with a 10-bit mantissa, too coarse alone (a 4096-long dot product loses about
// three digits). 3xTF32 (as in CUTLASS) splits each operand into a TF32 "big" part and the TF32
// rounding of what is left, x = big + small, and sums big·big + big·small + small·big in float32,
// dropping only small·small (about 2⁻²² relative): float32 accuracy from three tensor-core products.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/core/host_device.h"

namespace uv::cuda {

// A block computes a kRows × kCols tile of C in k-slices of kDepth staged in shared memory; each of
// its warps a kWarpRows × kWarpCols part of it, as 16×16 WMMA accumulator fragments.
template <int Rows, int Cols, int WarpRows, int WarpCols>
struct Tf32x3TileT {
  static constexpr int kRows = Rows, kCols = Cols, kWarpRows = WarpRows, kWarpCols = WarpCols;
  static constexpr int kDepth = 32;
  static constexpr int kWarps = (Rows / WarpRows) * (Cols / WarpCols);
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWarpsAcross = Cols / WarpCols;
  static constexpr int kFragRows = WarpRows / 16, kFragCols = WarpCols / 16;
  // Row pitches in shared memory: 4 floats over the tile keep WMMA's 32-byte alignment of every
  // fragment's first element and move successive rows to other banks.
  static constexpr int kAPitch = kDepth + 4, kBPitch = Cols + 4;
  static constexpr int kALoads = Rows * kDepth / kThreads, kBLoads = kDepth * Cols / kThreads;
  static_assert(Rows % WarpRows == 0 && Cols % WarpCols == 0 && WarpRows % 16 == 0 && WarpCols % 16 == 0,
                "warps tile the block in 16×16 fragments");
  static_assert(kALoads * kThreads == Rows * kDepth && kBLoads * kThreads == kDepth * Cols, "loads split evenly");
  static_assert(kWarps * 256 <= Rows * kAPitch, "the epilogue's 16×16 per warp fits in A's tile");
};
// 128×128 tiles of 8 warps, for products with enough tiles to fill the GPU; 64×64 of 4 warps for
// thin ones (the chain's X·U and dV = Tᵀ·dY at small r have an M×r or r×N output).
using Tf32x3BigTile = Tf32x3TileT<128, 128, 64, 32>;
using Tf32x3SmallTile = Tf32x3TileT<64, 64, 32, 32>;

struct TileElement {
  int row, col;
};
// Load e (e = thread + i·threads) of a k-slice: A's element (row of the tile, k within the slice),
// B's (k within the slice, column of the tile). Adjacent e walk the source's contiguous dimension
// so a warp's loads coalesce: k for A stored (m×k), rows for op(A) = Aᵀ stored (k×m); columns for
// B stored (k×n), k for op(B) = Bᵀ stored (n×k).
template <typename Tile>
UV_HOST_DEVICE inline TileElement tf32x3_a_element(int e, bool trans_a) {
  return trans_a ? TileElement{e % Tile::kRows, e / Tile::kRows} : TileElement{e / Tile::kDepth, e % Tile::kDepth};
}
template <typename Tile>
UV_HOST_DEVICE inline TileElement tf32x3_b_element(int e, bool trans_b) {
  return trans_b ? TileElement{e % Tile::kDepth, e / Tile::kDepth} : TileElement{e / Tile::kCols, e % Tile::kCols};
}
template <typename Tile>
UV_HOST_DEVICE inline int64_t tf32x3_row_blocks(int64_t m) {
  return (m + Tile::kRows - 1) / Tile::kRows;
}
template <typename Tile>
UV_HOST_DEVICE inline int64_t tf32x3_col_blocks(int64_t n) {
  return (n + Tile::kCols - 1) / Tile::kCols;
}
// The big tiles unless they give fewer than four blocks per multiprocessor (one big block fits on a
// multiprocessor at a time: 255 registers a thread), so that the last wave is a small part.
inline bool tf32x3_use_small_tiles(int64_t count, int64_t m, int64_t n, int multiprocessors) {
  return count * tf32x3_row_blocks<Tf32x3BigTile>(m) * tf32x3_col_blocks<Tf32x3BigTile>(n) < 4 * int64_t{multiprocessors};
}
// Split-K for products with few output tiles and a long k (the weight gradients dV = Tᵀ·dY, whose k
// is the batch): `splits` slices of k, each a multiple of the k-slice, write their partial products
// to a workspace (splits × count × m × n floats) that a second kernel sums in order, so the result
// does not depend on timing. 1: no split.
struct Tf32x3Split {
  int splits = 1;
  int64_t k_per_split = 0;
};
constexpr int kTf32x3MaxSplits = 16;
inline Tf32x3Split tf32x3_split(int64_t count, int64_t m, int64_t n, int64_t k, int64_t blocks, int multiprocessors,
                                int64_t workspace_floats) {
  Tf32x3Split out;
  out.k_per_split = k;
  if (blocks >= 2 * int64_t{multiprocessors} || m * n == 0) return out;
  constexpr int64_t kMinDepth = 8 * Tf32x3BigTile::kDepth;  // each split at least 256 deep
  int64_t splits = (2 * int64_t{multiprocessors} + blocks - 1) / blocks;
  splits = splits < k / kMinDepth ? splits : k / kMinDepth;
  splits = splits < kTf32x3MaxSplits ? splits : kTf32x3MaxSplits;
  const int64_t fit = workspace_floats / (count * m * n);
  splits = splits < fit ? splits : fit;
  if (splits < 2 || count * splits > 65535) return out;
  const int64_t depth = Tf32x3BigTile::kDepth;
  out.k_per_split = ((k + splits - 1) / splits + depth - 1) / depth * depth;
  out.splits = static_cast<int>((k + out.k_per_split - 1) / out.k_per_split);  // rounding may leave fewer
  return out;
}
// Row tiles on gridDim.x (up to 2³¹ − 1), column tiles on y and the products on z (up to 65535).
inline bool tf32x3_fits(int64_t count, int64_t m, int64_t n) {
  return count >= 1 && count <= 65535 && m >= 0 && n >= 0 &&
         tf32x3_row_blocks<Tf32x3SmallTile>(m) <= int64_t{0x7fffffff} && tf32x3_col_blocks<Tf32x3SmallTile>(n) <= 65535;
}

// The host's copy of cvt.rna.tf32.f32 (wmma::__float_to_tf32): round to nearest, ties away from
// zero, keeping 10 of float32's 23 mantissa bits. Finite inputs only.
inline float tf32_round_host(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits = (bits + 0x1000u) & 0xffffe000u;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}
// One term of the kernel's sum, as it forms it: a·b with each operand split into TF32 parts.
inline float tf32x3_product_host(float a, float b) {
  const float a_big = tf32_round_host(a), a_small = tf32_round_host(a - a_big);
  const float b_big = tf32_round_host(b), b_small = tf32_round_host(b - b_big);
  return a_small * b_big + a_big * b_small + a_big * b_big;
}

}  // namespace uv::cuda
