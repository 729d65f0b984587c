// A float32 GEMM on the tensor cores by 3xTF32 (kernels/cuda/tf32x3_gemm_tile.h says why): the
// products of chain_fused past its on-chip limits, where the chain's two GEMMs are the algorithm and
// the gain over the cuBLAS chain has to come from the GEMM itself, and with train.gemm = tf32x3
// every product cuBLAS would run (kernels/cuda/cublas_ops.h). Row-major, strided batches:
//   C_i = alpha · op(A_i) · op(B_i) + beta · C_i   (C not read when beta = 0), i < count.
// Tf32x3Ops serves kernels/predicted_linear_algorithm.h's orchestrations with it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/tf32x3_gemm_tile.h"
#include "kernels/gemm_call.h"
#include "kernels/predicted_linear_args.h"

namespace uv::cuda {

// `workspace` (workspace_floats, device memory, or null) holds split-K's partial products and, for
// Tf32x3Kernel::WgmmaPresplit, B's split parts in its tail; without room there a product runs
// unsplit, and B is split by the blocks.
void tf32x3_gemm(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool trans_a, bool trans_b,
                 int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc, float* workspace, int64_t workspace_floats,
                 cudaStream_t stream);
// The same for a GemmCall, with its Bias epilogue (C += bias on every row, product i's bias at
// bias + i·n) added as C is written. A BiasGradient epilogue is refused (UV_CHECK).
void tf32x3_gemm(const GemmCall& call, float* workspace, int64_t workspace_floats, cudaStream_t stream);

// How tf32x3_gemm runs `call` on this device with this workspace and the current choices
// (tf32x3_plan_summary in tf32x3_gemm_tile.h; the product must be one it takes: tf32x3_takes).
Tf32x3PlanSummary tf32x3_plan(const GemmCall& call, const float* workspace, int64_t workspace_floats);
// Whether tf32x3_gemm takes `call` (within its grid, no bias-gradient epilogue); `why`: else what.
bool tf32x3_takes(const GemmCall& call, std::string& why);
// Sets the kernels' attributes (their shared memory), once a process: the backend calls it with its
// workspace, before any CUDA-graph capture; the first product calls it too. One device a process.
void tf32x3_prepare();

// The workspace the CUDA backend gives the products, in floats: UV_TF32X3_WORKSPACE_MIB
// (kTf32x3WorkspaceMib by default, tf32x3_gemm_tile.h), read at the first call.
int64_t tf32x3_workspace_floats();

// The deepest accumulation on the tensor cores (kTf32x3ChunkDepth, tf32x3_gemm_tile.h says why):
// UV_TF32X3_CHUNK_DEPTH at the first call, or what set_tf32x3_chunk_depth set since (tests set
// small depths to run many chunks on small products).
int64_t tf32x3_chunk_depth();
void set_tf32x3_chunk_depth(int64_t depth);

// Which tiles the products take (Tf32x3Tiles, tf32x3_gemm_tile.h).
Tf32x3Tiles tf32x3_tiles();
void set_tf32x3_tiles(Tf32x3Tiles tiles);

// The kernel the products run on (Tf32x3Kernel, tf32x3_gemm_tile.h): UV_TF32X3_KERNEL at the first
// call, or what set_tf32x3_kernel set since.
Tf32x3Kernel tf32x3_kernel();
void set_tf32x3_kernel(Tf32x3Kernel kernel);

// How the specialised kernels' ring synchronises (Tf32x3SpecialisedSync, tf32x3_gemm_tile.h):
// UV_TF32X3_SPECIALISED_SYNC at the first call, or what set_tf32x3_specialised_sync set since.
Tf32x3SpecialisedSync tf32x3_specialised_sync();
void set_tf32x3_specialised_sync(Tf32x3SpecialisedSync sync);

struct Tf32x3Ops {
  using Scalar = float;
  cudaStream_t stream;
  float* workspace = nullptr;  // split-K's partial products
  int64_t workspace_floats = 0;
  int64_t* calls = nullptr;    // or null: counts the host's calls (a replayed CUDA graph adds none)
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const {
    gemm_batched(1, 0, 0, 0, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta, bool tb, int64_t m,
                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) const {
    tf32x3_gemm(count, stride_a, stride_b, stride_c, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace,
                workspace_floats, stream);
    if (calls) ++*calls;
  }
  // The forward bias in the product's epilogue; the bias gradient stays a column-sum kernel.
  bool gemm_fused(const GemmCall& c) const {
    if (c.epilogue != GemmEpilogue::Bias || !tf32x3_fits(c.count, c.m, c.n)) return false;
    tf32x3_gemm(c, workspace, workspace_floats, stream);
    if (calls) ++*calls;
    return true;
  }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) const {
    cuda::bias_add_rows(y, bias, m, n, stream);
  }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) const {
    cuda::column_sums(x, m, n, out, mode, stream);
  }
};

}  // namespace uv::cuda
