// CUDA backend: a stream, a cuBLAS handle, a cuDNN handle, a stream-ordered memory pool
// (cudaMallocAsync, never managed memory), the kernels of kernels/cuda, the cuBLAS baselines of the
// predicted layer and the cuDNN convolutions (kernels/cuda/cudnn_conv.h); capture of work on the
// stream into CUDA graphs (kernels/cuda/cuda_graph.h).
#ifdef UV_WITH_CUDA

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <sstream>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "kernels/cuda/chain_fused.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/cublas_ops.h"
#include "kernels/cuda/tf32x3_gemm.h"
#include "kernels/cuda/tf32x3_wgmma.h"
#include "kernels/cuda/cublaslt_gemm.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_graph.h"
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/onthefly_w.h"
#include "kernels/cuda/shuffle.h"
#include "kernels/cuda/small_gemm.h"
#include "kernels/conv2d_onthefly_w_algorithm.h"
#include "kernels/cudnn_conv_shape.h"
#include "kernels/predicted_linear_algorithm.h"

namespace uv {

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    // cuBLAS gets its workspace up front, at the size its documentation recommends (32 MiB on
    // Hopper and later, 4 MiB before), so a captured GEMM never allocates one, and captured and
    // uncaptured runs use the same workspace and so the same kernels. Outside the pool: it lives
    // as long as the handle.
    cublas_workspace_bytes_ = (prop_.major >= 9 ? size_t{32} : size_t{4}) << 20;
    CUDA_CHECK(cudaMalloc(&cublas_workspace_, cublas_workspace_bytes_));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, cublas_workspace_bytes_));
    // Keep freed blocks in the pool instead of returning them at every synchronisation, so a
    // training step that frees and re-allocates never reaches cudaMalloc.
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t threshold = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    cudnn_ = std::make_unique<cuda::CudnnConv>(stream_, [this](size_t bytes) { return allocate(bytes); });
    // The grouped norm bound's block counter (ColumnNormTargets::done): zero, and the last block of
    // every launch leaves it zero. Outside the pool, as the cuBLAS workspace: it lives with the backend.
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&blocks_done_), sizeof(unsigned)));
    CUDA_CHECK(cudaMemset(blocks_done_, 0, sizeof(unsigned)));
  }
  ~CudaBackend() override {
    // Destructors must not throw: report nothing, release what can be released.
    cudaStreamSynchronize(stream_);
    cudnn_.reset();  // its workspace goes back to the pool, then its handle
    lt_.reset();     // before the workspace it uses
    if (lt_workspace_) cudaFree(lt_workspace_);
    if (blocks_done_) cudaFree(blocks_done_);
    if (row_loss_) cudaFree(row_loss_);
    if (row_correct_) cudaFree(row_correct_);
    cublasDestroy(cublas_);
    if (cublas_workspace_) cudaFree(cublas_workspace_);
    if (tf32x3_workspace_) cudaFree(tf32x3_workspace_);
    cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  bool wgmma_tensor_chain() const override {
    return cuda::tf32x3_is_wgmma(cuda::tf32x3_kernel()) && cuda::tf32x3_wgmma_available();
  }
  std::string description() const override {
    std::ostringstream out;
    out << "cuda:" << device_ << " (" << prop_.name << ", sm_" << prop_.major << prop_.minor << ")";
    return out.str();
  }

  Buffer allocate(size_t bytes) override {
    void* data = nullptr;
    const size_t size = bytes == 0 ? 256 : bytes;
    CUDA_CHECK(cudaMallocAsync(&data, size, stream_));
    const size_t now = allocated_ += size;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    cudaStream_t stream = stream_;
    return Buffer(data, bytes, Device::CUDA, [this, size, stream](void* p) {
      allocated_ -= size;
      cudaFreeAsync(p, stream);  // a deleter cannot throw; a failure here shows at the next check
    });
  }
  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffer may be reused right after
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill(float* x, int64_t n, float value) override { cuda::fill(x, n, value, stream_); }
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  double time_per_call_ms(const std::function<void()>& work, int reps) override {
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start, stream_));
    for (int i = 0; i < reps; ++i) work();
    CUDA_CHECK(cudaEventRecord(stop, stream_));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return static_cast<double>(ms) / reps;
  }
  size_t peak_allocated_bytes() const override { return peak_.load(); }
  size_t allocated_bytes() const override { return allocated_.load(); }
  int64_t device_bytes_in_use() const override {
    size_t free = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return static_cast<int64_t>(total - free);
  }

  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    ops().gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  bool gemm_fused(const GemmCall& call) override { return ops().gemm_fused(call); }
  void set_gemm_library(GemmLibrary library) override {
    UV_CHECK(!captured_, "the GEMM library cannot change after a capture recorded its products");
    lt_.reset();
    tf32x3_library_ = library == GemmLibrary::Tf32x3;
    if (tf32x3_library_) tf32x3_ops();  // its workspace, before any capture
    if (library == GemmLibrary::Cublas || tf32x3_library_) return;
    // A workspace of its own, zeroed: cublasSgemm's scratch in the shared one could land on the
    // counters cuBLASLt's in-place split-K reduction keeps there between its launches.
    if (!lt_workspace_) {
      CUDA_CHECK(cudaMalloc(&lt_workspace_, cublas_workspace_bytes_));
      CUDA_CHECK(cudaMemset(lt_workspace_, 0, cublas_workspace_bytes_));
    }
    lt_ = std::make_unique<cuda::LtGemm>(lt_workspace_, cublas_workspace_bytes_,
                                         library == GemmLibrary::CublasLtOneKernel);
  }
  void set_small_gemm(bool on) override { small_gemm_ = on; }
  bool fuses_bias_activation(int64_t m, int64_t n, int64_t k, Activation act) const override {
    return small_gemm_ && act != Activation::ReLU && cuda::small_gemm_fits(m, n, k);
  }
  void gemm_bias_activation(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                            const float* bias, Activation act, float* y, int64_t ldy) override {
    cuda::small_gemm_bias_activation(m, n, k, a, lda, b, ldb, bias, act, y, ldy, stream_);
    ++small_products_;
  }
  std::vector<Workspace> workspaces() const override {
    std::vector<Workspace> out{{"cublas", static_cast<int64_t>(cublas_workspace_bytes_), false}};
    if (lt_workspace_) out.push_back({"cublaslt", static_cast<int64_t>(cublas_workspace_bytes_), false});
    if (tf32x3_workspace_)
      out.push_back({"tf32x3", cuda::tf32x3_workspace_floats() * static_cast<int64_t>(sizeof(float)), false});
    if (cudnn_ && cudnn_->workspace_bytes() > 0)
      out.push_back({"cudnn", static_cast<int64_t>(cudnn_->workspace_bytes()), true});
    return out;
  }
  GemmPlan gemm_plan(const GemmCall& call) const override {
    if (!tf32x3_library_) return {};
    GemmPlan plan;
    if (!cuda::tf32x3_takes(call, plan.text)) return plan;
    const cuda::Tf32x3PlanSummary summary = cuda::tf32x3_plan(call, tf32x3_workspace_, cuda::tf32x3_workspace_floats());
    return {cuda::tf32x3_plan_text(summary), cuda::tf32x3_plan_parts(summary)};
  }
  GemmCounts gemm_counts() const override {
    GemmCounts counts;
    if (lt_) counts = {lt_->products(), lt_->fused_epilogues(), lt_->declined(), 0};
    counts.small_products = small_products_;
    counts.tf32x3_products = tf32x3_calls_;
    return counts;
  }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) override {
    cuda::bias_add_rows(y, bias, m, n, stream_);
  }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) override {
    cuda::column_sums(x, m, n, out, mode, stream_);
  }

  void predicted_linear_forward(const PredictedLinearForwardArgs& args) override {
    if (args.strategy == PredictedStrategy::OnTheFlyW) {  // keeps nothing for backward
      cuda::onthefly_w_forward(args.shape, args.x, args.u, args.v, args.bias, args.y, stream_);
      return;
    }
    if (args.strategy == PredictedStrategy::ChainFused && cuda::chain_fused_supported(args.shape)) {
      cuda::chain_fused_forward(args.shape, args.x, args.u, args.v, args.bias, args.saved, args.y, stream_);
      return;
    }
    if (args.strategy == PredictedStrategy::ChainFused && tf32x3_fits(args.shape)) {
      cuda::Tf32x3Ops o = tf32x3_ops();  // beyond the on-chip limits: the chain, on our tensor-core products
      algorithm::predicted_linear_forward(o, args);
      return;
    }
    cuda::CublasOps o = ops();
    algorithm::predicted_linear_forward(o, args);
  }
  void predicted_linear_backward(const PredictedLinearBackwardArgs& a) override {
    if (a.strategy == PredictedStrategy::OnTheFlyW) return onthefly_w_backward(a);
    // dU (LowRank) needs dT in device memory: that case runs the cuBLAS chain; shapes beyond the
    // on-chip limits, the chain on our tensor-core products (the cuBLAS chain past their grid).
    if (a.strategy == PredictedStrategy::ChainFused && cuda::chain_fused_supported(a.shape) && !a.du) {
      cuda::CublasOps o = ops();
      algorithm::chain_backward_weights(o, a, a.shape.t_ld());  // db, and dV on the T the forward kernel wrote once
      if (a.dx) cuda::chain_fused_backward_data(a.shape, a.dy, a.u, a.v, a.dx, stream_);
      return;
    }
    if (a.strategy == PredictedStrategy::ChainFused && !cuda::chain_fused_supported(a.shape) && tf32x3_fits(a.shape)) {
      cuda::Tf32x3Ops o = tf32x3_ops();
      algorithm::predicted_linear_backward(o, a);
      return;
    }
    cuda::CublasOps o = ops();
    algorithm::predicted_linear_backward(o, a);
  }
  void tied_decoder_forward(const PredictedLinearShape& s, const float* h, const float* u,
                            const float* v, const float* bias, float* s_saved, float* z) override {
    cuda::CublasOps o = ops();
    algorithm::tied_decoder_forward(o, s, h, u, v, bias, s_saved, z);
  }
  void tied_decoder_backward(const PredictedLinearShape& s, const float* h, const float* u,
                             const float* v, const float* s_saved, const float* dz, float* scratch,
                             float* dh, float* dv, float* dbias, float* du, GradientMode dv_mode,
                             GradientMode dbias_mode, GradientMode du_mode) override {
    cuda::CublasOps o = ops();
    algorithm::tied_decoder_backward(o, s, h, u, v, s_saved, dz, scratch, dh, dv, dbias, du, dv_mode,
                                     dbias_mode, du_mode);
  }

  // Routes (cuda_conv2d_route): onthefly_w takes its implicit-GEMM kernels (LowRank's backward the
  // im2col default); dense, materialise and chain convolutions go to cuDNN where it allows (not the
  // asymmetric "same" padding of an even filter); the rest, chain_fused included, the im2col default.
  void conv2d_forward(const Conv2dForwardArgs& a) override {
    switch (cuda_conv2d_route(a.conv, a.predicted, a.strategy, a.rank, a.columns)) {
      case Conv2dRoute::OnTheFlyWImplicit: {
        ImplicitConvOps o{ops()};
        return algorithm::conv2d_onthefly_w_forward(o, a);
      }
      case Conv2dRoute::Cudnn: return cuda::cudnn_conv2d_forward(*cudnn_, ops(), a);
      case Conv2dRoute::Im2col: break;
    }
    Backend::conv2d_forward(a);
  }
  void conv2d_backward(const Conv2dBackwardArgs& a) override {
    switch (cuda_conv2d_route(a.conv, a.predicted, a.strategy, a.rank, a.columns)) {
      case Conv2dRoute::OnTheFlyWImplicit: {
        if (a.du) break;  // dU needs dT in memory: the im2col route (its buffers are planned)
        ImplicitConvOps o{ops()};
        return algorithm::conv2d_onthefly_w_backward(o, a);
      }
      case Conv2dRoute::Cudnn: return cuda::cudnn_conv2d_backward(*cudnn_, ops(), a);
      case Conv2dRoute::Im2col: break;
    }
    Backend::conv2d_backward(a);
  }
  Conv2dBuffers conv2d_buffers(const Conv2dLayout& layer) const override { return cuda_conv2d_buffers(layer); }

  void im2col(const Conv2dShape& s, const float* x, float* cols) override { cuda::im2col(s, x, cols, stream_); }
  void col2im(const Conv2dShape& s, const float* dcols, float* dx) override {
    cuda::col2im(s, dcols, dx, stream_);
  }
  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y) override {
    cuda::maxpool2d_forward(s, x, y, stream_);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx) override {
    cuda::maxpool2d_backward(s, x, dy, dx, stream_);
  }

  void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features,
                   float* dst) override {
    cuda::gather_rows(src, index, m, features, dst, stream_);
  }
  void shuffled_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream) override {
    if (n == 0) return;
    // Keys, their sorted copy, the index values and CUB's scratch: freed stream-ordered after use.
    Buffer scratch = allocate(cuda::shuffled_order_scratch_bytes(n));
    cuda::shuffled_order(order, n, seed, stream, scratch.data(), scratch.bytes(), stream_);
  }
  void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst) override {
    cuda::gather_labels(src, index, m, dst, stream_);
  }
  void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                    int64_t m, int64_t features, float* dst, int32_t* dst_labels) override {
    cuda::gather_batch(src, src_labels, order, state, m, features, dst, dst_labels, stream_);
  }

  void activation_forward(Activation act, const float* x, float* y, int64_t n) override {
    cuda::activation_forward(act, x, y, n, stream_);
  }
  void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n) override {
    cuda::relu_forward_mask(x, y, mask, n, stream_);
  }
  void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n) override {
    cuda::relu_backward_mask(mask, dy, dx, n, stream_);
  }
  void bias_activation_forward(Activation act, float* y, const float* bias, int64_t m, int64_t n,
                               uint32_t* relu_mask) override {
    UV_CHECK(act != Activation::ReLU || relu_mask, "bias_activation_forward: a ReLU needs its mask");
    cuda::bias_activation_forward(act, y, bias, m, n, relu_mask, stream_);
  }
  void activation_backward_bias(Activation act, const float* y, const uint32_t* relu_mask, float* dy, int64_t m,
                                int64_t n, float* dbias, GradientMode mode) override {
    UV_CHECK(act != Activation::ReLU || relu_mask, "activation_backward_bias: a ReLU needs its mask");
    cuda::activation_backward_bias(act, y, relu_mask, dy, m, n, dbias, mode, stream_);
  }
  void activation_backward(Activation act, const float* y, const float* dy, float* dx,
                           int64_t n) override {
    cuda::activation_backward(act, y, dy, dx, n, stream_);
  }
  LossResult softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                   float* dlogits) override {
    reserve_rows(m);
    cuda::softmax_cross_entropy(logits, labels, m, c, dlogits, row_loss_, row_correct_, stream_);
    return reduce_rows(m, true);
  }
  void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                        float* dlogits, StepState* state) override {
    reserve_rows(m);
    cuda::softmax_cross_entropy_accumulate(logits, labels, m, c, dlogits, row_loss_, row_correct_, state, stream_);
  }
  LossResult mean_squared_error(const float* y, const float* target, int64_t m, int64_t n,
                                float* dy) override {
    reserve_rows(m);
    cuda::mean_squared_error(y, target, m, n, dy, row_loss_, stream_);
    return reduce_rows(m, false);
  }

  void sgd_step(const SgdArgs& a) override {
    cuda::sgd_step(a.params, a.grads, a.momentum_buffer, a.n, a.lr, a.lr_from ? &a.lr_from->lr : nullptr,
                   a.momentum, a.weight_decay, a.decayed_elements(), stream_);
  }
  void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm) override {
    cuda::max_column_norm(v, count, rows, cols, max_norm, stream_);
  }
  void max_column_norms(const std::vector<ColumnNormTarget>& targets, float max_norm,
                        const StepAdvance& advance) override {
    cuda::ColumnNormTargets group;
    for (const ColumnNormTarget& t : targets) {
      if (group.full()) {
        cuda::max_column_norms(group, max_norm, stream_);
        group = {};
      }
      group.add(t.v, t.count, t.rows, t.cols);
    }
    // The last launch carries the advance (alone where there is nothing to bound).
    carry_advance(group, advance);
    cuda::max_column_norms(group, max_norm, stream_);
  }
  void sgd_step_bounded(const SgdArgs& a, const std::vector<ColumnNormTarget>& targets, float max_norm,
                        const StepAdvance& advance) override {
    // One launch where every target is one whole tensor inside the arena and they fit one group;
    // otherwise the two launches.
    const float* end = a.params + a.n;
    std::vector<std::pair<int64_t, int64_t>>& spans = bounded_spans_;  // reused: no allocation per step
    spans.clear();
    bool fused = targets.size() <= static_cast<size_t>(cuda::kMaxColumnNormTargets);
    for (const ColumnNormTarget& t : targets) {
      const int64_t size = t.count * t.rows * t.cols;
      fused = fused && t.v >= a.params && t.v + size <= end;
      if (fused) spans.emplace_back(t.v - a.params, t.v - a.params + size);
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; fused && i < spans.size(); ++i) fused = spans[i - 1].second <= spans[i].first;
    if (!fused) return Backend::sgd_step_bounded(a, targets, max_norm, advance);
    cuda::ColumnNormTargets group;
    for (const ColumnNormTarget& t : targets) group.add(t.v, t.count, t.rows, t.cols);
    carry_advance(group, advance);
    cuda::FusedSgd sgd;
    sgd.params = a.params;
    sgd.grads = a.grads;
    sgd.momentum_buffer = a.momentum_buffer;
    sgd.lr = a.lr;
    sgd.lr_from = a.lr_from ? &a.lr_from->lr : nullptr;
    sgd.momentum = a.momentum;
    sgd.weight_decay = a.weight_decay;
    sgd.decay_end = a.decayed_elements();
    int64_t at = 0;  // the gaps between the targets, and after the last
    for (const auto& [begin, stop] : spans) {
      if (begin > at) {
        sgd.rest_begin[sgd.n_rest] = at;
        sgd.rest_end[sgd.n_rest++] = begin;
      }
      at = stop;
    }
    if (a.n > at) {
      sgd.rest_begin[sgd.n_rest] = at;
      sgd.rest_end[sgd.n_rest++] = a.n;
    }
    cuda::sgd_step_bounded(group, max_norm, sgd, stream_);
    ++fused_optimizer_launches_;
  }
  int64_t fused_optimizer_launches() const override { return fused_optimizer_launches_; }
  void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream) override {
    cuda::uniform_init(x, n, lo, hi, seed, stream, stream_);
  }
  void advance_step(StepState* state, int64_t batch, double lr_decay) override {
    cuda::advance_step(state, batch, lr_decay, stream_);
  }

  bool can_capture() const override { return true; }
  std::unique_ptr<Captured> capture(const std::function<void()>& work) override {
    struct Graph final : Captured {
      Graph(cudaStream_t stream, const std::function<void()>& work) : graph(stream, work) {}
      void replay() override { graph.launch(); }
      cuda::StreamGraph graph;
    };
    // An allocation inside the capture would become a graph-owned block that the Buffer freeing
    // it later knows nothing of; none is expected once a step has run uncaptured (warm-up).
    const size_t before = allocated_.load();
    captured_ = true;
    auto graph = std::make_unique<Graph>(stream_, work);
    UV_CHECK(allocated_.load() == before, "the captured work allocated " << allocated_.load() - before
                                              << " bytes from the pool; run it once uncaptured first");
    return graph;
  }

 private:
  cuda::CublasOps ops() const {
    return cuda::CublasOps{cublas_, stream_, lt_.get(), tf32x3_library_ ? &tf32x3_library_ops_ : nullptr};
  }
  // chain_fused's tensor-core products, with split-K's workspace: 32 MiB (UV_TF32X3_WORKSPACE_MIB:
  // cuda::tf32x3_workspace_floats), outside the pool like cuBLAS's, made on first use (a run's
  // first step runs directly, before any capture).
  cuda::Tf32x3Ops tf32x3_ops() {
    const int64_t kFloats = cuda::tf32x3_workspace_floats();
    if (!tf32x3_workspace_) {
      CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&tf32x3_workspace_), kFloats * sizeof(float)));
      cuda::tf32x3_prepare();  // the kernels' attributes, outside any capture too
    }
    tf32x3_library_ops_ = cuda::Tf32x3Ops{stream_, tf32x3_workspace_, kFloats, &tf32x3_calls_};
    return tf32x3_library_ops_;
  }
  // The largest product of the chain's forward and backward within the GEMM's grid.
  static bool tf32x3_fits(const PredictedLinearShape& s) {
    const int64_t widest = std::max({s.k, s.n, s.t_cols()});
    return cuda::tf32x3_fits(s.columns, s.m, widest) && cuda::tf32x3_fits(1, std::max(s.k, s.t_cols()), widest);
  }
  // The grouped launch that carries the step's advance (done by its last block, counted here).
  void carry_advance(cuda::ColumnNormTargets& group, const StepAdvance& advance) const {
    group.advance = advance.state;
    group.advance_batch = advance.batch;
    group.advance_lr_decay = advance.lr_decay;
    group.done = blocks_done_;
  }

  // kernels/conv2d_onthefly_w_algorithm.h's Ops: the onthefly_w kernels' conv form, col2im, and
  // cuBLAS for dV.
  struct ImplicitConvOps : cuda::CublasOps {
    void onthefly_w_conv2d_forward(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x,
                                   const float* u, const float* v, const float* bias, float* y) {
      cuda::onthefly_w_conv2d_forward(c, rank, columns, x, u, v, bias, y, stream);
    }
    void onthefly_w_conv2d_t(const Conv2dShape& c, int64_t rank, int64_t columns, const float* x, const float* u,
                             float* t) {
      cuda::onthefly_w_conv2d_t(c, rank, columns, x, u, t, stream);
    }
    void onthefly_w_backward_data(const PredictedLinearShape& s, const float* dy, const float* u, const float* v,
                                  float* dx) {
      cuda::onthefly_w_backward_data(s, dy, u, v, dx, stream);
    }
    void col2im(const Conv2dShape& s, const float* dcols, float* dx) { cuda::col2im(s, dcols, dx, stream); }
  };

  // onthefly_w's backward: T = X·U recomputed into the scratch (forward kept nothing), db and
  // dV_j = T_jᵀ·dY_j from it as in the chain, dX by the kernel that rebuilds Wᵀ tiles. LowRank's
  // dU needs dT = dY·Vᵀ in device memory: that case forms dT with cuBLAS in the same scratch once
  // dV has read T, and takes dX = dT·Uᵀ from it too.
  void onthefly_w_backward(const PredictedLinearBackwardArgs& a) {
    const PredictedLinearShape& s = a.shape;
    const int64_t nc = s.n_per_column(), tc = s.t_cols(), lt = s.t_ld(), r = s.rank;
    cuda::CublasOps o = ops();
    float* t = a.scratch;  // (M, J·r), rows t_ld apart
    o.gemm(false, false, s.m, tc, s.k, 1.f, a.x, s.k, a.u, tc, 0.f, t, lt);
    PredictedLinearBackwardArgs with_t = a;
    with_t.saved = t;
    algorithm::chain_backward_weights(o, with_t, lt);
    if (!a.du) {
      if (a.dx) cuda::onthefly_w_backward_data(s, a.dy, a.u, a.v, a.dx, stream_);
      return;
    }
    float* dt = a.scratch;  // (M, J·r), rows t_ld apart; stream order puts this after dV's read of T
    o.gemm_batched(s.columns, nc, r * nc, r, false, true, s.m, r, nc, 1.f, a.dy, s.n, a.v, nc, 0.f, dt, lt);
    o.gemm(true, false, s.k, tc, s.m, 1.f, a.x, s.k, dt, lt, algorithm::beta_of<float>(a.du_mode), a.du, tc);
    if (a.dx) o.gemm(false, true, s.m, s.k, tc, 1.f, dt, lt, a.u, tc, 0.f, a.dx, s.k);
  }

  // Per-row loss scratch: the host (or accumulate_rows) sums rows in double, as the CPU twin does.
  void reserve_rows(int64_t m) {
    if (m <= rows_) return;
    // A captured loss kernel writes the scratch it was recorded with: it must never move.
    UV_CHECK(!captured_, "loss over " << m << " rows after a capture that reserved " << rows_);
    if (row_loss_) CUDA_CHECK(cudaFree(row_loss_));
    if (row_correct_) CUDA_CHECK(cudaFree(row_correct_));
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&row_loss_), static_cast<size_t>(m) * sizeof(float)));
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&row_correct_), static_cast<size_t>(m) * sizeof(int32_t)));
    host_loss_.resize(static_cast<size_t>(m));
    host_correct_.resize(static_cast<size_t>(m));
    rows_ = m;
  }
  LossResult reduce_rows(int64_t m, bool classification) {
    CUDA_CHECK(cudaMemcpyAsync(host_loss_.data(), row_loss_, static_cast<size_t>(m) * sizeof(float),
                               cudaMemcpyDeviceToHost, stream_));
    if (classification)
      CUDA_CHECK(cudaMemcpyAsync(host_correct_.data(), row_correct_, static_cast<size_t>(m) * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    LossResult result;
    for (int64_t i = 0; i < m; ++i) {
      result.loss_sum += host_loss_[static_cast<size_t>(i)];
      if (classification) result.correct += host_correct_[static_cast<size_t>(i)];
    }
    return result;
  }

  int device_;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  float* tf32x3_workspace_ = nullptr;     // split-K partials of the tf32x3 GEMM (tf32x3_ops)
  cuda::Tf32x3Ops tf32x3_library_ops_{};  // train.gemm = tf32x3: what ops() hands every product
  bool tf32x3_library_ = false;
  int64_t tf32x3_calls_ = 0;
  size_t cublas_workspace_bytes_ = 0;
  bool captured_ = false;  // capture() was called: recorded pointers (row scratch) must stay put
  std::unique_ptr<cuda::CudnnConv> cudnn_;  // its cuDNN handle runs on stream_
  std::unique_ptr<cuda::LtGemm> lt_;        // train.gemm = cublaslt*
  void* lt_workspace_ = nullptr;            // its own, cuBLAS's size, outside the pool
  bool small_gemm_ = false;                 // train.small_gemm
  int64_t small_products_ = 0;              // its launches, counted on the host
  std::vector<std::pair<int64_t, int64_t>> bounded_spans_;  // sgd_step_bounded's scratch
  unsigned* blocks_done_ = nullptr;         // the grouped bound's block counter (device)
  int64_t fused_optimizer_launches_ = 0;
  std::atomic<size_t> allocated_{0}, peak_{0};
  float* row_loss_ = nullptr;        // (rows_)
  int32_t* row_correct_ = nullptr;   // (rows_)
  int64_t rows_ = 0;
  std::vector<float> host_loss_;
  std::vector<int32_t> host_correct_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

}  // namespace uv

#endif  // UV_WITH_CUDA
