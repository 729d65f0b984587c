// cuDNN convolutions: descriptors and algorithm choice per shape, the three calls, then the dense,
// materialise and chain conv layers on them (their data flow: kernels/conv2d_krsc_algorithm.h).
#include "kernels/cuda/cudnn_conv.h"

#include <optional>
#include <vector>

#include "engine/core/error.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/conv2d_krsc_algorithm.h"
#include "kernels/cudnn_conv_shape.h"

namespace uv::cuda {

namespace {

// A workspace above this is taken only when no algorithm needs less (some FFT algorithms ask for
// gigabytes where the implicit-GEMM ones need none).
constexpr size_t kWorkspaceSoftLimitBytes = size_t{256} << 20;

template <typename Algo>
struct AlgoChoice {
  Algo algo{};
  size_t workspace = 0;
};

// From the heuristics' ranking (cudnnGet*Algorithm_v7: no trial runs, no extra buffers), the first
// candidate that succeeds, preferring deterministic algorithms (a resumed run repeats bit for bit,
// as on the cuBLAS paths), then a workspace within the soft limit. Each candidate's workspace is
// asked for with the descriptor's math type (FMA), so an algorithm that needs another is skipped.
template <typename Algo, typename Perf, typename Heuristic, typename WorkspaceSize>
AlgoChoice<Algo> choose_algorithm(int count, Heuristic heuristic, WorkspaceSize workspace_size,
                                  const char* direction) {
  std::vector<Perf> perfs(static_cast<size_t>(count));
  int returned = 0;
  CUDNN_CHECK(heuristic(count, &returned, perfs.data()));
  std::optional<AlgoChoice<Algo>> best;
  int best_rank = 4;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perfs[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 0;
    if (workspace_size(p.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    const int rank = (p.determinism == CUDNN_DETERMINISTIC ? 0 : 2) + (bytes <= kWorkspaceSoftLimitBytes ? 0 : 1);
    if (rank < best_rank) {
      best = AlgoChoice<Algo>{p.algo, bytes};
      best_rank = rank;
    }
  }
  UV_CHECK(best.has_value(), "cuDNN offers no " << direction << " algorithm for this convolution ("
                                                << returned << " candidates)");
  return *best;
}

}  // namespace

// The descriptors of one shape and, chosen on first use, each direction's algorithm.
struct CudnnConv::Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::optional<AlgoChoice<cudnnConvolutionFwdAlgo_t>> forward;
  std::optional<AlgoChoice<cudnnConvolutionBwdDataAlgo_t>> backward_data;
  std::optional<AlgoChoice<cudnnConvolutionBwdFilterAlgo_t>> backward_filter;

  explicit Plan(const CudnnConvDims& d) {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, d.n, d.in_c, d.in_h, d.in_w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, d.n, d.filters, d.out_h, d.out_w));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, d.filters, d.in_c, d.kernel,
                                           d.kernel));
    // Cross-correlation: the engine's conv (and every framework's) does not flip the filter.
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, d.pad_h, d.pad_w, d.stride, d.stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // Full float32 arithmetic, no TF32 tensor cores: cuBLAS's default on the other CUDA paths, and
    // what the CPU comparisons' float tolerance assumes.
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    int n = 0, c = 0, h = 0, wd = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd));
    UV_CHECK(n == d.n && c == d.filters && h == d.out_h && wd == d.out_w,
             "cuDNN's conv output " << n << "x" << h << "x" << wd << "x" << c << " is not the planned " << d.n << "x"
                                    << d.out_h << "x" << d.out_w << "x" << d.filters);
  }
  ~Plan() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
};

CudnnConv::CudnnConv(cudaStream_t stream, std::function<Buffer(size_t)> allocate) : allocate_(std::move(allocate)) {
  CUDNN_CHECK(cudnnCreate(&handle_));
  CUDNN_CHECK(cudnnSetStream(handle_, stream));
}

CudnnConv::~CudnnConv() {
  plans_.clear();
  workspace_ = Buffer();  // freed in stream order, before the handle goes
  cudnnDestroy(handle_);  // a destructor cannot throw: a failure here has nothing left to affect
}

CudnnConv::Plan& CudnnConv::plan(const Conv2dShape& s, int64_t filters) {
  const std::array<int64_t, 9> key{s.batch, s.in_h, s.in_w, s.in_c, filters, s.kernel, s.stride, s.pad_top, s.pad_left};
  auto it = plans_.find(key);
  if (it == plans_.end()) it = plans_.emplace(key, std::make_unique<Plan>(cudnn_conv_dims(s, filters))).first;
  return *it->second;
}

void* CudnnConv::workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > workspace_.bytes()) {
    workspace_ = Buffer();  // the old one is freed in stream order, after the calls that used it
    workspace_ = allocate_(bytes);
  }
  return workspace_.data();
}

void CudnnConv::forward(const Conv2dShape& s, int64_t filters, const float* x, const float* w, float* y) {
  Plan& p = plan(s, filters);
  if (!p.forward)
    p.forward = choose_algorithm<cudnnConvolutionFwdAlgo_t, cudnnConvolutionFwdAlgoPerf_t>(
        CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
        [&](int count, int* returned, cudnnConvolutionFwdAlgoPerf_t* perfs) {
          return cudnnGetConvolutionForwardAlgorithm_v7(handle_, p.x, p.w, p.conv, p.y, count, returned, perfs);
        },
        [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(handle_, p.x, p.w, p.conv, p.y, algo, bytes);
        },
        "forward");
  const float one = 1.f, zero = 0.f;
  void* ws = workspace(p.forward->workspace);
  CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, p.conv, p.forward->algo, ws,
                                      p.forward->workspace, &zero, p.y, y));
}

void CudnnConv::backward_data(const Conv2dShape& s, int64_t filters, const float* w, const float* dy, float* dx) {
  Plan& p = plan(s, filters);
  if (!p.backward_data)
    p.backward_data = choose_algorithm<cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdDataAlgoPerf_t>(
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
        [&](int count, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perfs) {
          return cudnnGetConvolutionBackwardDataAlgorithm_v7(handle_, p.w, p.y, p.conv, p.x, count, returned, perfs);
        },
        [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(handle_, p.w, p.y, p.conv, p.x, algo, bytes);
        },
        "backward-data");
  const float one = 1.f, zero = 0.f;
  void* ws = workspace(p.backward_data->workspace);
  CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, p.conv, p.backward_data->algo, ws,
                                           p.backward_data->workspace, &zero, p.x, dx));
}

void CudnnConv::backward_filter(const Conv2dShape& s, int64_t filters, const float* x, const float* dy,
                                float* dw) {
  Plan& p = plan(s, filters);
  if (!p.backward_filter)
    p.backward_filter = choose_algorithm<cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionBwdFilterAlgoPerf_t>(
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
        [&](int count, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perfs) {
          return cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle_, p.x, p.y, p.conv, p.w, count, returned,
                                                               perfs);
        },
        [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_, p.x, p.y, p.conv, p.w, algo, bytes);
        },
        "backward-filter");
  const float one = 1.f, zero = 0.f;
  void* ws = workspace(p.backward_filter->workspace);
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, p.conv, p.backward_filter->algo, ws,
                                             p.backward_filter->workspace, &zero, p.w, dw));
}

// ---- the conv layers ---------------------------------------------------------------------------

namespace {

// kernels/conv2d_krsc_algorithm.h's primitives: cuBLAS, the transpose kernel and cuDNN.
struct CudnnConvOps {
  using Scalar = float;
  CudnnConv& cudnn;
  CublasOps blas;
  void gemm_batched(int64_t count, int64_t stride_a, int64_t stride_b, int64_t stride_c, bool ta, bool tb, int64_t m,
                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) {
    blas.gemm_batched(count, stride_a, stride_b, stride_c, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) { blas.bias_add_rows(y, bias, m, n); }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) {
    blas.column_sums(x, m, n, out, mode);
  }
  void transpose(const float* a, int64_t rows, int64_t cols, float* out, GradientMode mode) {
    cuda::transpose(a, rows, cols, out, mode, blas.stream);
  }
  void conv_forward(const Conv2dShape& s, int64_t filters, const float* x, const float* w, float* y) {
    cudnn.forward(s, filters, x, w, y);
  }
  void conv_backward_data(const Conv2dShape& s, int64_t filters, const float* w, const float* dy, float* dx) {
    cudnn.backward_data(s, filters, w, dy, dx);
  }
  void conv_backward_filter(const Conv2dShape& s, int64_t filters, const float* x, const float* dy, float* dw) {
    cudnn.backward_filter(s, filters, x, dy, dw);
  }
};

}  // namespace

void cudnn_conv2d_forward(CudnnConv& cudnn, CublasOps blas, const Conv2dForwardArgs& args) {
  CudnnConvOps ops{cudnn, blas};
  algorithm::conv2d_krsc_forward(ops, args);
}

void cudnn_conv2d_backward(CudnnConv& cudnn, CublasOps blas, const Conv2dBackwardArgs& args) {
  CudnnConvOps ops{cudnn, blas};
  algorithm::conv2d_krsc_backward(ops, args);
}

}  // namespace uv::cuda
