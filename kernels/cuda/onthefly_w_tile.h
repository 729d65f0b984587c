// onthefly_w's tile shape, shared-memory layout and index arithmetic, in plain C++ (no CUDA
// headers): the kernels of kernels/cuda/onthefly_w.cu use it, and so do CPU code (the `auto` cost
// model counts W rebuilds per row tile) and CPU tests, in builds with or without CUDA.
//
// Both kernels are one tiled product A·B with B rebuilt in shared memory, chunk by chunk:
//   forward        Y (M×N)  = X (M×K)  · W (K×N),  W[k, j·nc + c]  = Σ_q U[k, j·r + q] · V_j[q, c]
//   backward-data  dX (M×K) = dY (M×N) · Wᵀ (N×K), Wᵀ[j·nc + c, k] = Σ_q V_j[q, c] · U[k, j·r + q]
// A block owns a kRows × kCols tile of the output and walks the reduction kChunk at a time; each
// step stages A's chunk (kChunk × kRows, transposed) and builds B's chunk (kChunk × kCols) from
// kRankChunk-wide slices of the two factors. A reduction chunk and a forward output tile never
// straddle a column block, so every B chunk comes from one U_j and one V_j.
//
// The forward kernel's A operand is an `A` type (the kernel's template parameter, two
// instantiations): DenseRowsA reads X (M×K) row-major; Im2colRowsA gathers the rows of im2col(X)
// straight from the NHWC input (implicit GEMM: the predicted convolution with no im2col matrix in
// memory). Each thread stages the same kAPerThread rows of A in every chunk (onthefly_w_a_entry),
// so it resolves its rows once (A::row) and only the column part per chunk (A::offset).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/core/host_device.h"
#include "kernels/conv2d_args.h"
#include "kernels/predicted_linear_args.h"

namespace uv::cuda {

struct OnTheFlyWTile {
  static constexpr int kRows = 64;        // output rows per block (rows of X or dY)
  static constexpr int kCols = 64;        // output columns per block (of N forward, of K backward)
  static constexpr int kChunk = 16;       // reduction depth per step (K forward, N/J backward)
  static constexpr int kRankChunk = 16;   // r staged per factor slice while a B chunk is built
  static constexpr int kThreadRows = 16;  // threads as a kThreadRows × kThreadCols grid,
  static constexpr int kThreadCols = 16;  // each with a kMicroRows × kMicroCols register tile
  static constexpr int kThreads = kThreadRows * kThreadCols;
  static constexpr int kMicroRows = kRows / kThreadRows;
  static constexpr int kMicroCols = kCols / kThreadCols;
  static constexpr int kPad = 4;          // row padding of the transposed tiles (bank conflicts)
  static constexpr int kMaxRowTiles = 65535;  // gridDim.y limit: M ≤ kRows · kMaxRowTiles

  static_assert(kRows % kThreadRows == 0 && kCols % kThreadCols == 0, "whole register tiles");
  static_assert(kThreads % 32 == 0, "whole warps");
  static_assert(kChunk * kRankChunk == kThreads, "one left-factor element per thread");
  static_assert((kChunk * kCols) % kThreads == 0, "B chunk entries split evenly over threads");
  static_assert((kRankChunk * kCols) % kThreads == 0, "right-factor slice split evenly");
  static_assert((kChunk * kRows) % kThreads == 0, "A chunk split evenly");
  static constexpr int kBEntriesPerThread = kChunk * kCols / kThreads;
  static constexpr int kRightPerThread = kRankChunk * kCols / kThreads;
  static constexpr int kAPerThread = kChunk * kRows / kThreads;
};

// Shared-memory layout (floats) of both kernels: one static array carved at these offsets.
struct OnTheFlyWSmem {
  using T = OnTheFlyWTile;
  static constexpr int kAStride = T::kRows + T::kPad;          // a[l][row]: A chunk, transposed
  static constexpr int kBStride = T::kCols;                    // b[l][col]: the rebuilt B chunk
  static constexpr int kLeftStride = T::kRankChunk + 1;        // left[l][q]: U or Vᵀ slice
  static constexpr int kRightStride = T::kCols + T::kPad;      // right[q][col]: V or Uᵀ slice
  static constexpr int kA = 0;
  static constexpr int kB = kA + T::kChunk * kAStride;
  static constexpr int kLeft = kB + T::kChunk * kBStride;
  static constexpr int kRight = kLeft + T::kChunk * kLeftStride;
  static constexpr int kFloats = kRight + T::kRankChunk * kRightStride;
};
constexpr size_t onthefly_w_smem_bytes() { return sizeof(float) * OnTheFlyWSmem::kFloats; }
static_assert(onthefly_w_smem_bytes() <= 48 * 1024, "static shared memory limit");

// A contiguous run of columns inside one column block: column block `column`, offsets
// [first, first + extent) within it.
struct ColumnSpan {
  int64_t column = 0;
  int64_t first = 0;
  int64_t extent = 0;
};

UV_HOST_DEVICE inline int64_t onthefly_w_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
UV_HOST_DEVICE inline int64_t onthefly_w_min(int64_t a, int64_t b) { return a < b ? a : b; }

// Blocks along M (gridDim.y of both kernels) and the rows of row tile `tile` (the last may be short).
UV_HOST_DEVICE inline int64_t onthefly_w_row_tiles(int64_t m) {
  return onthefly_w_ceil_div(m, OnTheFlyWTile::kRows);
}
UV_HOST_DEVICE inline int64_t onthefly_w_tile_rows(int64_t tile, int64_t m) {
  return onthefly_w_min(OnTheFlyWTile::kRows, m - tile * OnTheFlyWTile::kRows);
}

// Forward: each column block gets ceil(N/J / kCols) output tiles of its own, so a tile never
// straddles two blocks (a short last tile per block when kCols does not divide N/J).
UV_HOST_DEVICE inline int64_t onthefly_w_tiles_per_column(int64_t n_per_column) {
  return onthefly_w_ceil_div(n_per_column, OnTheFlyWTile::kCols);
}
UV_HOST_DEVICE inline int64_t onthefly_w_forward_col_tiles(const PredictedLinearShape& s) {
  return s.columns * onthefly_w_tiles_per_column(s.n_per_column());
}
// The output columns of forward tile `tile` (blockIdx.x).
UV_HOST_DEVICE inline ColumnSpan onthefly_w_forward_tile(int64_t tile, int64_t n_per_column) {
  const int64_t per_column = onthefly_w_tiles_per_column(n_per_column);
  ColumnSpan span;
  span.column = tile / per_column;
  span.first = (tile % per_column) * OnTheFlyWTile::kCols;
  span.extent = onthefly_w_min(OnTheFlyWTile::kCols, n_per_column - span.first);
  return span;
}

// Backward-data: output tiles along K (gridDim.x); the reduction over N walks each column block
// in chunks of kChunk, a short last chunk per block.
UV_HOST_DEVICE inline int64_t onthefly_w_backward_col_tiles(int64_t k) {
  return onthefly_w_ceil_div(k, OnTheFlyWTile::kCols);
}
UV_HOST_DEVICE inline int64_t onthefly_w_backward_chunks(const PredictedLinearShape& s) {
  return s.columns * onthefly_w_ceil_div(s.n_per_column(), OnTheFlyWTile::kChunk);
}
UV_HOST_DEVICE inline ColumnSpan onthefly_w_backward_chunk(int64_t chunk, int64_t n_per_column) {
  const int64_t per_column = onthefly_w_ceil_div(n_per_column, OnTheFlyWTile::kChunk);
  ColumnSpan span;
  span.column = chunk / per_column;
  span.first = (chunk % per_column) * OnTheFlyWTile::kChunk;
  span.extent = onthefly_w_min(OnTheFlyWTile::kChunk, n_per_column - span.first);
  return span;
}


// ---- the A operand ------------------------------------------------------------------------------

// Entry e of thread `thread` in the staged A chunk: tile row `row`, chunk column `l` (l fastest,
// so a warp reads consecutive columns of a dense row).
struct AEntry {
  int row = 0;
  int l = 0;
};
UV_HOST_DEVICE inline AEntry onthefly_w_a_entry(int thread, int e) {
  const int entry = thread + OnTheFlyWTile::kThreads * e;
  return AEntry{entry / OnTheFlyWTile::kChunk, entry % OnTheFlyWTile::kChunk};
}

// A (M×K) row-major with leading dimension `ld`: X forward, dY (ld = N) in backward-data.
struct DenseRowsA {
  int64_t ld = 0;
  struct Row {
    int64_t base = 0;  // offset of the row's first element
  };
  UV_HOST_DEVICE Row row(int64_t m) const { return Row{m * ld}; }
  UV_HOST_DEVICE int64_t offset(const Row& r, int64_t col) const { return r.base + col; }
};

// im2col(X) (B·Ho·Wo × p·p·C_in) read in place from X (B, H, W, C_in): element (m, col) is
// conv2d_input_offset(conv, m, col), split into a per-row part (image, window origin) and a
// per-column part (ky, kx, c). −1 where the window reads padding (the loader stages a zero).
struct Im2colRowsA {
  Conv2dShape conv;
  struct Row {
    int64_t image = 0;         // offset of image b in X: b·H·W·C_in
    int64_t iy0 = 0, ix0 = 0;  // the window's top-left input pixel (negative inside top/left padding)
  };
  UV_HOST_DEVICE Row row(int64_t m) const {
    const int64_t ox = m % conv.out_w, oy = (m / conv.out_w) % conv.out_h, b = m / (conv.out_w * conv.out_h);
    return Row{b * conv.in_h * conv.in_w * conv.in_c, oy * conv.stride - conv.pad_top, ox * conv.stride - conv.pad_left};
  }
  UV_HOST_DEVICE int64_t offset(const Row& r, int64_t col) const {
    const int64_t c = col % conv.in_c, kx = (col / conv.in_c) % conv.kernel, ky = col / (conv.in_c * conv.kernel);
    const int64_t iy = r.iy0 + ky, ix = r.ix0 + kx;
    if (iy < 0 || iy >= conv.in_h || ix < 0 || ix >= conv.in_w) return -1;
    return r.image + (iy * conv.in_w + ix) * conv.in_c + c;
  }
};

// Where a staged A element comes from: the offset of entry (row, l) of the chunk at columns
// [col0, col0 + depth) of a tile of `rows` rows, or −1 where the loader stages a zero (past the
// last row or column, or padding). `origin` is a.row(row0 + row).
template <typename A>
UV_HOST_DEVICE inline int64_t onthefly_w_a_source(const A& a, const typename A::Row& origin, AEntry entry,
                                                  int64_t rows, int64_t col0, int64_t depth) {
  if (entry.row >= rows || entry.l >= depth) return -1;
  return a.offset(origin, col0 + entry.l);
}

// ---- the conv form --------------------------------------------------------------------------------

// The predicted-linear shape of a conv layer's im2col rows.
inline PredictedLinearShape onthefly_w_conv2d_linear(const Conv2dShape& c, int64_t rank, int64_t columns) {
  return PredictedLinearShape{c.rows(), c.patch(), c.out_c, rank, columns};
}

// T (B·Ho·Wo × J·r) = im2col(X)·U, the dictionary responses dV needs: output tiles of kCols
// columns of T (gridDim.x; T's columns need no column-block split: U is one K × J·r matrix).
UV_HOST_DEVICE inline int64_t onthefly_w_t_col_tiles(int64_t t_cols) {
  return onthefly_w_ceil_div(t_cols, OnTheFlyWTile::kCols);
}

// Shapes the kernels take (every J and r; M up to the grid's y limit). LowRank's dU needs
// dT = dY·Vᵀ in device memory, which the backend forms with cuBLAS instead.
inline bool onthefly_w_supported(const PredictedLinearShape& s) {
  return s.m > 0 && onthefly_w_row_tiles(s.m) <= OnTheFlyWTile::kMaxRowTiles;
}

}  // namespace uv::cuda
