// Device code shared by the 3xTF32 GEMM's kernels: kernels/cuda/tf32x3_gemm.cu (built for sm_90)
// and kernels/cuda/sm90a/tf32x3_wgmma.cu (built for sm_90a only, where wgmma exists). The product's
// parameters, the operand split, cp.async copies and the epilogue's stores. Inline device functions
// only, so each translation unit compiles its own for its own architecture.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/tf32x3_gemm_tile.h"

namespace uv::cuda {

// One strided batch of products, C_i = alpha · op(A_i) · op(B_i) + beta · C_i (tf32x3_gemm.h).
struct Tf32x3Params {
  int64_t m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c;
  bool trans_a, trans_b;
  float alpha, beta;
  const float* a;
  const float* b;
  float* c;
  int splits;           // of k; 1: the kernel writes C itself
  int64_t k_per_split;  // a multiple of the k-slice
  float* partial;       // splits > 1: (count, splits, m, n), summed by tf32x3_reduce_kernel
  const float* bias;    // or null: C += bias (product i's at bias + i·n) as C is written
  bool a_chunks, b_chunks;  // the ring kernels: 16-byte copies of A's, B's chunks (tf32x3_chunks_aligned)
  bool c_pairs;             // the ring kernels: C's adjacent columns stored as one 8-byte pair (tf32x3_pairs_aligned)
  bool partial_pairs;       // the same for the split-K workspace
  const float* b_parts;     // or null: op(B) split beforehand (tf32x3_presplit_offset; one product)
  const unsigned* b_small_any;  // with b_parts: b_small_epoch where some small part of B is (tf32x3_presplit_region_floats)
  unsigned b_small_epoch;       // the presplit's (tf32x3_wgmma_presplit)
  int64_t b_part_tiles;     // its 128-column tiles
  int64_t units;            // > 0: persistent blocks take these tiles (tf32x3_persistent_unit); 0: a block a tile
  bool mbarrier_ring;       // the presplit ring on mbarriers (WgmmaMbarrier, WgmmaMbarrierPersistent, the specialised two)
  bool specialised;         // ... filled by a producer warpgroup (WgmmaSpecialised, WgmmaSpecialisedNonPersistent)
  bool producer_waits;      // ... the ring's synchronisation (Tf32x3SpecialisedSync; Both the default):
  bool consumers_arrive;    // the producer's threads wait on "full" too, and/or the consumers arrive on it
};

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// cp.async with zero fill: `bytes` of the source (0 to the copy's size) land, the rest are zeros.
__device__ __forceinline__ void copy_async16(float* dst, const float* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void copy_async4(float* dst, const float* src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(dst)), "l"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// x = big + small as TF32 bit patterns, each rounded to nearest with ties away from zero by adding
// half a TF32 unit to the magnitude's bits and dropping the 13 low ones: cvt.rna.tf32.f32's
// rounding (and the host's tf32_round, engine/core/tf32.h) in 2 integer instructions where the cvt takes 3 (8.5
// instructions a split against 10.5; the splits are most of the kernel's non-mma work). ±Inf and
// NaN keep their bits, with a zero small part rather than Inf − Inf = NaN. Non-finite in, non-finite
// out: an Inf can still meet a factor whose small part is 0 (Inf·0 = NaN in a big·small term), and a
// finite x within half a TF32 unit of FLT_MAX rounds to Inf and gives NaN.
__device__ __forceinline__ void split_tf32(float x, uint32_t& big, uint32_t& small) {
  const uint32_t bits = __float_as_uint(x);
  const bool finite = fabsf(x) < INFINITY;
  big = finite ? (bits + 0x1000u) & 0xffffe000u : bits;
  const float rest = x - __uint_as_float(big);
  small = finite ? (__float_as_uint(rest) + 0x1000u) & 0xffffe000u : 0u;
}

// One thread's pieces of a k-slice of one operand into its slot (cp.async; completion is the
// caller's group wait): 16-byte chunks, or single elements where the source is not 16-byte aligned.
// Unrolled, unless `Rolled`: a thread with few registers and many pieces (the specialised kernel's
// producer, 32 single elements a slice) would spill their addresses.
template <typename Copies>
__device__ __forceinline__ void copy_piece(const Copies& w, int i, const float* __restrict__ base, float* slot) {
  const int valid = w.valid(i);
  const float* src = valid ? base + w.source(i) : base;
  if constexpr (Copies::kElems == 4)
    copy_async16(slot + w.slot(i), src, 4 * valid);
  else
    copy_async4(slot + w.slot(i), src, 4 * valid);
}
template <bool Rolled = false, typename Copies>
__device__ __forceinline__ void copy_pieces(const Copies& w, const float* __restrict__ base, float* slot) {
  if constexpr (Rolled) {
#pragma unroll 1
    for (int i = 0; i < Copies::kPieces; ++i) copy_piece(w, i, base, slot);
  } else {
#pragma unroll
    for (int i = 0; i < Copies::kPieces; ++i) copy_piece(w, i, base, slot);
  }
}

// Where a block of a ring kernel (mma, wgmma) works: its product (`batch`, grid slice z), its tile
// of C (tf32x3_tile_order's bands) and its range of k (split z % splits), in `slices` k-slices.
struct Tf32x3Place {
  int64_t z, batch, row0, col0, k_begin, k_end;
  int slices;
  const float* a;  // the product's operands
  const float* b;
};
// The block at (x, y, z) of a row_tiles × col_tiles × (products × splits) grid: its tile and slice of k.
template <typename Tile>
__device__ __forceinline__ Tf32x3Place tf32x3_place_at(const Tf32x3Params& p, int64_t x, int64_t y, int64_t z,
                                                       int64_t row_tiles, int64_t col_tiles) {
  Tf32x3Place w;
  w.z = z;
  w.batch = w.z / p.splits;
  const int64_t split = w.z % p.splits;
  w.a = p.a + w.batch * p.stride_a;
  w.b = p.b + w.batch * p.stride_b;
  int64_t row_tile, col_tile;
  tf32x3_tile_order(x, y, row_tiles, col_tiles, row_tile, col_tile);
  w.row0 = row_tile * Tile::kRows;
  w.col0 = col_tile * Tile::kCols;
  w.k_begin = split * p.k_per_split;
  w.k_end = p.k < w.k_begin + p.k_per_split ? p.k : w.k_begin + p.k_per_split;
  w.slices = w.k_end > w.k_begin ? static_cast<int>((w.k_end - w.k_begin + Tile::kDepth - 1) / Tile::kDepth) : 0;
  return w;
}
// This block's place on the launch grid.
template <typename Tile>
__device__ __forceinline__ Tf32x3Place tf32x3_place(const Tf32x3Params& p) {
  return tf32x3_place_at<Tile>(p, blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y);
}
// Unit (tile) u of a persistent launch (Tf32x3Params::units): where the classic launch's block for
// it would be.
template <typename Tile>
__device__ __forceinline__ Tf32x3Place tf32x3_unit_place(const Tf32x3Params& p, int64_t unit) {
  const int64_t row_tiles = tf32x3_row_blocks<Tile>(p.m), col_tiles = tf32x3_col_blocks<Tile>(p.n);
  int64_t x, y, z;
  tf32x3_unit_coords(unit, row_tiles, col_tiles, x, y, z);
  return tf32x3_place_at<Tile>(p, x, y, z, row_tiles, col_tiles);
}
// Thread t's copies of the k-slice at k0 of A (copy_a_slice), or of A and B (copy_slice), into a
// ring slot (cp.async: 16-byte chunks, or single elements where an operand is not 16-byte aligned);
// the caller commits the group.
// Threads: how many share the copies (the block's, or a producer warpgroup's); RolledElements: the
// single-element copies in a loop not unrolled (copy_pieces says why).
template <typename Tile, bool TransA, int Threads = Tile::kThreads, bool RolledElements = false>
__device__ __forceinline__ void copy_a_slice(const Tf32x3Params& p, const Tf32x3Place& w, int t, int64_t k0,
                                             float* slice) {
  if (p.a_chunks)
    copy_pieces(Tf32x3ACopies<Tile, TransA, 4, Threads>(t, w.row0, k0, p.m, w.k_end, p.lda), w.a, slice);
  else
    copy_pieces<RolledElements>(Tf32x3ACopies<Tile, TransA, 1, Threads>(t, w.row0, k0, p.m, w.k_end, p.lda), w.a,
                                slice);
}
template <typename Tile, bool TransA, bool TransB>
__device__ __forceinline__ void copy_slice(const Tf32x3Params& p, const Tf32x3Place& w, int t, int64_t k0,
                                           float* slice) {
  copy_a_slice<Tile, TransA>(p, w, t, k0, slice);
  if (p.b_chunks)
    copy_pieces(Tf32x3BCopies<Tile, TransB>(t, w.col0, k0, p.n, w.k_end, p.ldb), w.b, slice + Tile::kAFloats);
  else
    copy_pieces(Tf32x3BCopies<Tile, TransB, 1>(t, w.col0, k0, p.n, w.k_end, p.ldb), w.b, slice + Tile::kAFloats);
}

// The cp.async ring of k-slices (kStages slots) that both ring kernels read: start() puts slices
// 0 … kStages − 2 in flight; arrive(s) waits for slice s, passes a barrier (so every thread is
// done with slice s − 1, whose slot the next copy takes), issues slice s + kStages − 1 and returns
// slice s's slot. One group per slice, empty ones included, so that "all but kStages − 2 groups
// done" always means slice s is in.
template <typename Tile, bool TransA, bool TransB>
struct Tf32x3Ring {
  const Tf32x3Params& p;
  const Tf32x3Place& w;
  float* slots;
  int t;  // the thread
  __device__ __forceinline__ float* slot(int s) const { return slots + (s % Tile::kStages) * Tile::kStageFloats; }
  __device__ __forceinline__ void copy(int s) const {
    if (s < w.slices) copy_slice<Tile, TransA, TransB>(p, w, t, w.k_begin + int64_t{s} * Tile::kDepth, slot(s));
    copy_async_commit();
  }
  __device__ __forceinline__ void start() const {
#pragma unroll
    for (int s = 0; s < Tile::kStages - 1; ++s) copy(s);
  }
  __device__ __forceinline__ const float* arrive(int s) const {
    copy_async_wait<Tile::kStages - 2>();
    __syncthreads();
    copy(s + Tile::kStages - 1);
    return slot(s);
  }
};

// A lane's two accumulators of one row, columns col and col + 1 of the tile of grid slice z, to C
// (`c`: the product's C; alpha, beta, bias; one 8-byte pair where C allows) or, with split-K, to the
// workspace. Edges per element.
__device__ __forceinline__ void store_pair(const Tf32x3Params& p, int64_t z, float* __restrict__ c,
                                           const float* __restrict__ bias, int64_t row, int64_t col, float v0,
                                           float v1) {
  if (row >= p.m || col >= p.n) return;
  const bool second = col + 1 < p.n;
  if (p.splits > 1) {
    float* dst = p.partial + (z * p.m + row) * p.n + col;
    if (second && p.partial_pairs) {
      *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
    } else {
      dst[0] = v0;
      if (second) dst[1] = v1;
    }
    return;
  }
  float* dst = c + row * p.ldc + col;
  const bool pair = second && p.c_pairs;
  v0 *= p.alpha;
  v1 *= p.alpha;
  if (p.beta != 0.f) {  // beta 0: C is not read
    if (pair) {
      const float2 old = *reinterpret_cast<const float2*>(dst);
      v0 += p.beta * old.x;
      v1 += p.beta * old.y;
    } else {
      v0 += p.beta * dst[0];
      if (second) v1 += p.beta * dst[1];
    }
  }
  if (bias) {
    v0 += bias[col];
    if (second) v1 += bias[col + 1];
  }
  if (pair) {
    *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
  } else {
    dst[0] = v0;
    if (second) dst[1] = v1;
  }
}

}  // namespace uv::cuda
