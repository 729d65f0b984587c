// The 3xTF32 GEMM on Hopper's warpgroup MMA (kernels/cuda/tf32x3_gemm_tile.h: Tf32x3WgmmaTile and its
// layouts, with the reasons). Built for sm_90a alone (CMakeLists.txt: uvwgmma), where wgmma exists.
//
// A block computes a 128×128 tile of C: each of its 2 warpgroups 64 rows by all 128 columns, with
// 64 float32 accumulators a thread. Per k-slice s of 32:
//   1. slice s is in the ring (cp.async, as the mma kernel's); slice s + 2 is issued;
//   2. every thread converts 4 chunks of B's slice into TF32 big and small parts, K-major core
//      matrices (tf32x3_wgmma_b_offset), into buffer s % 2, and splits its warp's A fragments
//      into register set s % 2;
//   3. after a proxy fence and a barrier, each warpgroup issues 4 k-steps × 3 wgmma m64n128k8
//      (small·big, big·small, big·big: the small terms first), then waits for slice s − 1's, so
//      the tensor cores work on slice s while the threads convert slice s + 1, and buffer and
//      register set (s + 1) % 2 are free when they do.
// Where B comes presplit and exactly TF32 (its small parts all 0, as a dictionary rounded to TF32
// has: tf32x3_presplit_region_floats), its small part is neither copied nor multiplied: 2 wgmmas a
// k-step instead of 3. With B presplit and A plain, the parts come in a k order of their own
// (tf32x3_presplit_k) in which a lane's A fragments of a slice are two 16-byte loads a row. Then
// the tile's accumulators go to C (or split-K's workspace). With B presplit and persistent
// blocks (Persistent, Tf32x3Kernel::WgmmaPersistent) a block takes tile after tile, its ring running
// on across them, so the next tile's first two slices load while the last one's are stored. With
// warp specialisation (Specialised, Tf32x3Kernel::WgmmaSpecialised) a third warpgroup, the
// producer, makes every copy (tf32x3_produce: B's parts in one bulk copy a slice), and the two
// above only wait for each slice's data, split A, issue the wgmmas and release the slot.
#include <cuda_runtime.h>

#include <atomic>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/tf32x3_device.cuh"
#include "kernels/cuda/tf32x3_wgmma.h"

namespace uv::cuda {
namespace {

using Tile = Tf32x3WgmmaTile;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}
// The conversion's ordinary (generic-proxy) stores, made visible to wgmma's reads (async proxy).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// The compiler sees an inline wgmma as done when issued: these empty statements pin every access
// of the accumulators to its side of the issue and of the wait.
__device__ __forceinline__ void fence_accumulators(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void fence_registers(uint32_t (&a)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(a[i])::"memory");
}
// mbarriers (Tf32x3MbarrierRing): init with the arrivals a phase takes; wait until the phase of
// `parity` has completed; a thread's plain arrival; and an arrival when all of the thread's cp.async
// copies so far have landed (noinc: counted in the init's arrivals).
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(arrivals) : "memory");
}
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred ready;\nretry:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 ready, [%0], %1;\n"
      "@!ready bra retry;\n}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive_on_copies(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
__device__ __forceinline__ void copy_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
// The specialised ring (Tf32x3Kernel::WgmmaSpecialised): an arrival that also announces `bytes` of
// bulk copies to come on the barrier's phase, and one bulk copy global → shared of `bytes` (a
// multiple of 16, both addresses 16-byte aligned) whose bytes count on `bar` as they land. The CTA's
// own shared addresses are valid shared::cluster ones (a launch without clusters is a cluster of one).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void copy_bulk(float* dst, const float* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   shared_address(dst)),
               "l"(src), "r"(bytes), "r"(shared_address(bar))
               : "memory");
}
// The barriers' initialisation made visible to the async proxy (the bulk copies' complete_tx).
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// A warpgroup's registers a thread from here on (setmaxnreg: every thread of the warpgroup, together).
template <int Registers>
__device__ __forceinline__ void registers_down() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}
template <int Registers>
__device__ __forceinline__ void registers_up() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

// d(64×128) = a(64×8: this warp's 16 rows, wgmma_a_coord) · b(8×128: K-major, `desc`) + (accumulate ? d : 0).
__device__ __forceinline__ void wgmma_m64n128k8(float (&d)[64], const uint32_t (&a)[4], uint64_t desc,
                                                int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63 "
      "}, {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]),
        "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]),
        "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
        "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate));
}
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Thread t's share of the presplit rings' copies of the k-slice at k0 of the tile at `w`: A's slice
// (copy_a_slice), then B's parts, ready-made (tf32x3_presplit_offset), behind it in the slot: the
// big part, and the small one unless B has none (`with_small`, Tf32x3PresplitRing).
template <bool TransA>
__device__ __forceinline__ void copy_presplit_slice(const Tf32x3Params& p, const Tf32x3Place& w, int t, int64_t k0,
                                                    bool with_small, float* dst) {
  copy_a_slice<Tile, TransA>(p, w, t, k0, dst);
  const float* src = p.b_parts + tf32x3_presplit_offset(p.b_part_tiles, k0, w.col0);  // the tile's parts
  constexpr int kPartCopies = Tile::kSplitFloats / 4 / Tile::kThreads;  // a thread's 16-byte copies of a part
#pragma unroll
  for (int i = 0; i < kPartCopies; ++i) {
    const int chunk = t + i * Tile::kThreads;
    copy_async16(dst + Tile::kAFloats + 4 * chunk, src + 4 * chunk, 16);
  }
  if (with_small) {
#pragma unroll
    for (int i = kPartCopies; i < 2 * kPartCopies; ++i) {
      const int chunk = t + i * Tile::kThreads;
      copy_async16(dst + Tile::kAFloats + 4 * chunk, src + 4 * chunk, 16);
    }
  }
}
// Whether B has a small part to take (B presplit: what the presplit found; otherwise yes).
__device__ __forceinline__ bool b_has_small(const Tf32x3Params& p) {
  return p.b_small_any == nullptr || *p.b_small_any == p.b_small_epoch;
}
// Slice g's slot in a presplit ring (Tile::kPresplitStages of them, A's slice then B's parts each).
__device__ __forceinline__ float* ring_slot(float* slots, int64_t g) {
  return slots + tf32x3_presplit_slot(g) * Tile::kPresplitStageFloats;
}
// The copies both presplit rings make: each thread's share of the ring's slice g (g = 0, 1, 2, …
// in order) into its slot. Persistent (p.units > 0): the block's tiles one after another
// (tf32x3_persistent_unit), every one w.slices deep, the ring's slices counted across them (g), so
// the copies of a tile's first slices are issued during the last one's. The copies walk the tiles
// with a cursor of their own (the tile, its place, the slice), so a slice's copy costs no
// division; a tile's place is worked out once, when the cursor reaches it.
template <bool TransA, bool Persistent>
struct Tf32x3PresplitCopies {
  const Tf32x3Params& p;
  const Tf32x3Place& w;  // the block's (first) tile
  float* slots;
  int t;
  const bool with_small = b_has_small(p);  // B's small part copied (and its wgmma issued)
  // Persistent: the next copy's tile (past p.units: none left), its place and slice.
  int64_t copy_unit = blockIdx.x;
  Tf32x3Place copy_place = w;
  int copy_slice_index = 0;
  __device__ __forceinline__ float* slot(int64_t g) const { return ring_slot(slots, g); }
  // Whether the ring has a slice g (g the next copy's): with the cursor at tile u and slice s, that
  // is tf32x3_persistent_unit(g, …)'s (u, s).
  __device__ __forceinline__ bool has(int64_t g) const {
    if constexpr (Persistent)
      return w.slices > 0 && copy_unit < p.units;
    else
      return g < w.slices;
  }
  // Slice g's copies into its slot, where the ring has it (copy(tile's place, k0, slot)); false
  // where it has none.
  template <typename Copy>
  __device__ __forceinline__ bool copy_slice_with(int64_t g, Copy&& copy) {
    if (!has(g)) return false;
    if constexpr (Persistent) {
      copy(copy_place, copy_place.k_begin + int64_t{copy_slice_index} * Tile::kDepth, slot(g));
      if (tf32x3_persistent_advance(copy_unit, copy_slice_index, w.slices, gridDim.x) && copy_unit < p.units)
        copy_place = tf32x3_unit_place<Tile>(p, copy_unit);
    } else {
      copy(w, w.k_begin + g * Tile::kDepth, slot(g));
    }
    return true;
  }
  // ... with this thread's share of every copy (copy_presplit_slice).
  __device__ __forceinline__ bool copy_slice(int64_t g) {
    return copy_slice_with(g, [&](const Tf32x3Place& at, int64_t k0, float* dst) {
      copy_presplit_slice<TransA>(p, at, t, k0, with_small, dst);
    });
  }
};
// The mbarriers after a presplit ring's slots (Tile::kMbarrierSharedBytes): "full" and "empty" of
// slice g's slot.
__device__ __forceinline__ uint64_t* ring_full(float* slots, int64_t g) {
  return reinterpret_cast<uint64_t*>(slots + Tile::kPresplitStages * Tile::kPresplitStageFloats) +
         tf32x3_presplit_slot(g);
}
__device__ __forceinline__ uint64_t* ring_empty(float* slots, int64_t g) {
  return ring_full(slots, g) + Tile::kPresplitStages;
}
// A consumer warp's release of slice g's slot, once its warpgroup's wgmmas of slice g are done (and
// this warp's reads of the slot long before): one arrival a warp (`t`: the thread among the
// consumers).
__device__ __forceinline__ void ring_release(float* slots, int64_t g, int t) {
  __syncwarp();
  if (t % 32 == 0) mbarrier_arrive(ring_empty(slots, g));
}
// The presplit variant (PreSplit, p.b_parts set): B's parts arrive split in the ring with A's slice
// (Tf32x3WgmmaTile::kPresplitStages slots), so step 2's conversion is skipped; A as above. Its
// slots are handed on through cp.async's groups and a barrier of the whole block every slice.
template <bool TransA, bool Persistent>
struct Tf32x3PresplitRing : Tf32x3PresplitCopies<TransA, Persistent> {
  __device__ __forceinline__ void copy(int64_t g) {
    this->copy_slice(g);
    copy_async_commit();  // a group for every g, empty or not: arrive's count
  }
  __device__ __forceinline__ void start() {
    copy(0);
    copy(1);
  }
  // Slice g in (slice g + 1's copy may still be in flight), its parts visible to wgmma, and every
  // thread past slice g − 1: then slice g + 2 goes into slice g − 2's slot.
  __device__ __forceinline__ const float* arrive(int64_t g) {
    copy_async_wait<1>();
    fence_proxy_async();
    __syncthreads();
    copy(g + 2);
    return this->slot(g);
  }
};
#endif
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The presplit ring on mbarriers (Mbarrier, Tf32x3Kernel::WgmmaMbarrier; the protocol at
// tf32x3_mbarrier_parity): no barrier of the whole block every slice. A warpgroup waits for its
// slice's data (full), and before copying slice g + 2 for the release of slice g − 2, whose slot
// it takes (empty), by both warpgroups: so the two run up to a slice apart. `bars`: full[slots]
// then empty[slots], after the ring. Persistent (Tf32x3Kernel::WgmmaMbarrierPersistent): the
// copies walk the block's tiles as the barrier ring's do (Tf32x3PresplitCopies): the protocol runs
// on unchanged across a tile's end, where slice g + 2 is the next tile's.
template <bool TransA, bool Persistent>
struct Tf32x3MbarrierRing : Tf32x3PresplitCopies<TransA, Persistent> {
  using Copies = Tf32x3PresplitCopies<TransA, Persistent>;
  using Copies::has;
  using Copies::slot;
  using Copies::t;
  __device__ __forceinline__ uint64_t* full(int64_t g) const { return ring_full(this->slots, g); }
  __device__ __forceinline__ uint64_t* empty(int64_t g) const { return ring_empty(this->slots, g); }
  // Slice g's copies (this thread's share) into its slot, arriving on its full barrier as they
  // land; called for g = 0, 1, 2, … in order. No slice: no arrival, and its phase is never waited
  // for.
  __device__ __forceinline__ void copy(int64_t g) {
    if (this->copy_slice(g)) mbarrier_arrive_on_copies(full(g));
  }
  // The barriers (before any thread uses them: a block barrier follows), then slices 0 and 1.
  __device__ __forceinline__ void start() {
    if (t < Tile::kPresplitStages) {
      mbarrier_init(full(t), Tile::kThreads);
      mbarrier_init(empty(t), Tile::kThreads / 32);
    }
    __syncthreads();
    copy(0);
    copy(1);
  }
  // Slice g's data in, and visible to wgmma (cp.async writes through the generic proxy).
  __device__ __forceinline__ const float* arrive(int64_t g) const {
    mbarrier_wait(full(g), tf32x3_mbarrier_parity(g));
    fence_proxy_async();
    return slot(g);
  }
  // After slice g's wgmmas are issued: slice g + 2 into slice g − 2's slot once both warpgroups have
  // released it.
  __device__ __forceinline__ void copy_ahead(int64_t g) {
    if (!has(g + 2)) return;
    if (g >= 2) mbarrier_wait(empty(g - 2), tf32x3_mbarrier_parity(g - 2));
    copy(g + 2);
  }
  // After the warpgroup's wgmmas of slice g are done: the warp releases slot g.
  __device__ __forceinline__ void release(int64_t g) const { ring_release(this->slots, g, t); }
};
// Warp specialisation (Tf32x3Kernel::WgmmaSpecialised; the protocol at
// tf32x3_specialised_full_arrivals): the producer warpgroup (threads 0–127, `t` among them) copies
// every slice of the block's tiles into the ring, in order, each into its slot once the consumers
// have released that slot's last slice: A's slice by all 128, B's parts by thread 0 in one bulk
// copy.
template <bool TransA, bool Persistent>
__device__ __forceinline__ void tf32x3_produce(const Tf32x3Params& p, float* slots, int t) {
  const Tf32x3Place place = Persistent ? tf32x3_unit_place<Tile>(p, blockIdx.x) : tf32x3_place<Tile>(p);
  Tf32x3PresplitCopies<TransA, Persistent> copies{p, place, slots, t};
  const uint32_t b_bytes = tf32x3_specialised_b_bytes(copies.with_small);
  for (int64_t g = 0;; ++g) {
    if (copies.has(g) && g >= Tile::kPresplitStages)
      mbarrier_wait(ring_empty(slots, g), tf32x3_mbarrier_parity(g - Tile::kPresplitStages));
    uint64_t* const full = ring_full(slots, g);
    const bool copied = copies.copy_slice_with(g, [&](const Tf32x3Place& at, int64_t k0, float* dst) {
      copy_a_slice<Tile, TransA, Tile::kProducerThreads, true>(p, at, t, k0, dst);
      if (t == 0) {
        mbarrier_arrive_expect_tx(full, b_bytes);
        copy_bulk(dst + Tile::kAFloats, p.b_parts + tf32x3_presplit_offset(p.b_part_tiles, k0, at.col0), b_bytes, full);
      }
    });
    if (!copied) break;
    mbarrier_arrive_on_copies(full);
    // Tf32x3SpecialisedSync::ProducerWaits (and Both): each copying thread sees its slice g − 1 land
    // as the mbarrier ring's copying threads do, 2 slices still in flight. That phase needs the
    // producer's copies, and with Both the consumers' arrivals for slice g − 1, which come once they
    // are through slice g − 2, whose data the producer has issued: it cannot deadlock.
    if (p.producer_waits && g >= 1) mbarrier_wait(ring_full(slots, g - 1), tf32x3_mbarrier_parity(g - 1));
  }
  copy_async_wait_all();  // no copy outlives its thread
}
// The consumers' side of the specialised ring: the kernel's ring interface with the copies gone
// (the producer makes them) and the releases of the mbarrier ring.
template <bool TransA, bool Persistent>
struct Tf32x3SpecialisedRing {
  const Tf32x3Params& p;
  const Tf32x3Place& w;
  float* slots;
  int t;  // the thread among the consumers
  const bool with_small = b_has_small(p);
  __device__ __forceinline__ void start() const {}
  __device__ __forceinline__ const float* arrive(int64_t g) const {
    // Tf32x3SpecialisedSync::ConsumersArrive (and Both): every consumer thread a party to the
    // phase too. It completes once the producer's arrivals are in as well, and slot g's next phase
    // cannot begin before the consumers release slice g, after this wait.
    if (p.consumers_arrive) mbarrier_arrive(ring_full(slots, g));
    mbarrier_wait(ring_full(slots, g), tf32x3_mbarrier_parity(g));
    return ring_slot(slots, g);
  }
  __device__ __forceinline__ void copy_ahead(int64_t) const {}
  __device__ __forceinline__ void release(int64_t g) const { ring_release(slots, g, t); }
};
#endif
static_assert(Tile::kSplitFloats % (4 * Tile::kThreads) == 0, "each part's copies split evenly");

template <bool TransA, bool TransB, bool PreSplit, bool Persistent = false, bool Mbarrier = false,
          bool Specialised = false>
__global__ void __launch_bounds__(Specialised ? Tile::kSpecialisedThreads : Tile::kThreads, Tile::kMinBlocks)
    tf32x3_wgmma_kernel(Tf32x3Params p) {
  static_assert(PreSplit || !Persistent, "persistent blocks take B presplit");
  static_assert(PreSplit || !Mbarrier, "the mbarrier ring is the presplit one's");
  static_assert(Mbarrier || !Specialised, "the producer fills the mbarrier ring");
  if (Persistent && blockIdx.x >= p.units) return;  // a block without a tile (the host never launches one)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  // B's parts (2 buffers of big, small), then the ring; PreSplit: the ring alone, parts inside.
  extern __shared__ __align__(128) float smem[];
  float* const parts = smem;
  if constexpr (Specialised) {  // warpgroup 0 the producer, 1 and 2 the consumers (the threads below)
    if (threadIdx.x < Tile::kPresplitStages) {
      mbarrier_init(ring_full(smem, threadIdx.x), tf32x3_specialised_full_arrivals(p.consumers_arrive));
      mbarrier_init(ring_empty(smem, threadIdx.x), Tile::kThreads / 32);
      fence_mbarrier_init();
    }
    __syncthreads();  // the only one: the warpgroups part here
    if (threadIdx.x < Tile::kProducerThreads) {
      registers_down<Tile::kProducerRegisters>();
      tf32x3_produce<TransA, Persistent>(p, smem, static_cast<int>(threadIdx.x));
      return;
    }
    registers_up<Tile::kConsumerRegisters>();
  }
  // The block's tile (Persistent: its first; every one is as deep).
  const Tf32x3Place place = Persistent ? tf32x3_unit_place<Tile>(p, blockIdx.x) : tf32x3_place<Tile>(p);
  const int slices = place.slices;
  const int t = static_cast<int>(threadIdx.x) - (Specialised ? Tile::kProducerThreads : 0), warp = t / 32,
            lane = t % 32;
  const int group_row = 64 * (warp / 4), warp_in_group = warp % 4;

  // Not zeroed: the block's first wgmma overwrites them (scale-d 0). Ordinary instructions writing
  // them would sit inside the wgmma pipeline, which spans the loop's back edge, and ptxas would
  // serialise every wgmma (its C7515 remark).
  float acc[64];

  using Ring = std::conditional_t<
      Specialised, Tf32x3SpecialisedRing<TransA, Persistent>,
      std::conditional_t<
          Mbarrier, Tf32x3MbarrierRing<TransA, Persistent>,
          std::conditional_t<PreSplit, Tf32x3PresplitRing<TransA, Persistent>, Tf32x3Ring<Tile, TransA, TransB>>>>;
  Ring ring{p, place, PreSplit ? smem : smem + 2 * Tile::kPartBuffers * Tile::kSplitFloats, t};
  ring.start();
  // Persistent: the ring's slices before this tile's (its slice s is the ring's g0 + s).
  int64_t g0 = 0;
  // Slice s of the tile, its parts in buffer P = s % 2 and A's split fragments in a_parts[P]
  // (P a constant, so that the two register sets stay apart).
  uint32_t a_parts[2][2][Tile::kDepth / 8][4];  // [buffer][big, small][k-step][register]
  // BSmall: B's small part is taken, its a_big·b_small wgmmas issued. false where B presplit had
  // none (B exactly TF32: the term is 0). A constant, so that no branch sits among the wgmmas (ptxas
  // would inject a warpgroup.arrive before every one).
  auto step = [&](auto buffer, auto b_small, int s) {
    constexpr int P = decltype(buffer)::value;
    constexpr bool BSmall = decltype(b_small)::value;
    // Slice s is in for everyone; every warpgroup has waited for its wgmmas of slice s − 2, so
    // buffer P and register set P are free, and so is slice s − 1's ring slot (converted and read
    // before the barrier), which the copy of slice s + 2 takes. PreSplit: no buffer P (the parts
    // are in the slot), and the copy of slice s + 2 takes slice s − 2's slot (Tf32x3PresplitRing).
    const float* a_slot = [&] {
      if constexpr (Persistent)
        return ring.arrive(g0 + s);
      else
        return ring.arrive(s);
    }();
    const float* b_slot = a_slot + Tile::kAFloats;
    float* const big = PreSplit ? const_cast<float*>(b_slot) : parts + P * 2 * Tile::kSplitFloats;
    float* const small = big + Tile::kSplitFloats;
#pragma unroll
    for (int i = 0; i < (PreSplit ? 0 : Tile::kConvertChunks); ++i) {
      const TileElement c = tf32x3_wgmma_convert_chunk<Tile>(t + i * Tile::kThreads);  // column, 4-k chunk
      float x[4];
      if constexpr (TransB) {  // k contiguous: one 16-byte load
        const float4 v = *reinterpret_cast<const float4*>(b_slot + tf32x3_b_smem<Tile, true>(4 * c.col, c.row));
        x[0] = v.x;
        x[1] = v.y;
        x[2] = v.z;
        x[3] = v.w;
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) x[e] = b_slot[tf32x3_b_smem<Tile, false>(4 * c.col + e, c.row)];
      }
      uint4 hi, lo;
      split_tf32(x[0], hi.x, lo.x);
      split_tf32(x[1], hi.y, lo.y);
      split_tf32(x[2], hi.z, lo.z);
      split_tf32(x[3], hi.w, lo.w);
      const int o = tf32x3_wgmma_b_offset(c.row, 4 * c.col);
      *reinterpret_cast<uint4*>(big + o) = hi;
      *reinterpret_cast<uint4*>(small + o) = lo;
    }
    if constexpr (PreSplit && !TransA) {
      // B's parts in the presplit k order (tf32x3_presplit_k): this lane's k of every k-step are
      // A's 8t … 8t + 7, two 16-byte loads for each of its rows (g and g + 8: v[r & 1]).
      float v[2][8];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float* row = a_slot + tf32x3_a_smem<Tile, false>(group_row + 16 * warp_in_group + lane / 4 + 8 * h,
                                                               tf32x3_presplit_a_k(lane % 4, 0, 0));
        const float4 lo = *reinterpret_cast<const float4*>(row), hi = *reinterpret_cast<const float4*>(row + 4);
        v[h][0] = lo.x, v[h][1] = lo.y, v[h][2] = lo.z, v[h][3] = lo.w;
        v[h][4] = hi.x, v[h][5] = hi.y, v[h][6] = hi.z, v[h][7] = hi.w;
      }
#pragma unroll
      for (int kk = 0; kk < Tile::kDepth / 8; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          split_tf32(v[r & 1][tf32x3_presplit_a_element(kk, r)], a_parts[P][0][kk][r], a_parts[P][1][kk][r]);
    } else {  // the natural order (Aᵀ, or B split by the blocks)
#pragma unroll
      for (int kk = 0; kk < Tile::kDepth / 8; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const TileElement x = wgmma_a_coord(warp_in_group, lane, r);
          split_tf32(a_slot[tf32x3_a_smem<Tile, TransA>(group_row + x.row, 8 * kk + x.col)], a_parts[P][0][kk][r],
                     a_parts[P][1][kk][r]);
        }
    }
    if constexpr (!PreSplit) {
      fence_proxy_async();
      __syncthreads();  // both parts of B's slice are in
    }

    // A's registers, written above, pinned before the fence that orders them before the wgmmas.
    fence_accumulators(acc);
#pragma unroll
    for (int kk = 0; kk < Tile::kDepth / 8; ++kk) {
      fence_registers(a_parts[P][0][kk]);
      fence_registers(a_parts[P][1][kk]);
    }
    wgmma_fence();
    const uint32_t big_address = shared_address(big), small_address = shared_address(small);
#pragma unroll
    for (int kk = 0; kk < Tile::kDepth / 8; ++kk) {
      const uint64_t big_desc = wgmma_descriptor(big_address + kk * kTf32x3WgmmaStepBytes, kTf32x3WgmmaLeadingBytes,
                                                 kTf32x3WgmmaStrideBytes);
      const uint64_t small_desc = wgmma_descriptor(small_address + kk * kTf32x3WgmmaStepBytes,
                                                   kTf32x3WgmmaLeadingBytes, kTf32x3WgmmaStrideBytes);
      wgmma_m64n128k8(acc, a_parts[P][1][kk], big_desc, s > 0 || kk > 0);  // the tile's first: D = A·B
      if constexpr (BSmall) wgmma_m64n128k8(acc, a_parts[P][0][kk], small_desc, 1);
      wgmma_m64n128k8(acc, a_parts[P][0][kk], big_desc, 1);
    }
    wgmma_commit();
    if constexpr (Mbarrier) ring.copy_ahead(g0 + s);  // while slice s's wgmmas run
    wgmma_wait<1>();  // slice s − 1's wgmmas: buffer and register set 1 − P free for slice s + 1
    fence_accumulators(acc);
    if constexpr (Mbarrier) {
      if (s >= 1) ring.release(g0 + s - 1);  // a tile's last slice: at its end, below
    }
  };
  // A tile: its slices, then its accumulators into C (or the split's workspace). Persistent: the
  // block's next tile after it (its first slices' copies already in flight), until the last.
  auto tiles = [&](auto b_small) {
    [[maybe_unused]] int64_t unit = blockIdx.x;  // Persistent: the tile's unit (tf32x3_persistent_unit)
    for (Tf32x3Place tile = place;;) {
      for (int s = 0; s < slices; s += 2) {
        step(std::integral_constant<int, 0>{}, b_small, s);
        if (s + 1 < slices) step(std::integral_constant<int, 1>{}, b_small, s + 1);
      }
      wgmma_wait<0>();
      fence_accumulators(acc);
      // The tile's last slice, released as soon as its wgmmas are done (before the stores, which
      // read registers only): the other warpgroup's copy of the next tile's slice 1 waits for it.
      if constexpr (Mbarrier) {
        if (slices > 0) ring.release(g0 + slices - 1);
      }
      if (slices == 0) {  // k = 0 (or a split past k): C = beta·C (+ bias)
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.f;
      }
      float* __restrict__ c = p.c + tile.batch * p.stride_c;  // the product's C and bias
      const float* __restrict__ bias = p.bias ? p.bias + tile.batch * p.n : nullptr;
      // Registers 4j + 2h and 4j + 2h + 1: one row's columns 8j + 2·(lane % 4) and the next (wgmma_c_coord).
#pragma unroll
      for (int j = 0; j < Tile::kCols / 8; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const TileElement x = wgmma_c_coord(warp_in_group, lane, 4 * j + 2 * h);
          store_pair(p, tile.z, c, bias, tile.row0 + group_row + x.row, tile.col0 + x.col, acc[4 * j + 2 * h],
                     acc[4 * j + 2 * h + 1]);
        }
      if constexpr (!Persistent) {
        break;
      } else {  // the block's i-th tile is unit blockIdx.x + i·gridDim.x, its slices the ring's i·slices on
        g0 += slices;
        unit += gridDim.x;
        if (unit >= p.units) break;
        tile = tf32x3_unit_place<Tile>(p, unit);
      }
    }
  };
  if constexpr (!PreSplit) {
    tiles(std::true_type{});
  } else {
    if (ring.with_small)
      tiles(std::true_type{});
    else
      tiles(std::false_type{});
  }
  // No copy outlives the block (only empty groups can be pending here; the mbarrier ring's copies
  // are not in groups, and all have landed).
  if constexpr (Mbarrier)
    copy_async_wait_all();
  else
    copy_async_wait<0>();
#else
  __trap();  // built for sm_90a alone; tf32x3_wgmma_available() keeps other devices from launching it
#endif
}

// A kernel's dynamic shared memory: the mbarrier rings' slots and barriers, the presplit ring's
// slots, or B's part buffers and the ring.
constexpr int shared_bytes(bool presplit, bool mbarrier) {
  return mbarrier ? Tile::kMbarrierSharedBytes : presplit ? Tile::kPresplitSharedBytes : Tile::kSharedBytes;
}

template <bool TransA, bool TransB, bool PreSplit = false, bool Persistent = false, bool Mbarrier = false,
          bool Specialised = false>
void opt_in() {
  const int bytes = shared_bytes(PreSplit, Mbarrier);
  CUDA_CHECK(cudaFuncSetAttribute(tf32x3_wgmma_kernel<TransA, TransB, PreSplit, Persistent, Mbarrier, Specialised>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  CUDA_CHECK(cudaFuncSetAttribute(tf32x3_wgmma_kernel<TransA, TransB, PreSplit, Persistent, Mbarrier, Specialised>,
                                  cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
}

// op(B) (k×n) into its parts (tf32x3_presplit_place): a thread per column and 4-k chunk of the
// parts (logical k, in tf32x3_presplit_k's order where `permuted`) of the padded k-slices and
// column tiles, zeros past k and n; *small_any = epoch where a small part is (tf32x3_wgmma_presplit).
__global__ void tf32x3_presplit_kernel(const float* __restrict__ b, int64_t ldb, bool trans_b, int64_t k, int64_t n,
                                       bool permuted, float* __restrict__ parts, unsigned* __restrict__ small_any,
                                       unsigned epoch) {
  bool any = false;
  const int64_t tiles = tf32x3_presplit_tiles(n), width = tiles * Tile::kCols;
  const int64_t chunks = (k + Tile::kDepth - 1) / Tile::kDepth * (Tile::kDepth / 4) * width;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < chunks; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t nn = i % width, kk = 4 * (i / width);  // logical k kk … kk + 3 (tf32x3_presplit_k)
    float x[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t kb =
          permuted ? kk / Tile::kDepth * Tile::kDepth + tf32x3_presplit_k(int(kk % Tile::kDepth) + e) : kk + e;
      x[e] = kb < k && nn < n ? (trans_b ? b[nn * ldb + kb] : b[kb * ldb + nn]) : 0.f;
    }
    uint4 hi, lo;
    split_tf32(x[0], hi.x, lo.x);
    split_tf32(x[1], hi.y, lo.y);
    split_tf32(x[2], hi.z, lo.z);
    split_tf32(x[3], hi.w, lo.w);
    const int64_t o = tf32x3_presplit_offset(tiles, kk, nn);
    *reinterpret_cast<uint4*>(parts + o) = hi;
    *reinterpret_cast<uint4*>(parts + o + Tile::kSplitFloats) = lo;
    any = any || (lo.x | lo.y | lo.z | lo.w) != 0u;
  }
  // Every thread of the block gets here (no early exit): the block's vote, and one store a block
  // (up to 4096 on one address, all of the same value; one a warp would be 8 times as many).
  if (__syncthreads_or(any) && threadIdx.x == 0) *small_any = epoch;
}

}  // namespace

bool tf32x3_wgmma_available() {
  static const bool available = [] {
    int device = 0, major = 0, minor = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return major == 9 && minor == 0;
  }();
  return available;
}

void tf32x3_wgmma_prepare() {
  opt_in<false, false>();
  opt_in<false, true>();
  opt_in<true, false>();
  opt_in<true, true>();
  opt_in<false, false, true>();
  opt_in<true, false, true>();
  opt_in<false, false, true, true>();
  opt_in<true, false, true, true>();
  opt_in<false, false, true, false, true>();
  opt_in<true, false, true, false, true>();
  opt_in<false, false, true, true, true>();
  opt_in<true, false, true, true, true>();
  opt_in<false, false, true, false, true, true>();
  opt_in<true, false, true, false, true, true>();
  opt_in<false, false, true, true, true, true>();
  opt_in<true, false, true, true, true, true>();
}

unsigned tf32x3_wgmma_presplit(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n, bool permuted,
                               float* parts, unsigned* small_any, cudaStream_t stream) {
  static std::atomic<unsigned> last{0};
  unsigned epoch = ++last;
  while (epoch == 0) epoch = ++last;  // 0 after 2^32 presplits: skipped
  const int64_t chunks = tf32x3_presplit_floats(k, n) / 2 / 4;
  const int64_t blocks = (chunks + 255) / 256 < 4096 ? (chunks + 255) / 256 : 4096;
  tf32x3_presplit_kernel<<<static_cast<unsigned>(blocks > 0 ? blocks : 1), 256, 0, stream>>>(
      b, ldb, trans_b, k, n, permuted, parts, small_any, epoch);
  CUDA_CHECK_LAUNCH();
  return epoch;
}

namespace {

// A presplit ring's launch (p.b_parts: B's parts are K-major whatever op(B) was): A or Aᵀ, in
// persistent blocks (p.units > 0: grid.x of them) or a block a tile.
template <bool Mbarrier, bool Specialised>
void launch_presplit(dim3 grid, const Tf32x3Params& p, cudaStream_t stream) {
  const size_t smem = shared_bytes(true, Mbarrier);
  const int threads = Specialised ? Tile::kSpecialisedThreads : Tile::kThreads;  // + the producer
  if (p.units > 0) {
    if (p.trans_a)
      tf32x3_wgmma_kernel<true, false, true, true, Mbarrier, Specialised><<<grid, threads, smem, stream>>>(p);
    else
      tf32x3_wgmma_kernel<false, false, true, true, Mbarrier, Specialised><<<grid, threads, smem, stream>>>(p);
  } else if (p.trans_a) {
    tf32x3_wgmma_kernel<true, false, true, false, Mbarrier, Specialised><<<grid, threads, smem, stream>>>(p);
  } else {
    tf32x3_wgmma_kernel<false, false, true, false, Mbarrier, Specialised><<<grid, threads, smem, stream>>>(p);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void tf32x3_wgmma_launch(dim3 grid, const Tf32x3Params& p, cudaStream_t stream) {
  if (p.b_parts) {
    if (p.specialised)
      launch_presplit<true, true>(grid, p, stream);  // 3 warpgroups: the producer and 2 consumers
    else if (p.mbarrier_ring)
      launch_presplit<true, false>(grid, p, stream);
    else
      launch_presplit<false, false>(grid, p, stream);
    return;
  }
  const size_t smem = shared_bytes(false, false);
  if (p.trans_a) {
    if (p.trans_b)
      tf32x3_wgmma_kernel<true, true, false><<<grid, Tile::kThreads, smem, stream>>>(p);
    else
      tf32x3_wgmma_kernel<true, false, false><<<grid, Tile::kThreads, smem, stream>>>(p);
  } else {
    if (p.trans_b)
      tf32x3_wgmma_kernel<false, true, false><<<grid, Tile::kThreads, smem, stream>>>(p);
    else
      tf32x3_wgmma_kernel<false, false, false><<<grid, Tile::kThreads, smem, stream>>>(p);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace uv::cuda
