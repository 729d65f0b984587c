// The 3xTF32 GEMM's wgmma kernel (kernels/cuda/sm90a/tf32x3_wgmma.cu, built for sm_90a alone: wgmma
// is an arch-specific instruction of compute capability 9.0). kernels/cuda/tf32x3_gemm.cu launches
// it for big tiles when UV_TF32X3_KERNEL is one of the wgmma kernels (tf32x3_is_wgmma;
// wgmma_presplit is the default) and tf32x3_wgmma_available().
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace uv::cuda {

struct Tf32x3Params;

// True on a device of compute capability 9.0 (H100, H200), the only one sm_90a code runs on.
bool tf32x3_wgmma_available();
// Sets the kernel's attributes (over 48 KiB of shared memory, the carve-out); tf32x3_prepare calls it.
void tf32x3_wgmma_prepare();
// Launches the kernel on `grid` (Tf32x3WgmmaTile's tiles, split-K on z as tf32x3_gemm.cu sets it);
// with p.b_parts, the presplit variant; with p.units > 0 too, grid.x persistent blocks over them.
void tf32x3_wgmma_launch(dim3 grid, const Tf32x3Params& p, cudaStream_t stream);
// op(B) (k×n, `trans_b`: B stored n×k) into `parts` (tf32x3_presplit_floats(k, n) floats, laid out
// as tf32x3_presplit_place says: `permuted` for a product whose A is not transposed), for the
// presplit variant. Returns this presplit's epoch, a nonzero value no earlier one in the process
// returned, and writes it to `small_any` (the uint32 after the parts, tf32x3_presplit_region_floats)
// where any small part is, leaving the word as it was otherwise; the kernels take B's short path
// where the word is not the epoch (Tf32x3Params::b_small_epoch). So no memset launch before it: a
// stale word never equals a new epoch; and where a CUDA graph replays the presplit with the epoch
// of its capture, a word left equal to it by an earlier replay only sends B by the full path, never
// drops a small part that is there.
unsigned tf32x3_wgmma_presplit(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n, bool permuted,
                               float* parts, unsigned* small_any, cudaStream_t stream);

}  // namespace uv::cuda
