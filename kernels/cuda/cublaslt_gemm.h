// cuBLASLt for the row-major float32 products of kernels/predicted_linear_algorithm.h, with what
// cublasSgemm cannot do:
//   * a bias epilogue (y = x·w + b in the GEMM, no bias kernel after it) and a bias-gradient
//     epilogue (db = Σ_rows dY while forming dW = Xᵀ·dY, no column-sum kernel beside it);
//   * the choice to refuse split-K schemes that reduce in a separate kernel (`one_kernel`): at the
//     paper's batch of 100 rows cuBLAS splits K = 500..784 and adds a reduction launch, and a
//     training step is a chain of ~25 launches, each costing its latency.
// Each distinct call (shape, strides, epilogue, pointer alignment) gets its algorithm from
// cuBLASLt's heuristic once; the cached plan is reused, so a captured step replays fixed kernels.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>

#include "kernels/gemm_call.h"

namespace uv::cuda {

class LtGemm {
 public:
  // `workspace` (device, `workspace_bytes`, zeroed) is this object's alone: an in-place split-K
  // reduction keeps counters there. `one_kernel`: only algorithms that reduce split-K parts in the
  // product's own kernel (or do not split K).
  LtGemm(void* workspace, size_t workspace_bytes, bool one_kernel);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Enqueues the product on `stream`. False, with nothing enqueued, where cuBLASLt offers no
  // algorithm for it (an epilogue it lacks for these types, say): the caller then runs the plain
  // product and a separate kernel.
  bool run(const GemmCall& call, cudaStream_t stream);

  bool one_kernel() const { return one_kernel_; }
  // What ran: plain products, products with their epilogue fused, and calls handed back to the
  // caller (no algorithm, or an epilogue this class does not fuse).
  int64_t products() const { return products_; }
  int64_t fused_epilogues() const { return fused_epilogues_; }
  int64_t declined() const { return declined_; }

 private:
  struct Plan;
  using Key = std::array<int64_t, 17>;
  static Key key_of(const GemmCall& call);
  std::unique_ptr<Plan> make_plan(const GemmCall& call) const;

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  size_t workspace_bytes_;
  bool one_kernel_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  int64_t products_ = 0, fused_epilogues_ = 0, declined_ = 0;
};

}  // namespace uv::cuda
