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

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/host_device.h"
#include "engine/core/tf32.h"
#include "kernels/gemm_call.h"

namespace uv::cuda {

// The tile grids every kernel shares (so the split rule and the tile choice are one): 128×128
// tiles for products with enough of them to fill the GPU, 64×64 for thin ones (the chain's X·U and
// dV = Tᵀ·dY at small r have an M×r or r×N output), k in slices of 32.
template <int Rows, int Cols>
struct Tf32x3Grid {
  static constexpr int kRows = Rows, kCols = Cols, kDepth = 32;
};
using Tf32x3BigTile = Tf32x3Grid<128, 128>;
using Tf32x3SmallTile = Tf32x3Grid<64, 64>;

struct TileElement {
  int row, col;
};
template <typename Tile>
UV_HOST_DEVICE inline int64_t tf32x3_row_blocks(int64_t m) {
  return (m + Tile::kRows - 1) / Tile::kRows;
}
template <typename Tile>
UV_HOST_DEVICE inline int64_t tf32x3_col_blocks(int64_t n) {
  return (n + Tile::kCols - 1) / Tile::kCols;
}
// The mma kernel's rule: big tiles unless they give fewer than four a multiprocessor (they
// hold one or two at a time), so that the last wave is a small part of the work; the 64×64 tiles
// otherwise. The wgmma kernel goes by tf32x3_wgmma_fills instead.
inline bool tf32x3_use_small_tiles(int64_t count, int64_t m, int64_t n, int multiprocessors) {
  return count * tf32x3_row_blocks<Tf32x3BigTile>(m) * tf32x3_col_blocks<Tf32x3BigTile>(n) < 4 * int64_t{multiprocessors};
}
// Split-K for products with few output tiles and a long k (the weight gradients dV = Tᵀ·dY, whose k
// is the batch, and the chain's thin X·U): `splits` slices of k, each a multiple of the k-slice,
// write their partial products to a workspace (splits × count × m × n floats) that a second kernel
// sums in order, so the result does not depend on timing. 1: no split.
struct Tf32x3Split {
  int splits = 1;
  int64_t k_per_split = 0;
};
constexpr int kTf32x3MaxSplits = 16;
// The time of `blocks` equal blocks, each split into s, on `slots` blocks at once (multiprocessors
// × blocks a multiprocessor holds), in whole blocks' time: ⌈blocks·s / slots⌉ waves of 1/s each.
inline double tf32x3_split_time(int64_t blocks, int64_t s, int64_t slots) {  // s ≥ 1
  return double((blocks * s + slots - 1) / slots) / double(s);
}
// k in slices of whole k-slices: the depth of each of `splits` (rounded up to the k-slice), and so
// the number of splits that depth actually gives (rounding may leave fewer; a fixed point).
inline int64_t tf32x3_split_depth(int64_t k, int64_t splits) {
  const int64_t depth = Tf32x3BigTile::kDepth;
  return ((k + splits - 1) / splits + depth - 1) / depth * depth;
}
inline int64_t tf32x3_splits_made(int64_t k, int64_t splits) {
  return (k + tf32x3_split_depth(k, splits) - 1) / tf32x3_split_depth(k, splits);
}
// The fewest splits within 5% of the best time the allowed splits give (each at least 256 deep, at
// most 16, the workspace's room, 65535 products × splits on the grid), and none where that gains
// under 10% over no split (the workspace's round trip and the reduce kernel cost something).
// `max_depth` > 0 (a multiple of the k-slice): no split deeper than that (the depth chunks below,
// done as splits of one launch, whose reduce adds them with round-to-nearest adds); splits = 0
// when the allowed splits cannot (then the caller launches the chunks one by one).
inline Tf32x3Split tf32x3_split(int64_t count, int64_t m, int64_t n, int64_t k, int64_t blocks, int64_t slots,
                                int64_t workspace_floats, int64_t max_depth = 0) {
  Tf32x3Split out;
  out.k_per_split = k;
  if (m * n == 0 || blocks <= 0 || slots <= 0) return out;
  const int64_t least = max_depth > 0 && k > max_depth ? (k + max_depth - 1) / max_depth : 1;
  constexpr int64_t kMinDepth = 8 * Tf32x3BigTile::kDepth;  // each split at least 256 deep
  int64_t most = k / kMinDepth;
  most = most < kTf32x3MaxSplits ? most : kTf32x3MaxSplits;
  const int64_t fit = workspace_floats / (count * m * n);
  most = most < fit ? most : fit;
  most = most < 65535 / count ? most : 65535 / count;
  if (least > 1 && least > most) {
    out.splits = 0;
    return out;
  }
  if (most < 2) return out;
  double best = tf32x3_split_time(blocks, tf32x3_splits_made(k, least), slots);
  for (int64_t s = least + 1; s <= most; ++s) {
    const double time = tf32x3_split_time(blocks, tf32x3_splits_made(k, s), slots);
    best = time < best ? time : best;
  }
  int64_t splits = least;
  while (tf32x3_split_time(blocks, tf32x3_splits_made(k, splits), slots) > 1.05 * best) ++splits;
  splits = tf32x3_splits_made(k, splits);  // at least `least`'s count: its depth is within max_depth
  if (least == 1 &&
      (splits < 2 || tf32x3_split_time(blocks, 1, slots) <= 1.1 * tf32x3_split_time(blocks, splits, slots)))
    return out;
  out.k_per_split = tf32x3_split_depth(k, splits);
  out.splits = static_cast<int>(splits);
  return out;
}
// Depth chunks. The tensor cores add each instruction's products into the float32 accumulator
// with truncation, not round-to-nearest (Fasi et al., "Numerical behavior of NVIDIA tensor cores",
// 2021), so a long sum's error grows with the number of steps instead of their square root. On an
// H100 (docs/gpu-results.md, 2026-11-26) every kernel here was off cuBLAS's float32 chain by 3–4e-5
// of the largest output at k = 4096, 1.2e-4 at 16384 and up to 3.7e-4 at 32768 (dV = Tᵀ·dY, k the
// batch), and one unsplit 128×128 tile with k = 32868 was off float64 by 9.4e-4 of the outputs'
// rms: plain TF32's error. In chunks of 4096 that fell to 1.09e-4, linear in the depth, against
// float32's 4ε·√k = 8.6e-5. So no accumulator runs deeper than kTf32x3ChunkDepth. A deeper
// product is one launch whose split-K splits are no deeper than that (tf32x3_split's max_depth),
// or a sequence of launches of that depth (split-K inside each as before), each adding its partial
// product into C with round-to-nearest adds (beta = 1 after the first; the bias with the first):
// tf32x3_schedule chooses by what the workspace holds. The launches cost 3–12% at depth 2048 on an H100
// (each has its own last wave, and C makes a round trip). Flushing the accumulators into C inside
// the kernels instead was slower still where it mattered (up to 11% on the deep products, and its
// code cost the other paths registers) and is gone (docs/performance.md).
constexpr int64_t kTf32x3ChunkDepth = 2048;
inline int64_t tf32x3_chunks(int64_t k, int64_t depth) { return k <= depth ? 1 : (k + depth - 1) / depth; }
// The call computing chunk `index` of g's k (depth a multiple of 4: the chunks' operands keep the
// 16-byte alignment of g's, which the ring kernels' copies check).
inline GemmCall tf32x3_chunk(const GemmCall& g, int64_t index, int64_t depth) {
  if (tf32x3_chunks(g.k, depth) == 1) return g;
  GemmCall c = g;
  const int64_t k0 = index * depth;
  c.k = g.k - k0 < depth ? g.k - k0 : depth;
  c.a = g.a + (g.ta ? k0 * g.lda : k0);  // op(A) = A (m×k, k along a row) or Aᵀ (A k×m)
  c.b = g.b + (g.tb ? k0 : k0 * g.ldb);  // op(B) = B (k×n) or Bᵀ (B n×k, k along a row)
  if (index > 0) {
    c.beta = 1.f;
    c.epilogue = GemmEpilogue::None;
    c.bias = nullptr;
  }
  return c;
}

// A chunk depth: a positive multiple of the k-slice (32), up to 2⁴⁰.
inline bool tf32x3_chunk_depth_valid(int64_t depth) {
  return depth >= 32 && depth % 32 == 0 && depth <= (int64_t{1} << 40);
}
// UV_TF32X3_CHUNK_DEPTH: a valid depth, kTf32x3ChunkDepth when unset or empty; false for anything
// else (the benches exit 2 with the value, the first product throws).
inline bool parse_tf32x3_chunk_depth(const char* value, int64_t& out) {
  if (!value || !*value) {
    out = kTf32x3ChunkDepth;
    return true;
  }
  char* end = nullptr;
  const long long depth = std::strtoll(value, &end, 10);
  if (*end != '\0' || !tf32x3_chunk_depth_valid(depth)) return false;
  out = depth;
  return true;
}

// The CUDA backend's workspace for the products (split-K's partials, B's parts): 32 MiB, as cuBLAS's
// on Hopper. A product whose parts or partials do not fit runs in chunks or bands, a launch each
// (tf32x3_schedule, tf32x3_presplit_band); UV_TF32X3_WORKSPACE_MIB sets another size, so the
// benches can measure what room buys (the K = 16384 products' U and V parts are 27–29M floats).
inline constexpr int64_t kTf32x3WorkspaceMib = 32;
// UV_TF32X3_WORKSPACE_MIB: 1 to 65536 MiB, kTf32x3WorkspaceMib when unset or empty; false for
// anything else (the benches exit 2 with the value, the backend throws).
inline bool parse_tf32x3_workspace_mib(const char* value, int64_t& out) {
  if (!value || !*value) {
    out = kTf32x3WorkspaceMib;
    return true;
  }
  if (*value < '0' || *value > '9') return false;  // strtoll would take a sign or spaces
  char* end = nullptr;
  const long long mib = std::strtoll(value, &end, 10);
  if (*end != '\0' || mib < 1 || mib > 65536) return false;
  out = mib;
  return true;
}

// UV_TF32X3_BANDS: 1 (the default, also when unset or empty) runs a product whose B parts do not
// fit in column bands (tf32x3_presplit_band), 0 without them, so that the benches can measure the
// bands against the same kernel without; false for anything else.
inline bool parse_tf32x3_bands(const char* value, bool& out) {
  if (!value || !*value || std::strcmp(value, "1") == 0) {
    out = true;
    return true;
  }
  if (std::strcmp(value, "0") == 0) {
    out = false;
    return true;
  }
  return false;
}

// How the specialised kernels' ring synchronises (tf32x3_specialised_sync). `Plain` is the bare
// protocol (tf32x3_specialised_full_arrivals): the producer's copies arrive on "full" and the
// consumers wait on it. Its outputs are right, but compute-sanitizer's racecheck reports every
// consumer read of A as racing the producer's cp.async writes (most likely because racecheck does
// not tie an arrival the copy unit makes, cp.async.mbarrier.arrive.noinc, to another thread's
// wait). The other modes add waits or arrivals the protocol does not need, to give the ring the
// shape of the mbarrier ring, on which racecheck reports nothing: there every thread that copies
// also waits on "full", and every thread that reads also arrives on it. `ProducerWaits`: each
// producer thread waits for slice g − 1 to land after issuing slice g. `ConsumersArrive`: each
// consumer thread arrives on slice g's "full" before waiting on it (its phase then takes 256
// arrivals more). `Both` (the default,
// kTf32x3DefaultSpecialisedSync): the two together, the mbarrier ring's shape in full (the
// producer's wait then also waits for the consumers to reach slice g − 1, which shortens its lead).
// On an H100 (2026-11-27, docs/gpu-results.md) only `Both` was racecheck-clean; at M = K = N = 4096
// it took 1–3% more time than `Plain` on WgmmaSpecialised and 3–5% more on the nonpersistent kernel
// (timed in two calls on one machine), which stayed 3–6% faster than WgmmaMbarrier.
enum class Tf32x3SpecialisedSync { Plain, ProducerWaits, ConsumersArrive, Both };
constexpr Tf32x3SpecialisedSync kTf32x3DefaultSpecialisedSync = Tf32x3SpecialisedSync::Both;
inline bool tf32x3_producer_waits(Tf32x3SpecialisedSync s) {
  return s == Tf32x3SpecialisedSync::ProducerWaits || s == Tf32x3SpecialisedSync::Both;
}
inline bool tf32x3_consumers_arrive(Tf32x3SpecialisedSync s) {
  return s == Tf32x3SpecialisedSync::ConsumersArrive || s == Tf32x3SpecialisedSync::Both;
}
inline const char* tf32x3_specialised_sync_name(Tf32x3SpecialisedSync s) {
  switch (s) {
    case Tf32x3SpecialisedSync::Plain:
      return "plain";
    case Tf32x3SpecialisedSync::ProducerWaits:
      return "producer_waits";
    case Tf32x3SpecialisedSync::ConsumersArrive:
      return "consumers_arrive";
    case Tf32x3SpecialisedSync::Both:
      return "both";
  }
  return "?";
}
// UV_TF32X3_SPECIALISED_SYNC: both (the default, also when unset or empty), plain, producer_waits
// or consumers_arrive; false for anything else.
inline bool parse_tf32x3_specialised_sync(const char* value, Tf32x3SpecialisedSync& out) {
  if (!value || !*value) {
    out = kTf32x3DefaultSpecialisedSync;
    return true;
  }
  for (const auto s : {Tf32x3SpecialisedSync::Plain, Tf32x3SpecialisedSync::ProducerWaits,
                       Tf32x3SpecialisedSync::ConsumersArrive, Tf32x3SpecialisedSync::Both})
    if (std::strcmp(value, tf32x3_specialised_sync_name(s)) == 0) {
      out = s;
      return true;
    }
  return false;
}

// Row tiles on gridDim.x (up to 2³¹ − 1), column tiles on y and the products on z (up to 65535).
inline bool tf32x3_fits(int64_t count, int64_t m, int64_t n) {
  return count >= 1 && count <= 65535 && m >= 0 && n >= 0 &&
         tf32x3_row_blocks<Tf32x3SmallTile>(m) <= int64_t{0x7fffffff} && tf32x3_col_blocks<Tf32x3SmallTile>(n) <= 65535;
}

// ---- The mma.sync kernel's arithmetic (tf32x3_mma_kernel in kernels/cuda/tf32x3_gemm.cu) ----
//
// k-slices copied global → shared by cp.async in 16-byte chunks into a ring of kStages slices (no
// register staging, one barrier a slice), operands kept in shared memory in their source layout (so
// transposed operands need no transpose on the way in), and mma.sync.m16n8k8 TF32 fed from shared
// memory by layouts chosen so that neither the chunk copies nor the fragment loads have bank
// conflicts.
template <int Rows, int Cols, int WarpRows, int WarpCols, int Stages, int MinBlocks>
struct Tf32x3MmaTileT {
  static constexpr int kRows = Rows, kCols = Cols, kWarpRows = WarpRows, kWarpCols = WarpCols;
  static constexpr int kStages = Stages;
  static constexpr int kMinBlocks = MinBlocks;  // blocks a multiprocessor holds at once (__launch_bounds__)
  static constexpr int kDepth = 32;
  static constexpr int kWarps = (Rows / WarpRows) * (Cols / WarpCols);
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWarpsAcross = Cols / WarpCols;
  static constexpr int kFragRows = WarpRows / 16, kFragCols = WarpCols / 8;  // m16 and n8 fragments of a warp
  // Pitches, in floats: a k-major slice (k contiguous: A plain, B transposed) has kDepth + 4, so the
  // fragment loads' lanes (row g, k t) fall on banks 4g + t; an m- or n-major slice (A transposed,
  // B plain) has its width + 8, so lanes (k t, row g) fall on banks 8t + g. Both keep rows 16-byte
  // aligned for cp.async.
  static constexpr int kKPitch = kDepth + 4, kAMPitch = Rows + 8, kBNPitch = Cols + 8;
  static constexpr int kAFloats = Rows * kKPitch > kDepth * kAMPitch ? Rows * kKPitch : kDepth * kAMPitch;
  static constexpr int kBFloats = Cols * kKPitch > kDepth * kBNPitch ? Cols * kKPitch : kDepth * kBNPitch;
  static constexpr int kStageFloats = kAFloats + kBFloats;  // one slice of A then one of B
  static constexpr int kSharedBytes = kStages * kStageFloats * 4;
  static constexpr int kAChunks = Rows * kDepth / 4 / kThreads, kBChunks = kDepth * Cols / 4 / kThreads;
  static_assert(Rows % WarpRows == 0 && Cols % WarpCols == 0 && WarpRows % 16 == 0 && WarpCols % 8 == 0,
                "warps tile the block in m16n8 fragments");
  static_assert(Rows % 32 == 0 && Cols % 32 == 0, "m- and n-major pitches of 8 modulo 32 banks");
  static_assert(kAChunks * kThreads * 4 == Rows * kDepth && kBChunks * kThreads * 4 == kDepth * Cols,
                "chunks split evenly");
  static_assert(kAFloats % 4 == 0 && kBFloats % 4 == 0, "16-byte aligned slices");
};
// 128×128 tiles of 8 warps (64×32 each; 3 slices of 36 KiB), two blocks a multiprocessor (128
// registers a thread); 64×64 tiles of 4 warps (32×32; 54 KiB) for thin products, four at a time.
using Tf32x3MmaBigTile = Tf32x3MmaTileT<128, 128, 64, 32, 3, 2>;
using Tf32x3MmaSmallTile = Tf32x3MmaTileT<64, 64, 32, 32, 3, 4>;

// Where the elements of an m16n8k8 TF32 fragment sit (PTX ISA, "Matrix Fragments for mma.m16n8k8",
// .tf32; CUTLASS's SM80_16x8x8_F32TF32TF32F32_TN): lane = 4·group + thread_in_group.
//   A (16×8, row):  register r at (row group + 8·(r&1), k thread + 4·(r>>1))
//   B (8×8, col):   register r at (k thread + 4·r, col group)
//   C (16×8):       register r at (row group + 8·(r>>1), col 2·thread + (r&1))
UV_HOST_DEVICE inline TileElement mma_a_coord(int lane, int reg) {
  return {lane / 4 + 8 * (reg & 1), lane % 4 + 4 * (reg >> 1)};
}
UV_HOST_DEVICE inline TileElement mma_b_coord(int lane, int reg) { return {lane % 4 + 4 * reg, lane / 4}; }
UV_HOST_DEVICE inline TileElement mma_c_coord(int lane, int reg) {
  return {lane / 4 + 8 * (reg >> 1), 2 * (lane % 4) + (reg & 1)};
}

// Shared-memory offsets within a slice: A's element (row of the tile, k), B's (k, column).
template <typename Tile, bool TransA>
UV_HOST_DEVICE constexpr int tf32x3_a_smem(int row, int k) {
  return TransA ? k * Tile::kAMPitch + row : row * Tile::kKPitch + k;
}
template <typename Tile, bool TransB>
UV_HOST_DEVICE constexpr int tf32x3_b_smem(int k, int col) {
  return TransB ? col * Tile::kKPitch + k : k * Tile::kBNPitch + col;
}

// Chunk c (thread + i·threads) of a slice: 4 elements along the source's contiguous dimension.
// Consecutive chunks are consecutive in the source (coalesced) and, 8 at a time, in 8 distinct
// 16-byte bank groups (a quarter warp's 16-byte stores without conflicts).
struct ChunkCopy {
  int64_t src;  // offset of the chunk's first element from the operand's base
  int valid;    // elements of it inside the matrix (0 to 4): the rest are filled with zeros
  int dst;      // offset in the slice
};
// A: rows [row0, m) of op(A), k in [k0, k_end); stored m×k (lda) or, transposed, k×m.
template <typename Tile, bool TransA>
UV_HOST_DEVICE inline ChunkCopy tf32x3_a_chunk(int c, int64_t row0, int64_t k0, int64_t m, int64_t k_end, int64_t lda) {
  constexpr int kAcross = TransA ? Tile::kRows / 4 : Tile::kDepth / 4;  // chunks along the contiguous dimension
  const int outer = c / kAcross, inner = 4 * (c % kAcross);
  const int row = TransA ? inner : outer, k = TransA ? outer : inner;
  const int64_t gr = row0 + row, gk = k0 + k;
  const int64_t left = TransA ? m - gr : k_end - gk;  // elements to the contiguous dimension's end
  const bool inside = TransA ? gk < k_end : gr < m;
  const int valid = !inside || left <= 0 ? 0 : left >= 4 ? 4 : static_cast<int>(left);
  return {TransA ? gk * lda + gr : gr * lda + gk, valid, tf32x3_a_smem<Tile, TransA>(row, k)};
}
// B: k in [k0, k_end), columns [col0, n) of op(B); stored k×n (ldb) or, transposed, n×k.
template <typename Tile, bool TransB>
UV_HOST_DEVICE inline ChunkCopy tf32x3_b_chunk(int c, int64_t k0, int64_t col0, int64_t k_end, int64_t n, int64_t ldb) {
  constexpr int kAcross = TransB ? Tile::kDepth / 4 : Tile::kCols / 4;
  const int outer = c / kAcross, inner = 4 * (c % kAcross);
  const int k = TransB ? inner : outer, col = TransB ? outer : inner;
  const int64_t gk = k0 + k, gc = col0 + col;
  const int64_t left = TransB ? k_end - gk : n - gc;
  const bool inside = TransB ? gc < n : gk < k_end;
  const int valid = !inside || left <= 0 ? 0 : left >= 4 ? 4 : static_cast<int>(left);
  return {TransB ? gc * ldb + gk : gk * ldb + gc, valid, tf32x3_b_smem<Tile, TransB>(k, col)};
}
// The same copies as the kernel makes them: one thread's pieces of one operand's slice, with the
// address and bounds arithmetic done once per slice rather than per piece (registers the big tile
// cannot afford otherwise). Width is the tile's rows (A) or columns (B); KInner says
// that k is the source's contiguous dimension (A plain, B transposed); Pitch is the slice's row
// pitch for that layout. Elems = 4: 16-byte chunks, whose specification is tf32x3_a_chunk /
// tf32x3_b_chunk (CPU-tested); Elems = 1: single elements, for sources not 16-byte aligned, where a
// warp's 32 lanes take 32 consecutive elements of a row (coalesced, 32 distinct banks: chunks'
// 4-byte copies would collide 4 ways at the k-major pitch).
template <int Width, bool KInner, int Pitch, int Threads, int Elems>
struct Tf32x3SliceCopies {
  static constexpr int kDepth = 32;
  static constexpr int kElems = Elems;
  static constexpr int kAcross = (KInner ? kDepth : Width) / Elems;  // pieces along the contiguous dimension
  static constexpr int kPieces = Width * kDepth / Elems / Threads;   // a thread's pieces of a slice
  static constexpr int kOuterStep = Threads / kAcross;  // the outer index from one of a thread's pieces to the next
  static_assert(Threads % kAcross == 0 && kPieces * Threads * Elems == Width * kDepth, "pieces a fixed step apart");
  int64_t src;         // piece 0's offset from the operand's base
  int64_t chunk_step;  // from piece i's source to piece i + 1's: kOuterStep rows of the source
  int64_t k_left;      // KInner: k_end − piece 0's k; otherwise k_end − piece 0's outer k
  int64_t w_left;      // the other dimension's room: width limit − piece 0's index along it
  int dst;             // piece 0's offset in the slice

  // w0: the tile's first row (A) or column (B); w_limit: m or n; ld: the source's leading dimension.
  UV_HOST_DEVICE Tf32x3SliceCopies(int thread, int64_t w0, int64_t k0, int64_t w_limit, int64_t k_end, int64_t ld) {
    const int outer = thread / kAcross, inner = Elems * (thread % kAcross);
    const int64_t w = w0 + (KInner ? outer : inner), k = k0 + (KInner ? inner : outer);
    src = KInner ? w * ld + k : k * ld + w;
    chunk_step = int64_t{kOuterStep} * ld;
    k_left = k_end - k;
    w_left = w_limit - w;
    dst = outer * Pitch + inner;
  }
  // Piece i of this slice: elements inside the matrix (0 to Elems), its source offset and slot offset.
  UV_HOST_DEVICE int valid(int i) const {
    const int64_t outer_left = (KInner ? w_left : k_left) - int64_t{i} * kOuterStep;
    const int64_t left = KInner ? k_left : w_left;  // along the contiguous dimension
    return outer_left <= 0 || left <= 0 ? 0 : left >= Elems ? Elems : static_cast<int>(left);
  }
  UV_HOST_DEVICE int64_t source(int i) const { return src + i * chunk_step; }
  UV_HOST_DEVICE int slot(int i) const { return dst + i * kOuterStep * Pitch; }
};
template <typename Tile, bool TransA, int Elems = 4, int Threads = Tile::kThreads>
using Tf32x3ACopies = Tf32x3SliceCopies<Tile::kRows, !TransA, TransA ? Tile::kAMPitch : Tile::kKPitch, Threads, Elems>;
template <typename Tile, bool TransB, int Elems = 4>
using Tf32x3BCopies =
    Tf32x3SliceCopies<Tile::kCols, TransB, TransB ? Tile::kKPitch : Tile::kBNPitch, Tile::kThreads, Elems>;

// The order of a product's tiles: blocks start in launch order (x fastest), so consecutive blocks
// take the row tiles of a band of kTf32x3TileGroup, column tile after column tile: a wave of blocks
// then reads a band of A and a band of B (squarish) instead of all of A for one column strip.
// A bijection of (x, y) on the row_tiles × col_tiles grid.
constexpr int kTf32x3TileGroup = 16;
UV_HOST_DEVICE inline void tf32x3_tile_order(int64_t x, int64_t y, int64_t row_tiles, int64_t col_tiles,
                                             int64_t& row_tile, int64_t& col_tile) {
  const int64_t linear = y * row_tiles + x, band = int64_t{kTf32x3TileGroup} * col_tiles;
  const int64_t first_row = linear / band * kTf32x3TileGroup;
  const int64_t rows = row_tiles - first_row < kTf32x3TileGroup ? row_tiles - first_row : kTf32x3TileGroup;
  const int64_t within = linear % band;
  row_tile = first_row + within % rows;
  col_tile = within / rows;
}

// 16-byte chunk copies need 16-byte aligned sources: the base, the leading dimension and, across
// products, the stride (row0, col0 and k0 are multiples of 4). Otherwise the kernel copies 4 bytes
// at a time.
inline bool tf32x3_chunks_aligned(const float* base, int64_t ld, int64_t count, int64_t stride) {
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && ld % 4 == 0 && (count == 1 || stride % 4 == 0);
}
// The epilogue's pairs (a row's columns 2t, 2t + 1) as one 8-byte store: the base, the leading
// dimension and, across products, the stride even.
inline bool tf32x3_pairs_aligned(const float* base, int64_t ld, int64_t count, int64_t stride) {
  return reinterpret_cast<uintptr_t>(base) % 8 == 0 && ld % 2 == 0 && (count == 1 || stride % 2 == 0);
}

// ---- The wgmma kernel's arithmetic (tf32x3_wgmma_kernel in kernels/cuda/sm90a/tf32x3_wgmma.cu) ----
//
// Hopper's warpgroup MMA (wgmma, sm_90a only): a warpgroup of 4 warps multiplies a 64×8 A held in
// its registers by an 8×N B read from shared memory through a matrix descriptor, asynchronously.
// mma.sync reaches only part of Hopper's tensor-core rate; wgmma is how the rest is had. For TF32,
// B must be K-major in shared memory (no transposed form), and both its TF32 parts are needed, so
// each k-slice of B goes from the ring (as the mma kernel's, in B's source layout) through one
// conversion pass into two K-major buffers, big and small, split once per block instead of once
// per warp that reads them. A's fragments are split in registers as they leave the ring.
//
// 128×128 tiles of 2 warpgroups, each 64 rows × all 128 columns (wgmma m64n128k8: 64 accumulators
// a thread), one block a multiprocessor with up to 255 registers a thread. The tensor cores work
// on slice s while the threads convert slice s + 1: B's parts and A's registers are double
// buffered, and each slice waits only for the one before it (wgmma.wait_group 1).
struct Tf32x3WgmmaTile : Tf32x3MmaTileT<128, 128, 64, 32, 3, 1> {
  // The base gives the ring: kStages slots of A's and B's slices in their source layouts, its
  // pitches and its cp.async copies for 256 threads (kWarpRows and kWarpCols are unused here).
  static constexpr int kWarpgroups = kThreads / 128;
  static constexpr int kSplitFloats = kCols * kDepth;  // one TF32 part of B's slice (tf32x3_wgmma_b_offset)
  static constexpr int kPartBuffers = 2;               // slices whose parts are in use at once
  // The parts first (buffer 0's big and small, buffer 1's), then the ring. Hides the base's
  // ring-only size.
  static constexpr int kSharedBytes = (2 * kPartBuffers * kSplitFloats + kStages * kStageFloats) * 4;
  static constexpr int kConvertChunks = kCols * kDepth / 4 / kThreads;  // a thread's 4-k chunks of B's slice
  // Tf32x3Kernel::WgmmaPresplit: B's parts come split (tf32x3_presplit_offset) with A's slice in
  // each of 4 ring slots; the copy of slice s + 2 goes where slice s − 2 was, whose wgmmas are done.
  static constexpr int kPresplitStages = 4;
  static constexpr int kPresplitStageFloats = kAFloats + 2 * kSplitFloats;  // A's slice, B's big and small
  static constexpr int kPresplitSharedBytes = kPresplitStages * kPresplitStageFloats * 4;
  // Tf32x3Kernel::WgmmaMbarrier: the ring's "full" and "empty" mbarriers, one each a slot, after it.
  static constexpr int kMbarrierSharedBytes = kPresplitSharedBytes + 2 * kPresplitStages * 8;
  // Tf32x3Kernel::WgmmaSpecialised: the same ring and mbarriers, filled by a producer warpgroup of
  // its own ahead of the 2 consumer warpgroups above (tf32x3_specialised_full_arrivals). setmaxnreg
  // moves registers from the producer, which only copies, to the consumers: 384 threads enter
  // with 168 each (65536 / 384, in steps of 8), and 56 · 128 + 224 · 256 is the same file. ptxas
  // spills nothing at 56 and 224; at 40 and 232 (CUTLASS's split) the persistent producer spilled.
  // Where A is not 16-byte aligned (a leading dimension not a multiple of 4; no longer T's, whose
  // rows are padded: PredictedLinearShape::t_ld) the producer copies single elements in a loop it
  // does not unroll: unrolled, their 32 addresses spilled at any split.
  static constexpr int kProducerThreads = 128;
  static constexpr int kSpecialisedThreads = kThreads + kProducerThreads;
  static constexpr int kProducerRegisters = 56, kConsumerRegisters = 224;
  static constexpr int kSpecialisedEntryRegisters = 65536 / kSpecialisedThreads / 8 * 8;
  static_assert(kRows == 64 * kWarpgroups, "a warpgroup per 64 rows");
  static_assert(kAFloats % 32 == 0, "B's parts 128-byte aligned after A's slice");
  static_assert(kConvertChunks * kThreads * 4 == kCols * kDepth, "the conversion splits evenly");
  static_assert(kProducerRegisters * kProducerThreads + kConsumerRegisters * kThreads <=
                    kSpecialisedEntryRegisters * kSpecialisedThreads,
                "setmaxnreg moves registers between the warpgroups, never more than the block entered with");
  static_assert(kProducerRegisters % 8 == 0 && kConsumerRegisters % 8 == 0 && kProducerRegisters >= 24 &&
                    kConsumerRegisters <= 256,
                "setmaxnreg's counts: multiples of 8 in 24 … 256");
};

// By size, wgmma's big tiles where they are at least half full (m·n against the tiles' area): the
// chain's thin X·U and dV (r = 204 fills 80% of two 128-wide tiles) keep them, with split-K; the
// small products of a small network take the mma kernel's 64×64 tiles, which waste less on
// zero-filled edges.
inline bool tf32x3_wgmma_fills(int64_t m, int64_t n) {
  const int64_t rows = tf32x3_row_blocks<Tf32x3WgmmaTile>(m) * Tf32x3WgmmaTile::kRows;
  const int64_t cols = tf32x3_col_blocks<Tf32x3WgmmaTile>(n) * Tf32x3WgmmaTile::kCols;
  return 2 * m * n >= rows * cols;
}

// B's TF32 parts for wgmma: 16-byte rows of 4 k each, 8 columns (n) to a 128-byte "core matrix",
// the no-swizzle K-major canonical layout of the PTX ISA's matrix descriptor: in 16-byte units,
// ((8, n/8), 2) : ((1, SBO), LBO) for one 8-deep step. Here [n/8][k/4][n%8][k%4]: the next 4 k
// (LBO) 128 bytes on, the next 8 columns (SBO) a whole 32-deep slice's 1024 bytes on; the k-step
// kk (8 k) starts at 256·kk bytes.
UV_HOST_DEVICE constexpr int tf32x3_wgmma_b_offset(int n, int k) {
  return (n / 8) * 256 + (k / 4) * 32 + (n % 8) * 4 + k % 4;
}
// Tf32x3Kernel::WgmmaPresplit: op(B) (k×n) split into its parts once, by a kernel of its own,
// instead of by every block of a row of tiles that reads it (the chain's U, V, Uᵀ and Vᵀ are read
// by M/128 of them). In the order the blocks copy them: for each k-slice of 32
// and 128-column tile, big then small, each in tf32x3_wgmma_b_offset's layout; zeros past k and n.
UV_HOST_DEVICE constexpr int64_t tf32x3_presplit_tiles(int64_t n) {
  return (n + Tf32x3WgmmaTile::kCols - 1) / Tf32x3WgmmaTile::kCols;
}
UV_HOST_DEVICE constexpr int64_t tf32x3_presplit_floats(int64_t k, int64_t n) {
  return (k + Tf32x3WgmmaTile::kDepth - 1) / Tf32x3WgmmaTile::kDepth * tf32x3_presplit_tiles(n) * 2 *
         Tf32x3WgmmaTile::kSplitFloats;
}
// Where B's parts go in the workspace: the parts, then a 128-byte word whose first uint32 the
// presplit sets to its epoch where any small part is (B not exactly TF32, tf32x3_wgmma_presplit). Where
// none is (a dictionary rounded to TF32: LayerConfig::dictionary_precision, models/network.cpp),
// the kernels drop B's small part: its copy and its a_big·b_small wgmma, a third of the tensor work
// (the sum is the same: that term is 0). One difference: an Inf in A then meets no zero small part
// of B, so its outputs are ±Inf, as the CPU's, where the full path gives NaN (Inf·0).
inline constexpr int64_t kTf32x3PresplitFlagFloats = 32;
UV_HOST_DEVICE constexpr int64_t tf32x3_presplit_region_floats(int64_t k, int64_t n) {
  return tf32x3_presplit_floats(k, n) + kTf32x3PresplitFlagFloats;
}
// The ring slot of a presplit ring's g-th slice (g ≥ 0; both rings, Tf32x3WgmmaTile::kPresplitStages).
UV_HOST_DEVICE constexpr int tf32x3_presplit_slot(int64_t g) {
  return static_cast<int>(static_cast<uint64_t>(g) % Tf32x3WgmmaTile::kPresplitStages);
}
// The big part's index (the small one kSplitFloats further) of logical k kk (the order the
// wgmmas read, tf32x3_presplit_place maps op(B)'s k to it) and column nn. At a slice's and tile's
// first element, where that block of parts starts.
UV_HOST_DEVICE constexpr int64_t tf32x3_presplit_offset(int64_t tiles, int64_t kk, int64_t nn) {
  using Tile = Tf32x3WgmmaTile;
  return ((kk / Tile::kDepth) * tiles + nn / Tile::kCols) * 2 * Tile::kSplitFloats +
         tf32x3_wgmma_b_offset(int(nn % Tile::kCols), int(kk % Tile::kDepth));
}
// The presplit kernels' k order within a slice, where A is not transposed. A wgmma k-step's 8 k
// (its "logical" k 8·kk + c, c < 8) need not be op(B)'s next 8: any order of the slice's 32
// serves, so long as A's registers and B's parts agree. Logical k 4q + e (q < 8, e < 4) is then
// op(B)'s k 8e + q, so that a lane's A fragments (mma_a_coord: k t and t + 4 of each k-step,
// t = lane % 4) are op(A)'s k 8t … 8t + 7 of the slice, contiguous in A's k-major slice: two
// 16-byte loads a row instead of eight 4-byte ones (tf32x3_presplit_a_element). B's parts are
// written in that order by the presplit kernel (tf32x3_presplit_place). Aᵀ's slice is m-major,
// where those 8 k would fall on one bank (its pitch is 0 modulo 32 banks over 8 rows), so
// products with Aᵀ keep the natural order, as do the kernels that split B themselves.
static_assert(Tf32x3WgmmaTile::kDepth == 32 && Tf32x3WgmmaTile::kDepth / 8 == 4, "the order is the 32-deep slice's");
UV_HOST_DEVICE constexpr int tf32x3_presplit_k(int logical) { return 8 * (logical % 4) + logical / 4; }
UV_HOST_DEVICE constexpr int tf32x3_presplit_logical_k(int k) { return 4 * (k % 8) + k / 8; }
// op(B)'s element (kk, nn): its big part's index in the presplit layout (the small one
// kSplitFloats further), its k put in the logical order above where `permuted`.
UV_HOST_DEVICE constexpr int64_t tf32x3_presplit_place(int64_t tiles, int64_t kk, int64_t nn, bool permuted) {
  return tf32x3_presplit_offset(tiles, permuted ? kk / 32 * 32 + tf32x3_presplit_logical_k(int(kk % 32)) : kk, nn);
}
// In that order, k-step kk's fragment register r (mma_a_coord: logical k 8·kk + t + 4·(r >> 1),
// row g + 8·(r & 1)) holds element tf32x3_presplit_a_element(kk, r) of the 8 k (8t … 8t + 7) its
// lane loads from that row: op(A)'s k 8t + 2·kk + (r >> 1) of the slice (tf32x3_presplit_a_k).
UV_HOST_DEVICE constexpr int tf32x3_presplit_a_element(int kk, int r) { return 2 * kk + (r >> 1); }
UV_HOST_DEVICE constexpr int tf32x3_presplit_a_k(int t, int kk, int r) { return 8 * t + tf32x3_presplit_a_element(kk, r); }
// ---- How tf32x3_gemm runs a product: which tiles, B presplit or not, split-K, depth chunks ----

// Which tiles the products take: by size (Auto, the default; tf32x3_wgmma_fills on wgmma,
// tf32x3_use_small_tiles on mma), or all big or all small (tests: every path on small products).
enum class Tf32x3Tiles { Auto, Big, Small };
// What a plan needs to know of the GPU and the choices.
struct Tf32x3Gpu {
  int multiprocessors = 0;
  bool wgmma = false;     // the big tiles run on wgmma (a wgmma kernel chosen, compute capability 9.0)
  bool presplit = false;  // ... with B presplit (tf32x3_presplits: WgmmaPresplit and the kernels built on it)
  Tf32x3Tiles tiles = Tf32x3Tiles::Auto;
  bool persistent = false;  // ... in persistent blocks where that applies (WgmmaPersistent, WgmmaMbarrierPersistent,
                            // WgmmaSpecialised)
  bool mbarrier = false;    // ... its ring on mbarriers (WgmmaMbarrier, WgmmaMbarrierPersistent, the specialised two)
  bool specialised = false;  // ... filled by a producer warpgroup (WgmmaSpecialised, WgmmaSpecialisedNonPersistent)
};
enum class Tf32x3TileKind { MmaSmall, MmaBig, Wgmma };
// One launch of a product.
struct Tf32x3Launch {
  bool ok = false;  // false: no launch keeps its splits within the depth (or B presplit, where required)
  Tf32x3TileKind tiles = Tf32x3TileKind::MmaSmall;
  bool presplit = false;     // B's parts (and flag) at workspace + part_start, split-K's partials before them
  int64_t part_start = 0;
  Tf32x3Split split;
  int64_t persistent_blocks = 0;  // > 0: that many persistent blocks take the tiles (tf32x3_persistent_unit)
  bool mbarrier = false;          // the presplit ring on mbarriers (WgmmaMbarrier, WgmmaMbarrierPersistent,
                                  // the specialised two)
  bool specialised = false;       // ... filled by a producer warpgroup (WgmmaSpecialised, ...NonPersistent)
};
// The blocks a multiprocessor-full GPU holds at once on `tiles` (their __launch_bounds__).
inline int64_t tf32x3_slots(Tf32x3TileKind tiles, int multiprocessors) {
  const int per_sm = tiles == Tf32x3TileKind::MmaSmall ? Tf32x3MmaSmallTile::kMinBlocks
                     : tiles == Tf32x3TileKind::MmaBig ? Tf32x3MmaBigTile::kMinBlocks
                                                       : Tf32x3WgmmaTile::kMinBlocks;
  return int64_t{multiprocessors} * per_sm;
}
// The tiles of `count` m×n products on `tiles`' grid (the big tiles share one grid: Tf32x3BigTile).
inline int64_t tf32x3_tile_blocks(Tf32x3TileKind tiles, int64_t count, int64_t m, int64_t n) {
  return tiles == Tf32x3TileKind::MmaSmall
             ? count * tf32x3_row_blocks<Tf32x3MmaSmallTile>(m) * tf32x3_col_blocks<Tf32x3MmaSmallTile>(n)
             : count * tf32x3_row_blocks<Tf32x3BigTile>(m) * tf32x3_col_blocks<Tf32x3BigTile>(n);
}
// `workspace_floats`: 0 without a workspace; `aligned`: it is 128-byte aligned (the presplit
// parts' 16-byte copies). B presplit where the kernel is chosen, the product is one and its parts
// fit half the workspace; then, unless `require_presplit`, without it where the splits need the
// room. Splits no deeper than `max_depth` (tf32x3_split).
inline Tf32x3Launch tf32x3_plan_launch(int64_t count, int64_t m, int64_t n, int64_t k, int64_t workspace_floats,
                                       bool aligned, const Tf32x3Gpu& gpu, int64_t max_depth, bool require_presplit) {
  Tf32x3Launch out;
  const bool small = gpu.tiles == Tf32x3Tiles::Auto
                         ? (gpu.wgmma ? !tf32x3_wgmma_fills(m, n) : tf32x3_use_small_tiles(count, m, n, gpu.multiprocessors))
                         : gpu.tiles == Tf32x3Tiles::Small;
  out.tiles = small ? Tf32x3TileKind::MmaSmall : gpu.wgmma ? Tf32x3TileKind::Wgmma : Tf32x3TileKind::MmaBig;
  // The parts (no more than half the workspace) and their flag at its end.
  const int64_t part_floats = tf32x3_presplit_floats(k, n);
  out.part_start = (workspace_floats - tf32x3_presplit_region_floats(k, n)) / 32 * 32;
  out.presplit = out.tiles == Tf32x3TileKind::Wgmma && gpu.presplit && count == 1 && workspace_floats > 0 && aligned &&
                 part_floats <= workspace_floats / 2;
  if (require_presplit && !out.presplit) return out;
  // The tiles' grid and how many blocks the GPU holds at once.
  const int64_t blocks = tf32x3_tile_blocks(out.tiles, count, m, n);
  const int64_t slots = tf32x3_slots(out.tiles, gpu.multiprocessors);
  auto plan = [&](int64_t room) { return tf32x3_split(count, m, n, k, blocks, slots, room, max_depth); };
  out.split = plan(out.presplit ? out.part_start : workspace_floats);
  if (out.split.splits == 0 && out.presplit && !require_presplit) {
    out.presplit = false;
    out.split = plan(workspace_floats);
  }
  out.ok = out.split.splits > 0;
  // Persistent blocks where the tiles are more than one wave, one product, B presplit and unsplit
  // (so that every tile is equally deep: tf32x3_persistent_unit).
  if (out.ok && gpu.persistent && out.presplit && out.split.splits == 1 && count == 1 && blocks > slots)
    out.persistent_blocks = slots;
  out.mbarrier = out.ok && gpu.mbarrier && out.presplit;  // persistent too where both are chosen
  out.specialised = out.mbarrier && gpu.specialised;
  return out;
}
// Tf32x3Kernel::WgmmaMbarrier's ring (kPresplitStages slots; the copies 2 slices ahead, as the
// barrier ring's): slice g's copies, by every thread, arrive on slot g's "full" mbarrier as they
// land (cp.async.mbarrier.arrive.noinc: 256 arrivals a phase); each warp arrives on slot g's
// "empty" mbarrier once its warpgroup's wgmmas of slice g are done (8 a phase). A warpgroup waits
// for full before slice g, and, after issuing slice g's wgmmas, for empty of slice g − 2 before
// copying slice g + 2 into that slot. Slice g is its slot's (g / stages)-th use, which completes
// that phase of both mbarriers: the parity to wait for.
UV_HOST_DEVICE constexpr uint32_t tf32x3_mbarrier_parity(int64_t g) {
  return static_cast<uint32_t>((g / Tf32x3WgmmaTile::kPresplitStages) & 1);
}
// Tf32x3Kernel::WgmmaSpecialised's ring: the same slots, mbarriers and parities, but one producer
// warpgroup copies every slice: before slice g it waits for slot g's "empty" phase of slice
// g − kPresplitStages (8 arrivals, one a consumer warp, as above). A consumer holds two slots, the
// slice whose wgmmas it issues and the one before, whose wgmmas may still read it (released after
// the next slice's wait_group 1), so the copies run 2 slices ahead, briefly 3: as far as the
// mbarrier ring's, but without the consumers issuing them. Its 128 threads copy A's slice
// (cp.async, each arriving on "full" as its copies land: noinc) and one of them B's parts,
// contiguous in the presplit layout, in one bulk copy that counts its bytes on "full"
// (mbarrier::complete_tx) after that thread's arrival announced them (arrive.expect_tx): 129
// arrivals and the bytes a phase. B's parts then travel through the async
// proxy, as wgmma reads them, and A is read with ordinary loads: no proxy fence on either side.
// Tf32x3SpecialisedSync::ConsumersArrive and Both (the default, for racecheck): every consumer
// thread arrives too, 256 a phase more.
UV_HOST_DEVICE constexpr uint32_t tf32x3_specialised_full_arrivals(bool consumers_arrive = false) {
  return Tf32x3WgmmaTile::kProducerThreads + 1 + (consumers_arrive ? uint32_t{Tf32x3WgmmaTile::kThreads} : 0u);
}
// The bulk copy's bytes: B's big part, and its small one unless B has none (B exactly TF32).
UV_HOST_DEVICE constexpr uint32_t tf32x3_specialised_b_bytes(bool with_small) {
  return (with_small ? 2u : 1u) * uint32_t{Tf32x3WgmmaTile::kSplitFloats} * 4u;
}
// A persistent block's work (Tf32x3Launch::persistent_blocks): block b of `blocks` takes tiles
// (units) b, b + blocks, b + 2·blocks, … of `units`, each `slices` k-slices deep, and its ring runs
// on across them: its g-th slice (from 0) is slice `slice` of unit `unit`. False past its last
// unit (and for slices = 0: no slice at all).
UV_HOST_DEVICE inline bool tf32x3_persistent_unit(int64_t g, int slices, int64_t block, int64_t blocks, int64_t units,
                                                  int64_t& unit, int& slice) {
  if (slices <= 0) return false;
  unit = block + g / slices * blocks;
  slice = static_cast<int>(g % slices);
  return unit < units;
}
// The kernel's copy cursor, one slice on from (unit, slice): the next slice of the tile, or the
// block's next tile's first. True where it moved to a new tile (its place to be worked out).
// Walked from (block, 0), it gives tf32x3_persistent_unit's (unit, slice) for g = 0, 1, 2, ….
UV_HOST_DEVICE inline bool tf32x3_persistent_advance(int64_t& unit, int& slice, int slices, int64_t blocks) {
  if (++slice < slices) return false;
  slice = 0;
  unit += blocks;
  return true;
}
// The presplit kernels, where B's parts do not fit half the workspace even for a chunk (the chain's
// T·V and dX's ·Uᵀ at K = N = 16384: V is r × 16384, its parts 2·r·16384 floats against the 32 MiB
// workspace's 4M): the product in bands of columns whose parts do, a launch (or chunks) each, so
// that B is still presplit (2–16% faster than the blocks splitting it, docs/gpu-results.md) and,
// for wgmma_persistent, the blocks persistent. The band's width, a multiple of the 128-column
// tile: as many tiles as fit, and only where each band is a wave of tiles or more (a thin product,
// dV's r rows, would fall to a few tiles a launch), and for the kernels of a block a tile, the width
// whose launches' waves are fullest. 0: no bands (the kernel, the product or the shape is not for
// them); n: the parts fit whole.
inline int64_t tf32x3_presplit_band(int64_t count, int64_t m, int64_t n, int64_t k, int64_t workspace_floats,
                                    bool aligned, const Tf32x3Gpu& gpu, int64_t depth) {
  if (!gpu.presplit || !gpu.wgmma || count != 1 || workspace_floats <= 0 || !aligned || m * n == 0) return 0;
  const int64_t deepest = k < depth ? k : depth;  // the deepest launch's k (a chunk's, past the depth)
  if (tf32x3_presplit_floats(deepest, n) <= workspace_floats / 2) return n;
  const int64_t tile_floats = tf32x3_presplit_floats(deepest, 1);  // one 128-column tile's parts
  const int64_t tiles = tile_floats > 0 ? workspace_floats / 2 / tile_floats : 0;
  const int64_t rows = tf32x3_row_blocks<Tf32x3WgmmaTile>(m), sms = gpu.multiprocessors;
  if (tiles < 1 || rows * tiles <= sms) return 0;
  if (gpu.persistent) return tiles * Tf32x3WgmmaTile::kCols;
  // A block a tile: each band's launch ends on a part-filled wave, so the width whose waves are
  // fullest, from half the most that fit up (ties: the wider, fewer bands). At r = 819 on 132
  // multiprocessors: 16 tiles (512 a band, 97% of 4 waves) rather than 19 (608, 92% of 5).
  int64_t best = tiles;
  double best_fill = 0;
  for (int64_t t = tiles; t >= (tiles + 1) / 2 && rows * t > sms; --t) {
    const int64_t blocks = rows * t, waves = (blocks + sms - 1) / sms;
    const double fill = double(blocks) / double(waves * sms);
    if (fill > best_fill + 1e-12) {
      best = t;
      best_fill = fill;
    }
  }
  return best * Tf32x3WgmmaTile::kCols;
}
// The call computing columns col0 … col0 + width − 1 of g (one product; col0 a multiple of 128, so
// the operands keep g's alignment).
inline GemmCall tf32x3_band(const GemmCall& g, int64_t col0, int64_t width) {
  GemmCall c = g;
  c.n = width;
  c.b = g.b + (g.tb ? col0 * g.ldb : col0);  // op(B) = B (k×n) or Bᵀ (B n×k)
  c.c = g.c + col0;
  if (g.bias) c.bias = g.bias + col0;
  return c;
}
// A unit's place on the launch grid the classic launch would give it (row tiles on x, column tiles
// on y, products × splits on z; x fastest): tf32x3_place takes it from there.
UV_HOST_DEVICE inline void tf32x3_unit_coords(int64_t unit, int64_t row_tiles, int64_t col_tiles, int64_t& x,
                                              int64_t& y, int64_t& z) {
  x = unit % row_tiles;
  y = unit / row_tiles % col_tiles;
  z = unit / (row_tiles * col_tiles);
}
// A product's launches: where k is within `depth`, one (`whole`). Deeper, the first of these that
// can run, in the order measured fastest on an H100 (docs/gpu-results.md, eighth session: B's
// presplit saved more than one launch in place of two at M = K = N = 4096, r = 1024): one launch
// of splits within the depth with B presplit; a launch a chunk (tf32x3_chunk) with B presplit; one
// launch of splits within the depth; a launch a chunk. `chunks`: each chunk planned as a product of
// its own (the chunks after the first are no bigger, so they fit what the first did).
struct Tf32x3Schedule {
  bool chunks = false;
  Tf32x3Launch whole;
};
inline Tf32x3Schedule tf32x3_schedule(int64_t count, int64_t m, int64_t n, int64_t k, int64_t workspace_floats,
                                      bool aligned, const Tf32x3Gpu& gpu, int64_t depth) {
  Tf32x3Schedule out;
  if (k <= depth) {
    out.whole = tf32x3_plan_launch(count, m, n, k, workspace_floats, aligned, gpu, depth, false);
    return out;
  }
  out.whole = tf32x3_plan_launch(count, m, n, k, workspace_floats, aligned, gpu, depth, true);
  if (out.whole.ok) return out;
  if (tf32x3_plan_launch(count, m, n, depth, workspace_floats, aligned, gpu, depth, true).ok) {
    out.chunks = true;
    return out;
  }
  out.whole = tf32x3_plan_launch(count, m, n, k, workspace_floats, aligned, gpu, depth, false);
  out.chunks = !out.whole.ok;
  return out;
}

// Every launch of a product, in the order tf32x3_gemm runs them: f(call, launch, band) for each,
// over the bands of columns where B's parts need them (`bands`: UV_TF32X3_BANDS; band counts from
// 0) and each band's schedule (one launch, or one a chunk).
// tf32x3_gemm launches what this walks and tf32x3_plan_summary counts it, so a plan reported is
// the plan run.
template <typename F>
void tf32x3_for_each_launch(const GemmCall& g, int64_t room, bool aligned, const Tf32x3Gpu& gpu, int64_t depth,
                            bool bands, F&& f) {
  auto product = [&](const GemmCall& p, int64_t band) {
    const Tf32x3Schedule schedule = tf32x3_schedule(p.count, p.m, p.n, p.k, room, aligned, gpu, depth);
    if (!schedule.chunks) {
      f(p, schedule.whole, band);
      return;
    }
    for (int64_t i = 0, chunks = tf32x3_chunks(p.k, depth); i < chunks; ++i) {
      const GemmCall chunk = tf32x3_chunk(p, i, depth);
      f(chunk, tf32x3_plan_launch(chunk.count, chunk.m, chunk.n, chunk.k, room, aligned, gpu, depth, false), band);
    }
  };
  const int64_t width = bands ? tf32x3_presplit_band(g.count, g.m, g.n, g.k, room, aligned, gpu, depth) : 0;
  if (width > 0 && width < g.n) {
    for (int64_t col0 = 0; col0 < g.n; col0 += width)
      product(tf32x3_band(g, col0, width < g.n - col0 ? width : g.n - col0), col0 / width);
    return;
  }
  product(g, 0);
}

// What a product's launches come to (tf32x3_for_each_launch's walk): how many, on what, and how
// full their waves of blocks are. A launch of u equal units (tiles × splits, or the tiles a
// persistent block takes in turn) on s slots runs ⌈u / s⌉ waves; `fill` is the units' work over
// the waves' room, each launch weighted by its units' depth, so 0.79 means a fifth of the
// launches' time leaves multiprocessors idle at the waves' tails (what split-K, bands and the
// persistent blocks trade against).
struct Tf32x3PlanSummary {
  bool ok = true;         // every launch has a plan (false: tf32x3_gemm refuses the product)
  int64_t bands = 0;      // column bands of B's parts (tf32x3_presplit_band; 1: none)
  int64_t launches = 0;   // the product's launches: each band's chunks (or 1) in all
  int64_t chunks = 0;     // each band's launches, where they are the same (0: they differ)
  int64_t kernels = 0;    // every kernel launched: with each B presplit and each split-K reduce
  int64_t wgmma = 0, small_tiles = 0;  // launches on wgmma's tiles, on mma's 64×64 ones (the rest: mma's 128×128)
  int64_t presplit = 0, persistent = 0, mbarrier = 0, specialised = 0;  // launches run so
  int max_splits = 1;
  int64_t waves = 0;
  double fill = 0;
  // What the launches' time is made of, for tf32x3_plan_us: k-slices a block works through, wave
  // after wave (Σ waves × a unit's slices), on wgmma with B presplit (a ring of the blocks' own, or
  // a producer warpgroup's: specialised), on wgmma splitting B itself, on mma; waves of tiles, each starting and ending (the ring's fill, the stores), in blocks of
  // their own and in persistent blocks (whose next tile's copies overlap the last one's stores);
  // bytes of the passes beside the product (B's presplit: B read, its parts written; split-K's
  // reduce: the partials read, C written).
  int64_t slice_waves_presplit = 0, slice_waves_wgmma = 0, slice_waves_mma = 0;
  int64_t slice_waves_specialised = 0;
  int64_t tile_waves = 0, tile_waves_persistent = 0;
  double side_bytes = 0;
};
inline Tf32x3PlanSummary tf32x3_plan_summary(const GemmCall& g, int64_t room, bool aligned, const Tf32x3Gpu& gpu,
                                             int64_t depth, bool bands) {
  Tf32x3PlanSummary out;
  if (g.m == 0 || g.n == 0) {  // tf32x3_gemm launches nothing
    out.bands = 1;
    return out;
  }
  double work = 0, room_work = 0;
  int64_t band_launches = 0;  // the current band's so far
  auto band_done = [&] {
    out.chunks = out.bands == 1 || out.chunks == band_launches ? band_launches : 0;
  };
  tf32x3_for_each_launch(g, room, aligned, gpu, depth, bands, [&](const GemmCall& c, const Tf32x3Launch& l, int64_t band) {
    if (band == out.bands) {  // a new band
      if (out.bands > 0) band_done();
      ++out.bands;
      band_launches = 0;
    }
    ++band_launches;
    ++out.launches;
    out.ok = out.ok && l.ok;
    if (!l.ok) return;
    const int splits = l.split.splits;
    out.kernels += 1 + (l.presplit ? 1 : 0) + (splits > 1 ? 1 : 0);
    out.wgmma += l.tiles == Tf32x3TileKind::Wgmma;
    out.small_tiles += l.tiles == Tf32x3TileKind::MmaSmall;
    out.presplit += l.presplit;
    out.persistent += l.persistent_blocks > 0;
    out.mbarrier += l.mbarrier;
    out.specialised += l.specialised;
    out.max_splits = splits > out.max_splits ? splits : out.max_splits;
    const int64_t units = tf32x3_tile_blocks(l.tiles, c.count, c.m, c.n) * splits;
    const int64_t slots = tf32x3_slots(l.tiles, gpu.multiprocessors);
    const int64_t waves = (units + slots - 1) / slots;
    const int64_t split_depth = tf32x3_split_depth(c.k, splits);  // 0 for k = 0
    const double unit_depth = double(std::max<int64_t>(split_depth, 1));  // k = 0: stores only
    out.waves += waves;
    const int64_t slices = split_depth / Tf32x3BigTile::kDepth;  // a multiple of the slice
    // In waves of one 128×128 tile a multiprocessor: mma's big tiles run 2 a multiprocessor (a
    // wave of them is 2 such waves' work), its small ones 4 of a quarter the size.
    const int64_t per_sm = slots / gpu.multiprocessors;
    const int64_t scale = l.tiles == Tf32x3TileKind::MmaBig ? per_sm : 1;
    (l.tiles != Tf32x3TileKind::Wgmma ? out.slice_waves_mma
     : l.specialised                  ? out.slice_waves_specialised
     : l.presplit                     ? out.slice_waves_presplit
                                      : out.slice_waves_wgmma) += scale * waves * slices;
    (l.persistent_blocks > 0 ? out.tile_waves_persistent : out.tile_waves) += scale * waves;
    if (l.presplit) out.side_bytes += 4.0 * 3.0 * double(c.k) * double(c.n);
    if (splits > 1) out.side_bytes += 4.0 * double(splits + (c.beta != 0.f ? 2 : 1)) * double(c.count * c.m * c.n);
    work += double(units) * unit_depth;
    room_work += double(waves * slots) * unit_depth;
  });
  band_done();
  out.fill = room_work > 0 ? work / room_work : 0;
  return out;
}
// A plan's time in µs, estimated from what it is made of (Tf32x3PlanSummary's last fields):
// a k-slice of a 128×128 block a wave, on wgmma with B presplit or not; a wave's tiles' start and
// end (the ring's fill, the stores); a kernel (launch gap and ramp); the side passes' bytes at
// 2.5 TB/s. The eighth session fitted the constants to the chain_fused passes it timed on an H100
// (docs/gpu-results.md, 2026-11-26, call 4, on wgmma_presplit); presplit_slice_us is still that
// fit's. The others were refitted (tools/fit_plan_model.py) to the fourteenth session's H100
// products (2026-11-27): the 20 at M = K = N = 4096 on wgmma_specialised (persistent blocks, the
// plain ring sync) and the 20 at M = 4096, K = N = 16384 on wgmma_specialised_nonpersistent (ring
// sync both), each within 11% of its time. A persistent wave of tiles came out dearer than a
// block a tile's (5.74 µs against 2.38), though a persistent block's next tile overlaps its last
// one's stores: the only persistent rows are the first run's, and the term most likely took up
// that kernel's slices, 2–12% slower than the nonpersistent one's (docs/gpu-results.md). mma's
// slice is wgmma's of the eighth session × 1.35, the middle of the 1.2–1.5× wgmma measured over
// mma, and not fitted. A model for reading a products table (measured against estimated) and the
// plans' summaries, not a measurement: no plan depends on it.
struct Tf32x3CostModel {
  double presplit_slice_us = 1.85, wgmma_slice_us = 2.02, mma_slice_us = 1.35 * 2.14;
  double tile_us = 2.38, persistent_tile_us = 5.74, kernel_us = 1.53, bytes_per_us = 2.5e6;
  double specialised_slice_us = 1.41;
};
inline double tf32x3_plan_us(const Tf32x3PlanSummary& s, const Tf32x3CostModel& m = {}) {
  return double(s.slice_waves_presplit) * m.presplit_slice_us +
         double(s.slice_waves_specialised) * m.specialised_slice_us + double(s.slice_waves_wgmma) * m.wgmma_slice_us +
         double(s.slice_waves_mma) * m.mma_slice_us + double(s.tile_waves) * m.tile_us +
         double(s.tile_waves_persistent) * m.persistent_tile_us + double(s.kernels) * m.kernel_us +
         s.side_bytes / m.bytes_per_us;
}
// The model's parts by name (the names tools/fit_plan_model.py reads), then its time.
inline std::vector<std::pair<std::string, double>> tf32x3_plan_parts(const Tf32x3PlanSummary& s) {
  return {{"slice_waves_presplit", double(s.slice_waves_presplit)},
          {"slice_waves_wgmma", double(s.slice_waves_wgmma)},
          {"slice_waves_mma", double(s.slice_waves_mma)},
          {"slice_waves_specialised", double(s.slice_waves_specialised)},
          {"tile_waves", double(s.tile_waves)},
          {"tile_waves_persistent", double(s.tile_waves_persistent)},
          {"kernels", double(s.kernels)},
          {"side_bytes", s.side_bytes},
          {"model_us", tf32x3_plan_us(s)}};
}
// One line for a reader: "16 launches (2 bands × 8 chunks) on wgmma, presplit 8/16, splits 2;
// 40 kernels, 64 waves 79% full; model 1.234 ms".
inline std::string tf32x3_plan_text(const Tf32x3PlanSummary& s) {
  if (!s.ok) return "no launch within the chunk depth";
  if (s.launches == 0) return "nothing to run (an empty product)";
  auto count = [&](int64_t n, const char* what) {
    return n == 0 ? std::string() : n == s.launches ? std::string(", ") + what
                                                    : ", " + std::string(what) + " " + std::to_string(n) + "/" +
                                                          std::to_string(s.launches);
  };
  std::string out = std::to_string(s.launches) + (s.launches == 1 ? " launch" : " launches");
  if (s.bands > 1 && s.chunks > 1)
    out += " (" + std::to_string(s.bands) + " bands × " + std::to_string(s.chunks) + " chunks)";
  else if (s.bands > 1)
    out += " (" + std::to_string(s.bands) + (s.chunks == 1 ? " bands)" : " bands, some in chunks)");
  else if (s.chunks > 1)
    out += " (" + std::to_string(s.chunks) + " chunks)";
  const int64_t big_mma = s.launches - s.wgmma - s.small_tiles;
  out += s.wgmma == s.launches ? " on wgmma" : s.small_tiles == s.launches ? " on mma 64×64"
                                          : big_mma == s.launches        ? " on mma 128×128"
                                                                         : " on mixed tiles";
  out += count(s.presplit, "presplit") + count(s.persistent, "persistent") + count(s.mbarrier, "mbarrier") +
         count(s.specialised, "specialised");
  if (s.max_splits > 1) out += ", splits " + std::to_string(s.max_splits);
  out += "; " + std::to_string(s.kernels) + (s.kernels == 1 ? " kernel, " : " kernels, ") + std::to_string(s.waves) +
         (s.waves == 1 ? " wave " : " waves ") + std::to_string(int(s.fill * 100 + 0.5)) + "% full";
  char model[48];
  std::snprintf(model, sizeof model, "; model %.3f ms", tf32x3_plan_us(s) / 1e3);
  return out + model;
}

constexpr uint32_t kTf32x3WgmmaLeadingBytes = 128, kTf32x3WgmmaStrideBytes = 1024;
constexpr uint32_t kTf32x3WgmmaStepBytes = 256;  // from one 8-deep k-step's start to the next

// wgmma's shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): bits 0–13 the
// start address, 16–29 the leading byte offset, 32–45 the stride byte offset, each in 16-byte
// units; base offset (49–51) 0 and swizzle (62–63) none.
UV_HOST_DEVICE constexpr uint64_t wgmma_descriptor(uint32_t address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return uint64_t{(address >> 4) & 0x3FFFu} | (uint64_t{(leading_bytes >> 4) & 0x3FFFu} << 16) |
         (uint64_t{(stride_bytes >> 4) & 0x3FFFu} << 32);
}
// The byte address a wgmma reads for B's element (n, k), k < 8, through a no-swizzle K-major
// descriptor: the canonical layout above, decoded. The CPU tests read the conversion's buffers
// through it.
UV_HOST_DEVICE constexpr uint32_t wgmma_k_major_address(uint64_t desc, int n, int k) {
  const uint32_t start = uint32_t(desc & 0x3FFFu) << 4, leading = uint32_t((desc >> 16) & 0x3FFFu) << 4;
  const uint32_t stride = uint32_t((desc >> 32) & 0x3FFFu) << 4;
  return start + uint32_t(n % 8) * 16 + uint32_t(n / 8) * stride + uint32_t(k / 4) * leading + uint32_t(k % 4) * 4;
}
// Chunk c (thread + i·threads) of the conversion pass: column n = row, k 4·col … 4·col + 3 of the
// slice. A quarter warp's 8 chunks are one core matrix (128 contiguous bytes, no conflicts); a
// warp's 32 consecutive columns keep the plain layout's element loads on 32 banks, and the
// transposed layout's 16-byte loads, 36 floats apart, on 8 distinct groups of 4 banks.
template <typename Tile>
UV_HOST_DEVICE constexpr TileElement tf32x3_wgmma_convert_chunk(int c) {
  return {c % Tile::kCols, c / Tile::kCols};
}
// Register fragments (PTX ISA, "Register Fragments" of wgmma .m64nNk8; CUTLASS's ALayout_64x8 and
// CLayout_64xN): warp w of the warpgroup holds rows 16w … 16w + 15, as mma.m16n8k8 does for A,
// and for the accumulators of every 8 columns j (registers 4j … 4j + 3) as mma.m16n8k8's C.
UV_HOST_DEVICE inline TileElement wgmma_a_coord(int warp_in_group, int lane, int reg) {
  const TileElement x = mma_a_coord(lane, reg);
  return {16 * warp_in_group + x.row, x.col};
}
UV_HOST_DEVICE inline TileElement wgmma_c_coord(int warp_in_group, int lane, int reg) {
  const TileElement x = mma_c_coord(lane, reg % 4);
  return {16 * warp_in_group + x.row, 8 * (reg / 4) + x.col};
}

// The kernel for the big tiles: `WgmmaPresplit` (Hopper's warpgroup MMA with B split
// into its TF32 parts beforehand, tf32x3_presplit_offset, where the product is one and its parts
// fit half the workspace, or in column bands whose parts do (tf32x3_presplit_band), and as `Wgmma`
// elsewhere; 2–16% faster than Wgmma where it applies and never slower on an H100,
// docs/gpu-results.md), `Wgmma` (the blocks split B themselves) or `Mma`
// (mma.sync fed by a cp.async ring, 8 warps a big tile). `WgmmaPersistent`:
// `WgmmaPresplit` with persistent blocks where a product's tiles are more than one wave and unsplit
// (tf32x3_plan_launch): a block a multiprocessor, each taking tile after tile
// (tf32x3_persistent_unit), its ring running on across them, so the next tile's first slices
// arrive while the last one's accumulators are stored; and in column bands where B's parts do not
// fit (tf32x3_presplit_band). `WgmmaMbarrier`: `WgmmaPresplit` whose ring
// synchronises through mbarriers instead of a barrier of the whole block every slice
// (tf32x3_mbarrier_parity). `WgmmaMbarrierPersistent`: both, the mbarrier
// ring running on across a persistent block's tiles. `WgmmaSpecialised`: warp specialisation, the
// mbarrier ring filled by a producer warpgroup of its own (tf32x3_specialised_full_arrivals) while
// the two consumer warpgroups only split A and issue wgmmas, persistent where `WgmmaPersistent` is;
// `WgmmaSpecialisedNonPersistent` (the default, kTf32x3DefaultKernel) the same with a block a tile
// everywhere. On an H100 (docs/gpu-results.md) the specialised kernel was the fastest of five at
// M = K = N = 4096 on 2026-11-26 but at r ≥ 1024, where `WgmmaMbarrier` took 1–3% less time, and
// took 2–16% less time than `WgmmaPresplit` on every large chain_fused pass timed on the two,
// K = 16384 included; on 2026-11-27 its nonpersistent form took 2–12% less time than it at
// M = K = N = 4096 (persistent blocks cost the mbarrier ring 4–13% too), and was the fastest
// kernel timed at every r. Off compute capability 9.0 the wgmma kernels run as `Mma`. Small
// tiles are always Mma's. The environment's UV_TF32X3_KERNEL (the names of kTf32x3Kernels) sets
// the choice; tests switch it with set_tf32x3_kernel.
enum class Tf32x3Kernel {
  Mma,
  Wgmma,
  WgmmaPresplit,
  WgmmaPersistent,
  WgmmaMbarrier,
  WgmmaMbarrierPersistent,
  WgmmaSpecialised,
  WgmmaSpecialisedNonPersistent
};
struct Tf32x3KernelName {
  Tf32x3Kernel kernel;
  const char* name;
};
constexpr Tf32x3KernelName kTf32x3Kernels[] = {
    {Tf32x3Kernel::Mma, "mma"},
    {Tf32x3Kernel::Wgmma, "wgmma"},
    {Tf32x3Kernel::WgmmaPresplit, "wgmma_presplit"},
    {Tf32x3Kernel::WgmmaPersistent, "wgmma_persistent"},
    {Tf32x3Kernel::WgmmaMbarrier, "wgmma_mbarrier"},
    {Tf32x3Kernel::WgmmaMbarrierPersistent, "wgmma_mbarrier_persistent"},
    {Tf32x3Kernel::WgmmaSpecialised, "wgmma_specialised"},
    {Tf32x3Kernel::WgmmaSpecialisedNonPersistent, "wgmma_specialised_nonpersistent"}};
constexpr Tf32x3Kernel kTf32x3DefaultKernel = Tf32x3Kernel::WgmmaSpecialisedNonPersistent;
inline const char* tf32x3_kernel_name(Tf32x3Kernel kernel) {
  for (const Tf32x3KernelName& k : kTf32x3Kernels)
    if (k.kernel == kernel) return k.name;
  return "?";
}
// UV_TF32X3_KERNEL's value (null or empty: the default); false for anything else.
inline bool parse_tf32x3_kernel(const char* value, Tf32x3Kernel& out) {
  if (!value || !*value) {
    out = kTf32x3DefaultKernel;
    return true;
  }
  for (const Tf32x3KernelName& k : kTf32x3Kernels)
    if (std::strcmp(value, k.name) == 0) {
      out = k.kernel;
      return true;
    }
  return false;
}
// "mma, wgmma, wgmma_presplit": the names UV_TF32X3_KERNEL takes, for messages.
inline std::string tf32x3_kernel_names() {
  std::string out;
  for (const Tf32x3KernelName& k : kTf32x3Kernels) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}
// The kernels whose big tiles run on wgmma where the device has it (as mma elsewhere).
inline bool tf32x3_is_wgmma(Tf32x3Kernel kernel) { return kernel != Tf32x3Kernel::Mma; }
// The kernels that take B presplit where it fits (the presplit rings).
inline bool tf32x3_presplits(Tf32x3Kernel kernel) {
  return kernel != Tf32x3Kernel::Mma && kernel != Tf32x3Kernel::Wgmma;
}
// What the plans know of `kernel` on a GPU of `multiprocessors` (`wgmma_available`: compute
// capability 9.0) with the tiles chosen.
inline Tf32x3Gpu tf32x3_gpu(Tf32x3Kernel kernel, int multiprocessors, bool wgmma_available, Tf32x3Tiles tiles) {
  const bool specialised =
      kernel == Tf32x3Kernel::WgmmaSpecialised || kernel == Tf32x3Kernel::WgmmaSpecialisedNonPersistent;
  return {multiprocessors,
          tf32x3_is_wgmma(kernel) && wgmma_available,
          tf32x3_presplits(kernel),
          tiles,
          kernel == Tf32x3Kernel::WgmmaPersistent || kernel == Tf32x3Kernel::WgmmaMbarrierPersistent ||
              kernel == Tf32x3Kernel::WgmmaSpecialised,
          kernel == Tf32x3Kernel::WgmmaMbarrier || kernel == Tf32x3Kernel::WgmmaMbarrierPersistent ||
              specialised,
          specialised};
}

// One term of the kernel's sum, as it forms it: a·b with each operand split into TF32 parts.
inline float tf32x3_product_host(float a, float b) {
  const float a_big = tf32_round(a), a_small = tf32_round(a - a_big);
  const float b_big = tf32_round(b), b_small = tf32_round(b - b_big);
  return a_small * b_big + a_big * b_small + a_big * b_big;
}

// The UV_TF32X3_* choices as the CUDA backend and the benches read them: the variable parsed
// (unset or empty: its default) or false with `why`, e.g. `UV_TF32X3_BANDS="2" is not 0 or 1`, the
// one message both give (the backend throws it, the benches exit 2 with it).
template <typename T>
inline bool read_tf32x3_env(const char* name, bool (*parse)(const char*, T&), const std::string& takes, T& out,
                            std::string& why) {
  const char* value = std::getenv(name);
  if (parse(value, out)) return true;
  why = std::string(name) + "=\"" + value + "\" is not " + takes;
  return false;
}
inline bool read_tf32x3_kernel_env(Tf32x3Kernel& out, std::string& why) {
  return read_tf32x3_env("UV_TF32X3_KERNEL", parse_tf32x3_kernel, "one of " + tf32x3_kernel_names(), out, why);
}
inline bool read_tf32x3_chunk_depth_env(int64_t& out, std::string& why) {
  return read_tf32x3_env("UV_TF32X3_CHUNK_DEPTH", parse_tf32x3_chunk_depth, "a positive multiple of 32", out, why);
}
inline bool read_tf32x3_workspace_mib_env(int64_t& out, std::string& why) {
  return read_tf32x3_env("UV_TF32X3_WORKSPACE_MIB", parse_tf32x3_workspace_mib,
                         "a whole number of MiB from 1 to 65536", out, why);
}
inline bool read_tf32x3_bands_env(bool& out, std::string& why) {
  return read_tf32x3_env("UV_TF32X3_BANDS", parse_tf32x3_bands, "0 or 1", out, why);
}
inline bool read_tf32x3_specialised_sync_env(Tf32x3SpecialisedSync& out, std::string& why) {
  return read_tf32x3_env("UV_TF32X3_SPECIALISED_SYNC", parse_tf32x3_specialised_sync,
                         "both, plain, producer_waits or consumers_arrive", out, why);
}

}  // namespace uv::cuda
