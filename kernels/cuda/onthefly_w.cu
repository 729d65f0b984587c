// onthefly_w kernels (forward, backward-data) and their launchers. See onthefly_w.h, and
// onthefly_w_tile.h for the tile shape, shared-memory layout and index arithmetic.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/onthefly_w.h"

namespace uv::cuda {

namespace {

using Tile = OnTheFlyWTile;
using Smem = OnTheFlyWSmem;

// ------------------------------------------------------------------------------------------------
// device helpers
// ------------------------------------------------------------------------------------------------

// This thread's rows of A, resolved once per block: entry e of every chunk is row
// onthefly_w_a_entry(threadIdx.x, e).row of the tile.
template <typename A>
struct ARows {
  typename A::Row origin[Tile::kAPerThread];
};
template <typename A>
__device__ __forceinline__ ARows<A> resolve_a_rows(const A& a, int64_t row0) {
  ARows<A> rows;
#pragma unroll
  for (int e = 0; e < Tile::kAPerThread; ++e)
    rows.origin[e] = a.row(row0 + onthefly_w_a_entry(static_cast<int>(threadIdx.x), e).row);
  return rows;
}

// Stages A's chunk transposed: a_chunk[l][row] = A(row0 + row, col0 + l), zero outside rows ×
// depth (a short last tile or chunk adds nothing) and where im2col reads padding.
template <typename A>
__device__ __forceinline__ void load_a_chunk(const float* __restrict__ data, const A& a, const ARows<A>& origin,
                                             int64_t rows, int64_t col0, int64_t depth, float* a_chunk) {
#pragma unroll
  for (int e = 0; e < Tile::kAPerThread; ++e) {
    const AEntry entry = onthefly_w_a_entry(static_cast<int>(threadIdx.x), e);
    const int64_t at = onthefly_w_a_source(a, origin.origin[e], entry, rows, col0, depth);
    a_chunk[entry.l * Smem::kAStride + entry.row] = at < 0 ? 0.f : data[at];
  }
}

// This thread's entries of the B chunk, (l, col) = divmod(threadIdx.x + kThreads·e, kCols),
// accumulate one factor slice: b[e] += Σ_q left[l][q] · right[q][col]. A warp shares l (left is
// a broadcast) and reads consecutive columns of right.
__device__ __forceinline__ void accumulate_b_entries(const float* left, const float* right,
                                                     float (&b)[Tile::kBEntriesPerThread]) {
#pragma unroll
  for (int e = 0; e < Tile::kBEntriesPerThread; ++e) {
    const int entry = static_cast<int>(threadIdx.x) + Tile::kThreads * e;
    const int l = entry / Tile::kCols, col = entry % Tile::kCols;
    float sum = b[e];
#pragma unroll
    for (int q = 0; q < Tile::kRankChunk; ++q)
      sum += left[l * Smem::kLeftStride + q] * right[q * Smem::kRightStride + col];
    b[e] = sum;
  }
}

__device__ __forceinline__ void store_b_chunk(const float (&b)[Tile::kBEntriesPerThread], float* b_chunk) {
#pragma unroll
  for (int e = 0; e < Tile::kBEntriesPerThread; ++e) {
    const int entry = static_cast<int>(threadIdx.x) + Tile::kThreads * e;
    b_chunk[(entry / Tile::kCols) * Smem::kBStride + entry % Tile::kCols] = b[e];
  }
}

// acc += A chunk · B chunk over this thread's register tile: rows ty + kThreadRows·i, columns
// tx + kThreadCols·c (strided, so a warp reads consecutive columns of the B chunk).
__device__ __forceinline__ void multiply_chunk(const float* a_chunk, const float* b_chunk,
                                               float (&acc)[Tile::kMicroRows][Tile::kMicroCols]) {
  const int ty = static_cast<int>(threadIdx.x) / Tile::kThreadCols;
  const int tx = static_cast<int>(threadIdx.x) % Tile::kThreadCols;
#pragma unroll
  for (int l = 0; l < Tile::kChunk; ++l) {
    float a[Tile::kMicroRows], b[Tile::kMicroCols];
#pragma unroll
    for (int i = 0; i < Tile::kMicroRows; ++i) a[i] = a_chunk[l * Smem::kAStride + ty + Tile::kThreadRows * i];
#pragma unroll
    for (int c = 0; c < Tile::kMicroCols; ++c) b[c] = b_chunk[l * Smem::kBStride + tx + Tile::kThreadCols * c];
#pragma unroll
    for (int i = 0; i < Tile::kMicroRows; ++i)
#pragma unroll
      for (int c = 0; c < Tile::kMicroCols; ++c) acc[i][c] += a[i] * b[c];
  }
}

// ------------------------------------------------------------------------------------------------
// kernels
// ------------------------------------------------------------------------------------------------

// Block (blockIdx.x, blockIdx.y) owns rows [row0, row0 + rows) of Y and the columns `span` of
// column block span.column. Each K chunk: stage A's chunk (X's, or im2col(X)'s gathered from the
// NHWC input), build W_j[k0:k0+kChunk, span] = U_j[k0:k0+kChunk, :]·V_j[:, span] slice by slice
// over r, then multiply. Instantiated for DenseRowsA and Im2colRowsA only.
template <typename A>
__global__ void __launch_bounds__(Tile::kThreads)
    onthefly_w_forward_kernel(PredictedLinearShape s, A a, const float* __restrict__ x, const float* __restrict__ u,
                              const float* __restrict__ v, const float* __restrict__ bias,
                              float* __restrict__ y) {
  __shared__ float smem[Smem::kFloats];
  float* a_chunk = smem + Smem::kA;  // (kChunk, kRows): A chunk, transposed
  float* b_chunk = smem + Smem::kB;  // (kChunk, kCols): W chunk
  float* left = smem + Smem::kLeft;  // (kChunk, kRankChunk): U_j slice
  float* right = smem + Smem::kRight;  // (kRankChunk, kCols): V_j slice
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank;
  const ColumnSpan span = onthefly_w_forward_tile(blockIdx.x, nc);
  const int64_t row0 = int64_t{blockIdx.y} * Tile::kRows, rows = onthefly_w_tile_rows(blockIdx.y, s.m);
  const float* u_j = u + span.column * r;                    // (K, r), row stride J·r
  const float* v_j = v + span.column * r * nc + span.first;  // (r, extent), row stride N/J
  const ARows<A> a_rows = resolve_a_rows(a, row0);
  float acc[Tile::kMicroRows][Tile::kMicroCols] = {};
  for (int64_t k0 = 0; k0 < s.k; k0 += Tile::kChunk) {
    const int64_t depth = onthefly_w_min(Tile::kChunk, s.k - k0);
    float b[Tile::kBEntriesPerThread] = {};
    for (int64_t q0 = 0; q0 < r; q0 += Tile::kRankChunk) {
      const int64_t width = onthefly_w_min(Tile::kRankChunk, r - q0);
      __syncthreads();  // every reader of the staged tiles (previous slice or chunk) is done
      if (q0 == 0) load_a_chunk(x, a, a_rows, rows, k0, depth, a_chunk);
      {
        const int l = static_cast<int>(threadIdx.x) / Tile::kRankChunk, q = static_cast<int>(threadIdx.x) % Tile::kRankChunk;
        left[l * Smem::kLeftStride + q] = (l < depth && q < width) ? u_j[(k0 + l) * tc + q0 + q] : 0.f;
      }
#pragma unroll
      for (int e = 0; e < Tile::kRightPerThread; ++e) {
        const int entry = static_cast<int>(threadIdx.x) + Tile::kThreads * e;
        const int q = entry / Tile::kCols, col = entry % Tile::kCols;
        right[q * Smem::kRightStride + col] = (q < width && col < span.extent) ? v_j[(q0 + q) * nc + col] : 0.f;
      }
      __syncthreads();
      accumulate_b_entries(left, right, b);
    }
    store_b_chunk(b, b_chunk);  // its last readers (the previous multiply) passed the first barrier
    __syncthreads();
    multiply_chunk(a_chunk, b_chunk, acc);
  }
  const int ty = static_cast<int>(threadIdx.x) / Tile::kThreadCols;
  const int tx = static_cast<int>(threadIdx.x) % Tile::kThreadCols;
#pragma unroll
  for (int i = 0; i < Tile::kMicroRows; ++i) {
    const int row = ty + Tile::kThreadRows * i;
    if (row >= rows) continue;
#pragma unroll
    for (int c = 0; c < Tile::kMicroCols; ++c) {
      const int col = tx + Tile::kThreadCols * c;
      if (col >= span.extent) continue;
      const int64_t out = span.column * nc + span.first + col;
      y[(row0 + row) * s.n + out] = acc[i][c] + (bias ? bias[out] : 0.f);
    }
  }
}

// Block (blockIdx.x, blockIdx.y) owns rows [row0, row0 + rows) and columns [col0, col0 + extent)
// of dX. The reduction over N walks column block by column block in chunks (`span`): stage dY's
// chunk, build Wᵀ[span, col0:] = V_j[:, span]ᵀ·U_j[col0:, :]ᵀ slice by slice over r, multiply.
__global__ void __launch_bounds__(Tile::kThreads)
    onthefly_w_backward_data_kernel(PredictedLinearShape s, const float* __restrict__ dy,
                                    const float* __restrict__ u, const float* __restrict__ v,
                                    float* __restrict__ dx) {
  __shared__ float smem[Smem::kFloats];
  float* a_chunk = smem + Smem::kA;    // (kChunk, kRows): dY chunk, transposed
  float* b_chunk = smem + Smem::kB;    // (kChunk, kCols): Wᵀ chunk
  float* left = smem + Smem::kLeft;    // (kChunk, kRankChunk): V_j slice, transposed
  float* right = smem + Smem::kRight;  // (kRankChunk, kCols): U_j slice, transposed
  const int64_t nc = s.n_per_column(), tc = s.t_cols(), r = s.rank;
  const int64_t col0 = int64_t{blockIdx.x} * Tile::kCols, extent = onthefly_w_min(Tile::kCols, s.k - col0);
  const int64_t row0 = int64_t{blockIdx.y} * Tile::kRows, rows = onthefly_w_tile_rows(blockIdx.y, s.m);
  const DenseRowsA a{s.n};
  const ARows<DenseRowsA> a_rows = resolve_a_rows(a, row0);
  float acc[Tile::kMicroRows][Tile::kMicroCols] = {};
  const int64_t chunks = onthefly_w_backward_chunks(s);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const ColumnSpan span = onthefly_w_backward_chunk(chunk, nc);
    const float* u_j = u + col0 * tc + span.column * r;        // (extent, r), row stride J·r
    const float* v_j = v + span.column * r * nc + span.first;  // (r, span.extent), row stride N/J
    float b[Tile::kBEntriesPerThread] = {};
    for (int64_t q0 = 0; q0 < r; q0 += Tile::kRankChunk) {
      const int64_t width = onthefly_w_min(Tile::kRankChunk, r - q0);
      __syncthreads();  // every reader of the staged tiles (previous slice or chunk) is done
      if (q0 == 0) load_a_chunk(dy, a, a_rows, rows, span.column * nc + span.first, span.extent, a_chunk);
      {
        const int l = static_cast<int>(threadIdx.x) % Tile::kChunk, q = static_cast<int>(threadIdx.x) / Tile::kChunk;
        left[l * Smem::kLeftStride + q] = (l < span.extent && q < width) ? v_j[(q0 + q) * nc + l] : 0.f;
      }
#pragma unroll
      for (int e = 0; e < Tile::kRightPerThread; ++e) {
        const int entry = static_cast<int>(threadIdx.x) + Tile::kThreads * e;
        const int q = entry % Tile::kRankChunk, col = entry / Tile::kRankChunk;
        right[q * Smem::kRightStride + col] = (q < width && col < extent) ? u_j[col * tc + q0 + q] : 0.f;
      }
      __syncthreads();
      accumulate_b_entries(left, right, b);
    }
    store_b_chunk(b, b_chunk);
    __syncthreads();
    multiply_chunk(a_chunk, b_chunk, acc);
  }
  const int ty = static_cast<int>(threadIdx.x) / Tile::kThreadCols;
  const int tx = static_cast<int>(threadIdx.x) % Tile::kThreadCols;
#pragma unroll
  for (int i = 0; i < Tile::kMicroRows; ++i) {
    const int row = ty + Tile::kThreadRows * i;
    if (row >= rows) continue;
#pragma unroll
    for (int c = 0; c < Tile::kMicroCols; ++c) {
      const int col = tx + Tile::kThreadCols * c;
      if (col < extent) dx[(row0 + row) * s.k + col0 + col] = acc[i][c];
    }
  }
}

// T (B·Ho·Wo, J·r) = im2col(X)·U for the conv form's dV, im2col(X) gathered from the NHWC input
// as in the forward. Block (blockIdx.x, blockIdx.y) owns rows [row0, row0 + rows) and columns
// [col0, col0 + extent) of T; each K chunk stages im2col(X)'s chunk and U's (no rebuild: B is U).
__global__ void __launch_bounds__(Tile::kThreads)
    onthefly_w_conv2d_t_kernel(PredictedLinearShape s, Im2colRowsA a, const float* __restrict__ x,
                               const float* __restrict__ u, float* __restrict__ t) {
  __shared__ float smem[Smem::kFloats];
  float* a_chunk = smem + Smem::kA;  // (kChunk, kRows): im2col(X) chunk, transposed
  float* b_chunk = smem + Smem::kB;  // (kChunk, kCols): U chunk
  const int64_t tc = s.t_cols();
  const int64_t col0 = int64_t{blockIdx.x} * Tile::kCols, extent = onthefly_w_min(Tile::kCols, tc - col0);
  const int64_t row0 = int64_t{blockIdx.y} * Tile::kRows, rows = onthefly_w_tile_rows(blockIdx.y, s.m);
  const ARows<Im2colRowsA> a_rows = resolve_a_rows(a, row0);
  float acc[Tile::kMicroRows][Tile::kMicroCols] = {};
  for (int64_t k0 = 0; k0 < s.k; k0 += Tile::kChunk) {
    const int64_t depth = onthefly_w_min(Tile::kChunk, s.k - k0);
    __syncthreads();  // the previous chunk's multiply is done with both staged tiles
    load_a_chunk(x, a, a_rows, rows, k0, depth, a_chunk);
#pragma unroll
    for (int e = 0; e < Tile::kBEntriesPerThread; ++e) {
      const int entry = static_cast<int>(threadIdx.x) + Tile::kThreads * e;
      const int l = entry / Tile::kCols, col = entry % Tile::kCols;
      b_chunk[l * Smem::kBStride + col] = (l < depth && col < extent) ? u[(k0 + l) * tc + col0 + col] : 0.f;
    }
    __syncthreads();
    multiply_chunk(a_chunk, b_chunk, acc);
  }
  const int ty = static_cast<int>(threadIdx.x) / Tile::kThreadCols;
  const int tx = static_cast<int>(threadIdx.x) % Tile::kThreadCols;
#pragma unroll
  for (int i = 0; i < Tile::kMicroRows; ++i) {
    const int row = ty + Tile::kThreadRows * i;
    if (row >= rows) continue;
#pragma unroll
    for (int c = 0; c < Tile::kMicroCols; ++c) {
      const int col = tx + Tile::kThreadCols * c;
      if (col < extent) t[(row0 + row) * tc + col0 + col] = acc[i][c];
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// launchers
// ------------------------------------------------------------------------------------------------

void onthefly_w_forward(const PredictedLinearShape& s, const float* x, const float* u, const float* v,
                        const float* bias, float* y, cudaStream_t stream) {
  UV_CHECK(onthefly_w_supported(s), "onthefly_w: M = " << s.m << " outside [1, "
                                        << int64_t{Tile::kRows} * Tile::kMaxRowTiles << "]");
  const dim3 grid(static_cast<unsigned>(onthefly_w_forward_col_tiles(s)),
                  static_cast<unsigned>(onthefly_w_row_tiles(s.m)));
  onthefly_w_forward_kernel<<<grid, Tile::kThreads, 0, stream>>>(s, DenseRowsA{s.k}, x, u, v, bias, y);
  CUDA_CHECK_LAUNCH();
}

void onthefly_w_conv2d_forward(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x, const float* u,
                               const float* v, const float* bias, float* y, cudaStream_t stream) {
  const PredictedLinearShape s = onthefly_w_conv2d_linear(c, rank, columns);
  UV_CHECK(onthefly_w_supported(s), "onthefly_w conv: B·Ho·Wo = " << s.m << " outside [1, "
                                        << int64_t{Tile::kRows} * Tile::kMaxRowTiles << "]");
  const dim3 grid(static_cast<unsigned>(onthefly_w_forward_col_tiles(s)),
                  static_cast<unsigned>(onthefly_w_row_tiles(s.m)));
  onthefly_w_forward_kernel<<<grid, Tile::kThreads, 0, stream>>>(s, Im2colRowsA{c}, x, u, v, bias, y);
  CUDA_CHECK_LAUNCH();
}

void onthefly_w_conv2d_t(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x, const float* u,
                         float* t, cudaStream_t stream) {
  const PredictedLinearShape s = onthefly_w_conv2d_linear(c, rank, columns);
  UV_CHECK(onthefly_w_supported(s), "onthefly_w conv: B·Ho·Wo = " << s.m << " outside [1, "
                                        << int64_t{Tile::kRows} * Tile::kMaxRowTiles << "]");
  const dim3 grid(static_cast<unsigned>(onthefly_w_t_col_tiles(s.t_cols())),
                  static_cast<unsigned>(onthefly_w_row_tiles(s.m)));
  onthefly_w_conv2d_t_kernel<<<grid, Tile::kThreads, 0, stream>>>(s, Im2colRowsA{c}, x, u, t);
  CUDA_CHECK_LAUNCH();
}

void onthefly_w_backward_data(const PredictedLinearShape& s, const float* dy, const float* u,
                              const float* v, float* dx, cudaStream_t stream) {
  UV_CHECK(onthefly_w_supported(s), "onthefly_w: M = " << s.m << " outside [1, "
                                        << int64_t{Tile::kRows} * Tile::kMaxRowTiles << "]");
  const dim3 grid(static_cast<unsigned>(onthefly_w_backward_col_tiles(s.k)),
                  static_cast<unsigned>(onthefly_w_row_tiles(s.m)));
  onthefly_w_backward_data_kernel<<<grid, Tile::kThreads, 0, stream>>>(s, dy, u, v, dx);
  CUDA_CHECK_LAUNCH();
}

}  // namespace uv::cuda
