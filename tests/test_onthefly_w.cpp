// onthefly_w's launch geometry and shared-memory layout (kernels/cuda/onthefly_w_tile.h), on the
// CPU in every build: the kernels index with these functions, so an output column covered twice
// or a chunk that straddles two column blocks shows here without a GPU. The kernels' results
// against the CPU are in tests/test_backends.cpp (skipped without a device).
#include <gtest/gtest.h>

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

TEST(OnTheFlyWGeometry, SupportedUpToTheGridLimit) {
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(1, 784, 500, 78, 1)));
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(32768, 16384, 1000, 8192, 16)));  // any J, any r
  EXPECT_TRUE(cuda::onthefly_w_supported(shape(int64_t{Tile::kRows} * Tile::kMaxRowTiles, 8, 8, 1, 1)));
  EXPECT_FALSE(cuda::onthefly_w_supported(shape(int64_t{Tile::kRows} * Tile::kMaxRowTiles + 1, 8, 8, 1, 1)));
  EXPECT_FALSE(cuda::onthefly_w_supported(shape(0, 8, 8, 1, 1)));
}

}  // namespace
}  // namespace uv
