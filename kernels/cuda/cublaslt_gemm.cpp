// cuBLASLt products (kernels/cuda/cublaslt_gemm.h): the row-major call mapped to column-major
// cuBLASLt, one plan per distinct call.
#include "kernels/cuda/cublaslt_gemm.h"

#include "kernels/cuda/cuda_check.h"

namespace uv::cuda {

namespace {

struct LayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* p) const { cublasLtMatrixLayoutDestroy(p); }
};
struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* p) const { cublasLtMatmulDescDestroy(p); }
};
struct PreferenceDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using Desc = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PreferenceDeleter>;

// A column-major layout of `rows`×`cols` floats with leading dimension `ld`, `count` of them.
Layout make_layout(int64_t rows, int64_t cols, int64_t ld, int64_t count, int64_t stride) {
  cublasLtMatrixLayout_t raw = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&raw, CUDA_R_32F, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  Layout layout(raw);
  if (count > 1) {
    const int32_t batch = static_cast<int32_t>(count);
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(raw, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                  sizeof(stride)));
  }
  return layout;
}

}  // namespace

// A plan: the descriptors of one call and the algorithm the heuristic gave for them, or none.
struct LtGemm::Plan {
  Desc op;
  Layout a, b, c;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;
  bool ran = false;  // a first cublasLtMatmul succeeded: later failures are errors, not refusals
};

LtGemm::LtGemm(void* workspace, size_t workspace_bytes, bool one_kernel)
    : workspace_(workspace), workspace_bytes_(workspace_bytes), one_kernel_(one_kernel) {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
}

LtGemm::~LtGemm() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

LtGemm::Key LtGemm::key_of(const GemmCall& c) {
  // Alignment decides which kernels may run, so it is part of the call.
  return {c.ta, c.tb, c.m, c.n, c.k, c.lda, c.ldb, c.ldc, c.count, c.stride_a, c.stride_b, c.stride_c,
          static_cast<int64_t>(c.epilogue), batch_alignment(c.a, c.count, c.stride_a),
          batch_alignment(c.b, c.count, c.stride_b), batch_alignment(c.c, c.count, c.stride_c),
          c.epilogue == GemmEpilogue::None ? 256 : batch_alignment(c.bias, c.count, c.n)};
}

std::unique_ptr<LtGemm::Plan> LtGemm::make_plan(const GemmCall& call) const {
  auto plan = std::make_unique<Plan>();
  cublasLtMatmulDesc_t op = nullptr;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  plan->op.reset(op);
  // Row-major C = op(A)·op(B) is column-major Cᵀ (n×m) = op(B)ᵀ·op(A)ᵀ: cuBLASLt's A is our B and
  // its B our A, each stored as the transpose of what row-major order says, so the flags carry over.
  const cublasOperation_t trans_a = call.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = call.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  // Column-major, the bias runs along Cᵀ's rows (our n): BIAS adds it to every column of Cᵀ, and
  // BGRADA reduces cuBLASLt's A (op(B)ᵀ, n×k) over k, which is Σ_p op(B)[p, :].
  const cublasLtEpilogue_t epilogue = call.epilogue == GemmEpilogue::Bias           ? CUBLASLT_EPILOGUE_BIAS
                                      : call.epilogue == GemmEpilogue::BiasGradient ? CUBLASLT_EPILOGUE_BGRADA
                                                                                    : CUBLASLT_EPILOGUE_DEFAULT;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (call.epilogue != GemmEpilogue::None) {
    // The heuristic reads the pointer's alignment, so it is set before the query (and per call).
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &call.bias, sizeof(call.bias)));
    if (call.count > 1) {
      const int64_t bias_stride = call.n;
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &bias_stride,
                                                  sizeof(bias_stride)));
    }
  }
  plan->a = call.tb ? make_layout(call.k, call.n, call.ldb, call.count, call.stride_b)
                    : make_layout(call.n, call.k, call.ldb, call.count, call.stride_b);
  plan->b = call.ta ? make_layout(call.m, call.k, call.lda, call.count, call.stride_a)
                    : make_layout(call.k, call.m, call.lda, call.count, call.stride_a);
  plan->c = make_layout(call.n, call.m, call.ldc, call.count, call.stride_c);

  cublasLtMatmulPreference_t raw = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw));
  Preference preference(raw);
  const uint64_t workspace = workspace_bytes_;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                    sizeof(workspace)));
  if (one_kernel_) {
    // Split-K parts summed in the product's own kernel (INPLACE, counters in the workspace), or
    // no split: never a second reduction kernel.
    const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_INPLACE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(raw, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                      sizeof(schemes)));
  }
  // Every product of a batch, not just the first: the strides may break the base's alignment.
  const std::array<std::pair<cublasLtMatmulPreferenceAttributes_t, int64_t>, 4> alignments{{
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, batch_alignment(call.b, call.count, call.stride_b)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, batch_alignment(call.a, call.count, call.stride_a)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, batch_alignment(call.c, call.count, call.stride_c)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, batch_alignment(call.c, call.count, call.stride_c)},
  }};
  for (const auto& [attribute, alignment] : alignments) {
    const uint32_t bytes = static_cast<uint32_t>(alignment);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(raw, attribute, &bytes, sizeof(bytes)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  // Any failure of the query (NOT_SUPPORTED: no algorithm for this epilogue or layout; or a
  // configuration the library rejects) leaves the plan unusable, and the call to cublasSgemm.
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, op, plan->a.get(), plan->b.get(),
                                                               plan->c.get(), plan->c.get(), raw, 1, &result, &found);
  plan->usable = status == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
  if (plan->usable) plan->algo = result.algo;
  return plan;
}

bool LtGemm::run(const GemmCall& call, cudaStream_t stream) {
  if (call.epilogue == GemmEpilogue::BiasGradient && (call.tb || call.alpha != 1.f)) {
    // BGRADA works on a non-transposed cuBLASLt A only, and whether it scales by alpha is not
    // documented: the caller's product and column sums run instead.
    ++declined_;
    return false;
  }
  std::unique_ptr<Plan>& slot = plans_[key_of(call)];
  if (!slot) slot = make_plan(call);  // a throw leaves the slot empty, to be planned again
  Plan& plan = *slot;
  if (!plan.usable) {
    ++declined_;
    return false;
  }
  if (call.epilogue != GemmEpilogue::None)  // the same alignment, maybe another buffer
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &call.bias,
                                                sizeof(call.bias)));
  const cublasStatus_t status =
      cublasLtMatmul(handle_, plan.op.get(), &call.alpha, call.b, plan.a.get(), call.a, plan.b.get(), &call.beta,
                     call.c, plan.c.get(), call.c, plan.c.get(), &plan.algo, workspace_, workspace_bytes_, stream);
  // A heuristic's algorithm is not a promise that it runs ("SUCCESS doesn't fully guarantee that
  // the algo will run", cublasLtMatmulAlgoCheck): a first refusal retires the plan to cublasSgemm.
  if (!plan.ran && (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE)) {
    plan.usable = false;
    ++declined_;
    return false;
  }
  CUBLAS_CHECK(status);
  plan.ran = true;
  ++(call.epilogue == GemmEpilogue::None ? products_ : fused_epilogues_);
  return true;
}

}  // namespace uv::cuda
