// The 3xTF32 GEMM (kernels/cuda/tf32x3_gemm.h) on mma.sync (tf32x3_mma_kernel): a block per tile
// of C (and per slice of k where products with few tiles split it), k in slices of 32 in a 3-slot
// cp.async ring in shared memory, mma.sync m16n8k8 fed from bank-conflict-free layouts, each warp's
// fragments split into TF32 big and small parts as they leave shared memory, each lane storing its
// own accumulators (pairs where C allows). It takes every product's small tiles, and the big ones
// off Hopper; on Hopper the big tiles run on wgmma (kernels/cuda/sm90a/tf32x3_wgmma.cu), measured
// 1.2–1.5× faster on an H100 (docs/gpu-results.md, 2026-11-26). Two other designs measured there
// (4 warps a big tile; register-staged WMMA) were slower and are gone.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "engine/core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/tf32x3_device.cuh"
#include "kernels/cuda/tf32x3_gemm.h"
#include "kernels/cuda/tf32x3_wgmma.h"

namespace uv::cuda {
namespace {

using GemmParams = Tf32x3Params;

// ---- The mma.sync kernel (kernels/cuda/tf32x3_gemm_tile.h: Tf32x3MmaTileT and its layouts) ----

// d += a·b on one m16n8k8 fragment (layouts: mma_a_coord, mma_b_coord, mma_c_coord).
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <typename Tile, bool TransA, bool TransB>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks) tf32x3_mma_kernel(GemmParams p) {
  extern __shared__ __align__(16) float smem[];  // the ring: kStages × (A's slice, B's slice)
  const int t = static_cast<int>(threadIdx.x), warp = t / 32, lane = t % 32;
  const Tf32x3Place place = tf32x3_place<Tile>(p);
  const int64_t z = place.z, batch = place.batch, row0 = place.row0, col0 = place.col0;
  const int slices = place.slices;
  const int warp_row = (warp / Tile::kWarpsAcross) * Tile::kWarpRows;
  const int warp_col = (warp % Tile::kWarpsAcross) * Tile::kWarpCols;

  float acc[Tile::kFragRows][Tile::kFragCols][4];
#pragma unroll
  for (int i = 0; i < Tile::kFragRows; ++i)
#pragma unroll
    for (int j = 0; j < Tile::kFragCols; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  const Tf32x3Ring<Tile, TransA, TransB> ring{p, place, smem, t};
  ring.start();
  for (int s = 0; s < slices; ++s) {
    const float* a_slot = ring.arrive(s);
    const float* b_slot = a_slot + Tile::kAFloats;
#pragma unroll 1  // unrolled, the big tile spills at its 128 registers
    for (int kk = 0; kk < Tile::kDepth; kk += 8) {
      uint32_t b_big[Tile::kFragCols][2], b_small[Tile::kFragCols][2];
#pragma unroll
      for (int j = 0; j < Tile::kFragCols; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const TileElement x = mma_b_coord(lane, r);
          split_tf32(b_slot[tf32x3_b_smem<Tile, TransB>(kk + x.row, warp_col + 8 * j + x.col)], b_big[j][r],
                     b_small[j][r]);
        }
#pragma unroll
      for (int i = 0; i < Tile::kFragRows; ++i) {
        uint32_t a_big[4], a_small[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const TileElement x = mma_a_coord(lane, r);
          split_tf32(a_slot[tf32x3_a_smem<Tile, TransA>(warp_row + 16 * i + x.row, kk + x.col)], a_big[r], a_small[r]);
        }
#pragma unroll
        for (int j = 0; j < Tile::kFragCols; ++j) {
          // The small terms first, so they are not lost against the big one.
          mma_tf32(acc[i][j], a_small, b_big[j]);
          mma_tf32(acc[i][j], a_big, b_small[j]);
          mma_tf32(acc[i][j], a_big, b_big[j]);
        }
      }
    }
  }
  copy_async_wait<0>();  // no copy outlives the block (only empty groups can be pending here)

  float* __restrict__ c = p.c + batch * p.stride_c;  // the product's C and bias
  const float* __restrict__ bias = p.bias ? p.bias + batch * p.n : nullptr;
  // Each lane writes its own accumulators: registers 2h and 2h + 1 are one row's two adjacent
  // columns (mma_c_coord), stored as a pair where C (or the workspace) allows.
#pragma unroll
  for (int i = 0; i < Tile::kFragRows; ++i)
#pragma unroll
    for (int j = 0; j < Tile::kFragCols; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const TileElement x = mma_c_coord(lane, 2 * h);
        store_pair(p, z, c, bias, row0 + warp_row + 16 * i + x.row, col0 + warp_col + 8 * j + x.col, acc[i][j][2 * h],
                   acc[i][j][2 * h + 1]);
      }
}

// C = alpha · (the splits' partial products, summed in split order) + beta · C.
__global__ void tf32x3_reduce_kernel(GemmParams p, int64_t count) {
  const int64_t mn = p.m * p.n, total = count * mn;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t batch = i / mn, e = i % mn;
    const float* part = p.partial + batch * p.splits * mn + e;
    float sum = 0.f;
    for (int s = 0; s < p.splits; ++s) sum += part[s * mn];
    float* dst = p.c + batch * p.stride_c + (e / p.n) * p.ldc + e % p.n;
    float v = p.beta == 0.f ? p.alpha * sum : p.alpha * sum + p.beta * *dst;
    if (p.bias) v += p.bias[batch * p.n + e % p.n];
    *dst = v;
  }
}

// The device's multiprocessors, read once: the backend runs on one device for its lifetime.
int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

// The launch grid of a product on `Tile`'s grid with `split`: `kernel(grid, p)` launches the main
// kernel, then the reduce kernel sums the splits (the workspace holds them: plan_split).
template <typename Tile, typename Kernel>
void launch(GemmParams p, int64_t count, const Tf32x3Split& split, float* workspace, cudaStream_t stream,
            Kernel kernel) {
  p.splits = split.splits;
  p.k_per_split = split.k_per_split;
  p.partial = workspace;
  const dim3 grid(static_cast<unsigned>(tf32x3_row_blocks<Tile>(p.m)), static_cast<unsigned>(tf32x3_col_blocks<Tile>(p.n)),
                  static_cast<unsigned>(count * split.splits));
  UV_CHECK(p.units == 0 || (split.splits == 1 && count == 1), "tf32x3: persistent blocks over unsplit single products only");
  kernel(grid, p);
  CUDA_CHECK_LAUNCH();
  if (split.splits > 1) {
    tf32x3_reduce_kernel<<<blocks_for(count * p.m * p.n), kThreadsPerBlock, 0, stream>>>(p, count);
    CUDA_CHECK_LAUNCH();
  }
}

// Over 48 KiB of shared memory is opt-in, per kernel; the carve-out at its maximum, so that
// kMinBlocks blocks fit whatever the driver's default split between L1 and shared memory.
template <typename Tile, bool TransA, bool TransB>
void opt_in() {
  CUDA_CHECK(cudaFuncSetAttribute(tf32x3_mma_kernel<Tile, TransA, TransB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Tile::kSharedBytes));
  CUDA_CHECK(cudaFuncSetAttribute(tf32x3_mma_kernel<Tile, TransA, TransB>,
                                  cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
}

template <typename Tile>
void opt_in_transposes() {
  opt_in<Tile, false, false>();
  opt_in<Tile, false, true>();
  opt_in<Tile, true, false>();
  opt_in<Tile, true, true>();
}

template <typename Tile, bool TransA, bool TransB>
void launch_mma(const GemmParams& p, int64_t count, const Tf32x3Split& split, float* workspace, cudaStream_t stream) {
  launch<Tile>(p, count, split, workspace, stream, [&](dim3 grid, const GemmParams& q) {
    tf32x3_mma_kernel<Tile, TransA, TransB><<<grid, Tile::kThreads, Tile::kSharedBytes, stream>>>(q);
  });
}
template <typename Tile>
void launch_mma(const GemmParams& p, int64_t count, const Tf32x3Split& split, float* workspace, cudaStream_t stream) {
  if (p.trans_a)
    p.trans_b ? launch_mma<Tile, true, true>(p, count, split, workspace, stream)
              : launch_mma<Tile, true, false>(p, count, split, workspace, stream);
  else
    p.trans_b ? launch_mma<Tile, false, true>(p, count, split, workspace, stream)
              : launch_mma<Tile, false, false>(p, count, split, workspace, stream);
}
static_assert(Tf32x3MmaBigTile::kRows == Tf32x3BigTile::kRows && Tf32x3MmaBigTile::kCols == Tf32x3BigTile::kCols &&
                  Tf32x3MmaSmallTile::kRows == Tf32x3SmallTile::kRows &&
                  Tf32x3MmaSmallTile::kCols == Tf32x3SmallTile::kCols && Tf32x3MmaBigTile::kDepth == Tf32x3BigTile::kDepth &&
                  Tf32x3MmaSmallTile::kDepth == Tf32x3BigTile::kDepth &&
                  Tf32x3WgmmaTile::kRows == Tf32x3BigTile::kRows && Tf32x3WgmmaTile::kCols == Tf32x3BigTile::kCols &&
                  Tf32x3WgmmaTile::kDepth == Tf32x3BigTile::kDepth,
              "every kernel on the grids and splits of tf32x3_gemm_tile.h");

// A choice from the environment, read by `Read` (one of tf32x3_gemm_tile.h's read_tf32x3_*_env,
// `fallback` where unset) at its first use, a bad value thrown with its variable's name; the tests
// set it since (set_tf32x3_*).
template <typename T, bool (*Read)(T&, std::string&)>
std::atomic<T>& env_choice(T fallback) {
  static std::atomic<T> choice{[&] {
    T value = fallback;
    std::string why;
    UV_REQUIRE(Read(value, why), why);
    return value;
  }()};
  return choice;
}
// UV_TF32X3_KERNEL: wgmma_specialised_nonpersistent (the default; mma off Hopper), wgmma_specialised,
// wgmma_presplit, wgmma, wgmma_persistent, wgmma_mbarrier, wgmma_mbarrier_persistent or mma.
std::atomic<Tf32x3Kernel>& kernel_choice() {
  return env_choice<Tf32x3Kernel, read_tf32x3_kernel_env>(kTf32x3DefaultKernel);
}
// Whether the environment named the kernel (then a wgmma choice off Hopper says what ran instead).
bool kernel_named() {
  static const bool named = [] {
    const char* env = std::getenv("UV_TF32X3_KERNEL");
    return env && *env;
  }();
  return named;
}
// UV_TF32X3_BANDS (parse_tf32x3_bands).
bool bands_chosen() { return env_choice<bool, read_tf32x3_bands_env>(true).load(); }
// UV_TF32X3_SPECIALISED_SYNC (parse_tf32x3_specialised_sync).
std::atomic<Tf32x3SpecialisedSync>& specialised_sync_choice() {
  return env_choice<Tf32x3SpecialisedSync, read_tf32x3_specialised_sync_env>(kTf32x3DefaultSpecialisedSync);
}
// UV_TF32X3_CHUNK_DEPTH (parse_tf32x3_chunk_depth).
std::atomic<int64_t>& chunk_depth_choice() {
  return env_choice<int64_t, read_tf32x3_chunk_depth_env>(kTf32x3ChunkDepth);
}

std::atomic<int>& tiles_choice() {
  static std::atomic<int> choice{static_cast<int>(Tf32x3Tiles::Auto)};
  return choice;
}
// The presplit parts' 16-byte copies need a 128-byte aligned workspace.
bool workspace_aligned(const float* workspace) { return reinterpret_cast<uintptr_t>(workspace) % 128 == 0; }

// One launch of a product as `plan` says (tf32x3_plan_launch): B's presplit, the main kernel and
// split-K's reduce.
void launch_product(const GemmCall& g, const Tf32x3Launch& plan, float* workspace, cudaStream_t stream) {
  UV_CHECK(plan.ok, "tf32x3_gemm: a " << g.m << "×" << g.n << "×" << g.k << " product has no launch within the "
                                      << tf32x3_chunk_depth() << "-deep chunks");
  GemmParams p{g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.stride_a, g.stride_b, g.stride_c, g.ta, g.tb, g.alpha,
               g.beta, g.a, g.b, g.c, 1, g.k, nullptr,
               g.epilogue == GemmEpilogue::Bias ? g.bias : nullptr,
               tf32x3_chunks_aligned(g.a, g.lda, g.count, g.stride_a),
               tf32x3_chunks_aligned(g.b, g.ldb, g.count, g.stride_b),
               tf32x3_pairs_aligned(g.c, g.ldc, g.count, g.stride_c),
               tf32x3_pairs_aligned(workspace, g.n, 1, 0)};
  switch (plan.tiles) {
    case Tf32x3TileKind::MmaSmall:
      launch_mma<Tf32x3MmaSmallTile>(p, g.count, plan.split, workspace, stream);
      return;
    case Tf32x3TileKind::MmaBig:
      launch_mma<Tf32x3MmaBigTile>(p, g.count, plan.split, workspace, stream);
      return;
    case Tf32x3TileKind::Wgmma:
      if (plan.presplit) {  // B split once into the workspace's tail, split-K's partials before it
        float* const parts = workspace + plan.part_start;
        unsigned* const small_any = reinterpret_cast<unsigned*>(parts + tf32x3_presplit_floats(g.k, g.n));
        p.b_small_epoch = tf32x3_wgmma_presplit(g.b, g.ldb, g.tb, g.k, g.n, !g.ta, parts, small_any, stream);  // A's order
        p.b_parts = parts;
        p.b_small_any = small_any;
        p.b_part_tiles = tf32x3_presplit_tiles(g.n);
      }
      p.mbarrier_ring = plan.mbarrier;
      p.specialised = plan.specialised;
      const Tf32x3SpecialisedSync sync = tf32x3_specialised_sync();  // read (and checked) on every kernel
      p.producer_waits = plan.specialised && tf32x3_producer_waits(sync);
      p.consumers_arrive = plan.specialised && tf32x3_consumers_arrive(sync);
      if (plan.persistent_blocks > 0)  // the tiles, the classic grid's, taken by that many blocks
        p.units = tf32x3_row_blocks<Tf32x3WgmmaTile>(g.m) * tf32x3_col_blocks<Tf32x3WgmmaTile>(g.n);
      launch<Tf32x3WgmmaTile>(p, g.count, plan.split, workspace, stream, [&](dim3 grid, const GemmParams& q) {
        tf32x3_wgmma_launch(q.units > 0 ? dim3(static_cast<unsigned>(plan.persistent_blocks)) : grid, q, stream);
      });
      return;
  }
}

}  // namespace

void tf32x3_gemm(const GemmCall& g, float* workspace, int64_t workspace_floats, cudaStream_t stream) {
  std::string refused;
  UV_CHECK(tf32x3_takes(g, refused),
           "tf32x3_gemm: " << g.count << " products of " << g.m << "×" << g.n << ": " << refused);
  if (g.m == 0 || g.n == 0) return;
  tf32x3_prepare();  // the ring kernels' shared-memory attributes (once; the backend calls it first)
  const Tf32x3Kernel kernel = tf32x3_kernel();
  const Tf32x3Gpu gpu = tf32x3_gpu(kernel, multiprocessors(), tf32x3_wgmma_available(), tf32x3_tiles());
  if (tf32x3_is_wgmma(kernel) && !gpu.wgmma && kernel_named()) {
    static std::once_flag said;  // runs and their labels say wgmma: say once what ran instead
    std::call_once(said, [] {
      std::fprintf(stderr, "tf32x3: the wgmma kernel needs compute capability 9.0; running the mma kernel\n");
    });
  }
  // The bands of columns where B's parts need them, no accumulator deeper than the chunk depth
  // (tf32x3_gemm_tile.h says why): as splits of one launch or a launch a chunk.
  tf32x3_for_each_launch(g, workspace ? workspace_floats : 0, workspace_aligned(workspace), gpu, tf32x3_chunk_depth(),
                         bands_chosen(), [&](const GemmCall& call, const Tf32x3Launch& plan, int64_t) {
                           launch_product(call, plan, workspace, stream);
                         });
}

Tf32x3PlanSummary tf32x3_plan(const GemmCall& g, const float* workspace, int64_t workspace_floats) {
  const Tf32x3Gpu gpu = tf32x3_gpu(tf32x3_kernel(), multiprocessors(), tf32x3_wgmma_available(), tf32x3_tiles());
  return tf32x3_plan_summary(g, workspace ? workspace_floats : 0, workspace_aligned(workspace), gpu,
                             tf32x3_chunk_depth(), bands_chosen());
}

bool tf32x3_takes(const GemmCall& g, std::string& why) {
  if (!tf32x3_fits(g.count, g.m, g.n)) {
    why = "past the launch grid: cuBLAS";
    return false;
  }
  if (g.epilogue == GemmEpilogue::BiasGradient) {
    why = "a bias-gradient epilogue: not this GEMM's";
    return false;
  }
  return true;
}

int64_t tf32x3_workspace_floats() {
  static const int64_t floats = [] {
    int64_t mib = 0;
    std::string why;
    UV_REQUIRE(read_tf32x3_workspace_mib_env(mib, why), why);
    return mib << 18;  // 2¹⁸ floats a MiB
  }();
  return floats;
}

int64_t tf32x3_chunk_depth() { return chunk_depth_choice().load(); }
void set_tf32x3_chunk_depth(int64_t depth) {
  UV_CHECK(tf32x3_chunk_depth_valid(depth), "tf32x3 chunk depth " << depth << " is not a positive multiple of 32");
  chunk_depth_choice().store(depth);
}

void tf32x3_prepare() {
  static const bool done = [] {
    opt_in_transposes<Tf32x3MmaBigTile>();
    opt_in_transposes<Tf32x3MmaSmallTile>();
    if (tf32x3_wgmma_available()) tf32x3_wgmma_prepare();
    return true;
  }();
  (void)done;
}

Tf32x3Tiles tf32x3_tiles() { return static_cast<Tf32x3Tiles>(tiles_choice().load()); }
void set_tf32x3_tiles(Tf32x3Tiles tiles) { tiles_choice().store(static_cast<int>(tiles)); }

Tf32x3Kernel tf32x3_kernel() { return kernel_choice().load(); }
void set_tf32x3_kernel(Tf32x3Kernel kernel) { kernel_choice().store(kernel); }

Tf32x3SpecialisedSync tf32x3_specialised_sync() { return specialised_sync_choice().load(); }
void set_tf32x3_specialised_sync(Tf32x3SpecialisedSync sync) { specialised_sync_choice().store(sync); }

void tf32x3_gemm(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool trans_a, bool trans_b,
                 int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc, float* workspace, int64_t workspace_floats,
                 cudaStream_t stream) {
  tf32x3_gemm(gemm_call(count, stride_a, stride_b, stride_c, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                        c, ldc),
              workspace, workspace_floats, stream);
}

}  // namespace uv::cuda
