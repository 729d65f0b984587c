// onthefly_w's launch geometry and shared-memory layout (kernels/cuda/onthefly_w_tile.h), on the
// CPU in every build: the kernels index with these functions, so an output column covered twice
// or a chunk that straddles two column blocks shows here without a GPU. The kernels' results
// against the CPU are in tests/test_backends.cpp and, for the conv form, tests/test_conv.cpp
// (skipped without a device).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "kernels/cuda/onthefly_w_tile.h"

namespace uv {
namespace {

using Tile = cuda::OnTheFlyWTile;

PredictedLinearShape shape(int64_t m, int64_t k, int64_t n_per_column, int64_t rank, int64_t columns) {
  PredictedLinearShape s;
  s.m = m; s.k = k; s.n = n_per_column * columns; s.rank = rank; s.columns = columns;
  return s;
}

const int64_t kSizes[] = {1, 15, 16, 17, 63, 64, 65, 83, 128, 129, 500, 4096};

TEST(OnTheFlyWGeometry, RowTilesCoverEveryRowOnce) {
  for (int64_t m : kSizes) {
    int64_t covered = 0;
    for (int64_t tile = 0; tile < cuda::onthefly_w_row_tiles(m); ++tile) {
      const int64_t rows = cuda::onthefly_w_tile_rows(tile, m);
      EXPECT_GE(rows, 1) << m;
      EXPECT_LE(rows, Tile::kRows) << m;
      covered += rows;
    }
    EXPECT_EQ(covered, m);
  }
}

// Every output column of Y belongs to exactly one forward tile, and a tile's columns all lie in
// the column block that picks its U_j and V_j.
TEST(OnTheFlyWGeometry, ForwardTilesCoverEveryColumnOnceInsideOneColumnBlock) {
  for (int64_t columns : {1, 2, 3, 5})
    for (int64_t nc : kSizes) {
      const PredictedLinearShape s = shape(1, 1, nc, 1, columns);
      std::vector<int> hits(static_cast<size_t>(s.n), 0);
      for (int64_t tile = 0; tile < cuda::onthefly_w_forward_col_tiles(s); ++tile) {
        const cuda::ColumnSpan span = cuda::onthefly_w_forward_tile(tile, nc);
        ASSERT_GE(span.column, 0);
        ASSERT_LT(span.column, columns);
        ASSERT_GE(span.extent, 1);
        ASSERT_LE(span.extent, Tile::kCols);
        ASSERT_LE(span.first + span.extent, nc) << "tile " << tile << " straddles column blocks";
        for (int64_t c = 0; c < span.extent; ++c) ++hits[static_cast<size_t>(span.column * nc + span.first + c)];
      }
      for (int64_t col = 0; col < s.n; ++col) EXPECT_EQ(hits[static_cast<size_t>(col)], 1) << "J " << columns << " N/J " << nc << " column " << col;
    }
}

// Backward-data reduces over all N columns of dY exactly once, chunk by chunk, each chunk inside
// one column block; its output tiles cover K.
TEST(OnTheFlyWGeometry, BackwardChunksCoverEveryColumnOnceInsideOneColumnBlock) {
  for (int64_t columns : {1, 2, 3, 5})
    for (int64_t nc : kSizes) {
      const PredictedLinearShape s = shape(1, 1, nc, 1, columns);
      std::vector<int> hits(static_cast<size_t>(s.n), 0);
      for (int64_t chunk = 0; chunk < cuda::onthefly_w_backward_chunks(s); ++chunk) {
        const cuda::ColumnSpan span = cuda::onthefly_w_backward_chunk(chunk, nc);
        ASSERT_LT(span.column, columns);
        ASSERT_GE(span.extent, 1);
        ASSERT_LE(span.extent, Tile::kChunk);
        ASSERT_LE(span.first + span.extent, nc) << "chunk " << chunk << " straddles column blocks";
        for (int64_t c = 0; c < span.extent; ++c) ++hits[static_cast<size_t>(span.column * nc + span.first + c)];
      }
      for (int64_t col = 0; col < s.n; ++col) EXPECT_EQ(hits[static_cast<size_t>(col)], 1) << "J " << columns << " N/J " << nc << " column " << col;
    }
  for (int64_t k : kSizes) {
    const int64_t tiles = cuda::onthefly_w_backward_col_tiles(k);
    EXPECT_GE(tiles * Tile::kCols, k);
    EXPECT_LT((tiles - 1) * Tile::kCols, k);
  }
}

// The four staged tiles sit side by side in one static array, each as large as the kernels index
// (row stride × rows), within the 48 KiB every device gives without opting in.
TEST(OnTheFlyWGeometry, SharedMemoryLayoutHoldsEveryTileWithoutOverlap) {
  using Smem = cuda::OnTheFlyWSmem;
  EXPECT_GE(Smem::kAStride, Tile::kRows);
  EXPECT_GE(Smem::kBStride, Tile::kCols);
  EXPECT_GE(Smem::kLeftStride, Tile::kRankChunk);
  EXPECT_GE(Smem::kRightStride, Tile::kCols);
  EXPECT_EQ(Smem::kB - Smem::kA, Tile::kChunk * Smem::kAStride);
  EXPECT_EQ(Smem::kLeft - Smem::kB, Tile::kChunk * Smem::kBStride);
  EXPECT_EQ(Smem::kRight - Smem::kLeft, Tile::kChunk * Smem::kLeftStride);
  EXPECT_EQ(Smem::kFloats - Smem::kRight, Tile::kRankChunk * Smem::kRightStride);
  EXPECT_LE(cuda::onthefly_w_smem_bytes(), size_t{48} * 1024);
  // Each thread's share of every staged tile is whole: the loads and the B build cover them.
  EXPECT_EQ(Tile::kAPerThread * Tile::kThreads, Tile::kChunk * Tile::kRows);
  EXPECT_EQ(Tile::kBEntriesPerThread * Tile::kThreads, Tile::kChunk * Tile::kCols);
  EXPECT_EQ(Tile::kRightPerThread * Tile::kThreads, Tile::kRankChunk * Tile::kCols);
  EXPECT_EQ(Tile::kMicroRows * Tile::kThreadRows, Tile::kRows);
  EXPECT_EQ(Tile::kMicroCols * Tile::kThreadCols, Tile::kCols);
}

// ---- the A operand: dense rows, and the implicit im2col rows of the conv form ---------------------

// Conv shapes off every grid: stride 2 and 3, padding, "same" with an even filter (bottom/right
// padding implied), a hand-made asymmetric padding, channels not multiples of 4, 8 or 16.
std::vector<Conv2dShape> conv_shapes() {
  std::vector<Conv2dShape> shapes = {
      make_conv2d_shape(2, 7, 9, 3, 5, 3, 1, 1),    make_conv2d_shape(3, 8, 6, 5, 7, 4, 1, -1),
      make_conv2d_shape(2, 11, 10, 2, 6, 3, 2, 0),  make_conv2d_shape(1, 9, 9, 1, 4, 5, 2, 2),
      make_conv2d_shape(2, 13, 11, 7, 9, 3, 2, 1),  make_conv2d_shape(1, 10, 7, 13, 3, 2, 1, -1),
      make_conv2d_shape(2, 12, 12, 17, 4, 3, 3, 1), make_conv2d_shape(1, 5, 6, 33, 2, 6, 1, -1)};
  Conv2dShape odd;  // pad_top 2, pad_left 0, bottom 0 and right 1 implied
  odd.batch = 2; odd.in_h = 7; odd.in_w = 8; odd.in_c = 3; odd.out_c = 4; odd.kernel = 3; odd.stride = 2;
  odd.pad_top = 2; odd.pad_left = 0; odd.out_h = 4; odd.out_w = 4;
  shapes.push_back(odd);
  return shapes;
}

// The implicit loader's element address is conv2d_input_offset's for every (row, col): the
// per-row origin plus the per-column part, −1 exactly where im2col reads padding.
TEST(OnTheFlyWConvOperand, Im2colRowsAddressEveryElementAsIm2col) {
  for (const Conv2dShape& s : conv_shapes()) {
    const cuda::Im2colRowsA a{s};
    int64_t padding = 0, inside = 0;
    for (int64_t row = 0; row < s.rows(); ++row) {
      const cuda::Im2colRowsA::Row origin = a.row(row);
      for (int64_t col = 0; col < s.patch(); ++col) {
        const int64_t want = conv2d_input_offset(s, row, col), got = a.offset(origin, col);
        ASSERT_EQ(got, want) << "row " << row << " col " << col << " of " << s.batch << "x" << s.in_h << "x" << s.in_w
                             << "x" << s.in_c << " k" << s.kernel << " s" << s.stride;
        ASSERT_LT(got, s.batch * s.in_features());
        (got < 0 ? padding : inside) += 1;
      }
    }
    EXPECT_GT(inside, 0);
    if (s.pad_top > 0 || s.pad_left > 0) {
      EXPECT_GT(padding, 0);
    }
  }
  const cuda::DenseRowsA dense{37};
  for (int64_t row : {0, 1, 5, 64, 1000})
    for (int64_t col : {0, 3, 36}) EXPECT_EQ(dense.offset(dense.row(row), col), row * 37 + col);
}

// One block's staging walk: every thread's entries over every row tile and K chunk stage each
// (row, col) of A exactly once, reading conv2d_input_offset's element there and a zero past the
// last row or column and in padding.
TEST(OnTheFlyWConvOperand, StagedChunksGatherIm2colOnceAndZeroOutside) {
  for (const Conv2dShape& s : conv_shapes()) {
    const cuda::Im2colRowsA a{s};
    const int64_t m = s.rows(), k = s.patch();
    std::vector<int> hits(static_cast<size_t>(m * k), 0);
    for (int64_t tile = 0; tile < cuda::onthefly_w_row_tiles(m); ++tile) {
      const int64_t row0 = tile * Tile::kRows, rows = cuda::onthefly_w_tile_rows(tile, m);
      for (int thread = 0; thread < Tile::kThreads; ++thread)
        for (int e = 0; e < Tile::kAPerThread; ++e) {
          const cuda::AEntry entry = cuda::onthefly_w_a_entry(thread, e);
          ASSERT_LT(entry.row, Tile::kRows);
          ASSERT_LT(entry.l, Tile::kChunk);
          const cuda::Im2colRowsA::Row origin = a.row(row0 + entry.row);
          for (int64_t k0 = 0; k0 < k; k0 += Tile::kChunk) {
            const int64_t depth = std::min<int64_t>(Tile::kChunk, k - k0);
            const int64_t at = cuda::onthefly_w_a_source(a, origin, entry, rows, k0, depth);
            if (entry.row >= rows || entry.l >= depth) {
              ASSERT_EQ(at, -1);
              continue;
            }
            const int64_t row = row0 + entry.row, col = k0 + entry.l;
            ASSERT_EQ(at, conv2d_input_offset(s, row, col));
            ++hits[static_cast<size_t>(row * k + col)];
          }
        }
    }
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << "im2col element " << i;
  }
}

// The conv form's grids: the forward's column tiles over C_out stay inside one column block (as
// the linear form's), and T = im2col(X)·U's tiles cover its J·r columns once.
TEST(OnTheFlyWConvOperand, ConvGridsCoverTheOutputs) {
  for (const Conv2dShape& s : conv_shapes())
    for (int64_t rank : {1, 5, 16, 17, 70})
      for (int64_t columns : {int64_t{1}, s.out_c % 2 == 0 ? int64_t{2} : int64_t{1}}) {
        const PredictedLinearShape l = cuda::onthefly_w_conv2d_linear(s, rank, columns);
        EXPECT_EQ(l.m, s.rows());
        EXPECT_EQ(l.k, s.patch());
        EXPECT_EQ(l.n, s.out_c);
        EXPECT_EQ(l.t_cols(), rank * columns);
        const int64_t tiles = cuda::onthefly_w_t_col_tiles(l.t_cols());
        EXPECT_GE(tiles * Tile::kCols, l.t_cols());
        EXPECT_LT((tiles - 1) * Tile::kCols, l.t_cols());
        for (int64_t tile = 0; tile < cuda::onthefly_w_forward_col_tiles(l); ++tile) {
          const cuda::ColumnSpan span = cuda::onthefly_w_forward_tile(tile, l.n_per_column());
          EXPECT_LE(span.first + span.extent, l.n_per_column());
          EXPECT_LT(span.column, columns);
        }
        EXPECT_GE(cuda::onthefly_w_row_tiles(l.m) * Tile::kRows, l.m);
      }
}

TEST(OnTheFlyWGeometry, SupportedUpToTheGridLimit) {
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(1, 784, 500, 78, 1)));
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(32768, 16384, 1000, 8192, 16)));  // any J, any r
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(int64_t{Tile::kRows} * Tile::kMaxRowTiles, 8, 8, 1, 1)));
  EXPECT_FALSE(cuda::onthefly_w_supported(shape(int64_t{Tile::kRows} * Tile::kMaxRowTiles + 1, 8, 8, 1, 1)));
  EXPECT_FALSE(cuda::onthefly_w_supported(shape(0, 8, 8, 1, 1)));
}

}  // namespace
}  // namespace uv
