// The backend seam. Ops in engine/ops are written once against this interface; each backend
// implements it with its own kernels (kernels/cpu with OpenBLAS, kernels/cuda with CUDA/cuBLAS). All
// matrices are row-major float32 unless a comment says otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "kernels/conv2d_args.h"
#include "kernels/gemm_call.h"
#include "kernels/predicted_linear_args.h"
#include "kernels/step_state.h"

namespace uv {

enum class Activation { Identity, Sigmoid, Tanh, ReLU };
Activation parse_activation(const std::string& name);
const char* activation_name(Activation activation);

// Per-minibatch SGD with momentum and L2 weight decay, over one contiguous segment of the arena:
//   m = momentum·m − lr·(g + weight_decay·p);  p += m
struct SgdArgs {
  float* params = nullptr;    // (n)
  const float* grads = nullptr;  // (n)
  float* momentum_buffer = nullptr;  // (n)
  int64_t n = 0;
  float lr = 0.f;
  float momentum = 0.f;
  float weight_decay = 0.f;
  // Weight decay applies to elements [0, decay_end) only; −1: to all n. Lets one call cover the
  // whole learned arena, whose decayed tensors (weights) come before the rest (biases).
  int64_t decay_end = -1;
  int64_t decayed_elements() const { return decay_end < 0 ? n : decay_end; }  // [0, this) decays
  // Set: the rate is read on the device, static_cast<float>(lr_from->lr), and `lr` is ignored (a
  // captured training step cannot take a rate that changes every step by value).
  const StepState* lr_from = nullptr;
};

// The GPU's GEMM library (train.gemm). The CPU has its own GEMM (UV_CPU_GEMM) and ignores it.
enum class GemmLibrary {
  Cublas,             // cublasSgemm; bias and bias gradient in kernels of their own
  CublasLt,           // cuBLASLt, with the bias and bias-gradient epilogues fused into the products
  CublasLtOneKernel,  // as CublasLt, refusing split-K schemes that reduce in a second kernel
  Tf32x3,             // our 3xTF32 tensor-core GEMM (kernels/cuda/tf32x3_gemm.h): float32 accuracy
};
GemmLibrary parse_gemm_library(const std::string& name);  // UserError naming the value
bool is_gemm_library(const std::string& name);
std::string gemm_library_names();  // "cublas, cublaslt, ...", for messages
// What the cuBLASLt and small-GEMM paths ran, counted as the host issues calls (a replayed CUDA graph repeats the
// captured calls without counting them again).
struct GemmCounts {
  int64_t products = 0;         // plain products through cuBLASLt
  int64_t fused_epilogues = 0;  // products with their bias or bias gradient fused
  int64_t declined = 0;         // calls cuBLASLt had no algorithm for: cublasSgemm (and a kernel) ran
  int64_t small_products = 0;   // train.small_gemm's fused products (gemm_bias_activation)
  int64_t tf32x3_products = 0;  // calls of the 3xTF32 GEMM (train.gemm = tf32x3, chain_fused past its limits)
};
const char* gemm_library_name(GemmLibrary library);

struct LossResult {
  double loss_sum = 0.0;  // summed over the batch (divide by M for the mean)
  int64_t correct = 0;    // classification only
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string description() const = 0;
  // Whether chain_fused's tensor-core chain runs on Hopper's wgmma here, which `auto` prices
  // faster than the library's chain (roofline_for).
  virtual bool wgmma_tensor_chain() const { return false; }

  // --- memory -------------------------------------------------------------------------------
  virtual Buffer allocate(size_t bytes) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(float* x, int64_t n, float value) = 0;
  virtual void synchronize() {}
  // Milliseconds per call of `work` run `reps` times back to back: a steady clock on the CPU, CUDA
  // events on the backend's stream on the GPU (for benchmarks).
  virtual double time_per_call_ms(const std::function<void()>& work, int reps);
  // Whether allocate() returns host memory (host data can then be used in place, uncopied).
  virtual bool shares_host_memory() const { return false; }
  // Peak bytes this backend's allocator has handed out at once.
  virtual size_t peak_allocated_bytes() const = 0;
  virtual size_t allocated_bytes() const = 0;
  // Bytes in use on the whole device (cudaMemGetInfo: total − free, other processes included);
  // −1 where the backend has no such figure (the CPU).
  virtual int64_t device_bytes_in_use() const { return -1; }
  // The libraries' scratch the backend holds now, by library, in bytes: on CUDA cuBLAS's and
  // cuBLASLt's workspaces and the 3xTF32 GEMM's (split-K partials, B's parts), made outside the
  // allocator (so outside peak_allocated_bytes; in device_bytes_in_use), and cuDNN's, from the
  // allocator (so inside it too). Empty where there is none (the CPU).
  struct Workspace {
    std::string library;
    int64_t bytes = 0;
    bool in_allocator = false;
  };
  virtual std::vector<Workspace> workspaces() const { return {}; }

  // --- dense algebra -------------------------------------------------------------------------
  // C(M×N) = alpha·op(A)·op(B) + beta·C with op(A) M×K, op(B) K×N; lda/ldb/ldc are row strides.
  virtual void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) = 0;
  // A product with its bias epilogue in one launch (kernels/gemm_call.h), where the backend can;
  // false, with nothing run, where not: the caller runs the product and the bias op itself.
  virtual bool gemm_fused(const GemmCall& call) {
    (void)call;
    return false;
  }
  // Which GEMM library the backend's products use; the CPU ignores it.
  virtual void set_gemm_library(GemmLibrary library) { (void)library; }
  virtual GemmCounts gemm_counts() const { return {}; }
  // How the chosen library runs `call`, where the backend can tell (train.gemm = tf32x3 on CUDA):
  // a line for a reader (its launches, kernels, waves and modelled time) and named figures for
  // tools (the parts of that time model, tools/fit_plan_model.py); empty elsewhere. For benches.
  struct GemmPlan {
    std::string text;
    std::vector<std::pair<std::string, double>> parts;
  };
  virtual GemmPlan gemm_plan(const GemmCall& call) const {
    (void)call;
    return {};
  }
  // y (m×n, ld ldy) = act(a (m×k, ld lda) · b (k×n, ld ldb) + bias) in one launch (bias may be
  // null), where fuses_bias_activation says the backend has a kernel for the product: on CUDA with
  // train.small_gemm on, small products (kernels/cuda/small_gemm_tile.h) and not a ReLU. Callers
  // ask first and otherwise run the product and bias_activation_forward.
  virtual void set_small_gemm(bool on) { (void)on; }
  virtual bool fuses_bias_activation(int64_t m, int64_t n, int64_t k, Activation act) const {
    (void)m, (void)n, (void)k, (void)act;
    return false;
  }
  virtual void gemm_bias_activation(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                    int64_t ldb, const float* bias, Activation act, float* y, int64_t ldy) {
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)bias, (void)act, (void)y, (void)ldy;
    UV_CHECK(false, "the " << description() << " backend has no fused bias+activation product");
  }
  virtual void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) = 0;  // y(M×N) += b
  virtual void column_sums(const float* x, int64_t m, int64_t n, float* out,
                           GradientMode mode) = 0;  // out(N) (+)= Σ_rows x

  // --- predicted layers (W = U·V never formed unless the strategy is Materialise) -------------
  virtual void predicted_linear_forward(const PredictedLinearForwardArgs& args) = 0;
  virtual void predicted_linear_backward(const PredictedLinearBackwardArgs& args) = 0;
  // Tied decoder Z(M×K) = H(M×N)·(U·V)ᵀ + c of a predicted encoder with shape s (s.m = rows of H).
  // s_saved (M×J·r) is kept for backward; scratch (M×J·r) is backward-only; dh, du may be null.
  virtual void tied_decoder_forward(const PredictedLinearShape& s, const float* h, const float* u,
                                    const float* v, const float* bias, float* s_saved,
                                    float* z) = 0;
  virtual void tied_decoder_backward(const PredictedLinearShape& s, const float* h, const float* u,
                                     const float* v, const float* s_saved, const float* dz,
                                     float* scratch, float* dh, float* dv, float* dbias, float* du,
                                     GradientMode dv_mode, GradientMode dbias_mode,
                                     GradientMode du_mode) = 0;

  // --- convolution and pooling (NHWC, kernels/conv2d_args.h) ----------------------------------
  virtual void im2col(const Conv2dShape& s, const float* x, float* cols) = 0;   // cols (rows, patch)
  virtual void col2im(const Conv2dShape& s, const float* dcols, float* dx) = 0;  // dx = Σ overlaps
  // A dense or predicted convolution. The default (engine/backend/conv2d.cpp) is
  // kernels/conv2d_algorithm.h over this backend: im2col, then its GEMMs and predicted-linear
  // kernels on the im2col rows. A backend may send cases to a library (cuDNN) instead.
  virtual void conv2d_forward(const Conv2dForwardArgs& args);
  virtual void conv2d_backward(const Conv2dBackwardArgs& args);
  // The buffers an op must plan for conv2d_forward/backward on this backend (default: im2col's).
  virtual Conv2dBuffers conv2d_buffers(const Conv2dLayout& layer) const;
  virtual void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y) = 0;
  // dx (overwritten) gets each dy at its window's first maximum.
  virtual void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx) = 0;

  // --- data -----------------------------------------------------------------------------------
  // dst (m×features) = rows index[0..m) of src (rows×features); labels likewise. Both on the
  // device, so a resident data set is batched without a host copy per step.
  virtual void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features,
                           float* dst) = 0;
  virtual void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst) = 0;
  // The training step's batch: rows and labels of examples order[state->begin, state->begin + m),
  // begin read on the device (the pointer arguments stay the same from step to step).
  virtual void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order,
                            const StepState* state, int64_t m, int64_t features, float* dst,
                            int32_t* dst_labels) = 0;
  // order (n, on the device) = 0..n-1 sorted by philox_bits64(seed, stream, i), ties by index
  // (data.shuffle = device): the same order on every backend, made without the host.
  virtual void shuffled_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream) = 0;

  // --- elementwise, losses ---------------------------------------------------------------------
  virtual void activation_forward(Activation act, const float* x, float* y, int64_t n) = 0;
  // dx = dy · act'(x) written from the saved output y.
  virtual void activation_backward(Activation act, const float* y, const float* dy, float* dx,
                                   int64_t n) = 0;
  // ReLU that keeps a bit mask for backward (⌈n/32⌉ words; bit i % 32 of word i / 32 is x_i > 0)
  // in place of its output, so the output need live only until the next op has read it.
  virtual void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n) = 0;
  virtual void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n) = 0;
  // A layer's bias and activation in one pass, for ops that fold their activation in:
  // y (m×n) = act(y + bias) in place (bias may be null); for ReLU, relu_mask (⌈m·n/32⌉ words) as
  // relu_forward_mask writes it. The same numbers as bias_add_rows then activation_forward.
  virtual void bias_activation_forward(Activation act, float* y, const float* bias, int64_t m, int64_t n,
                                       uint32_t* relu_mask) {
    UV_CHECK(act != Activation::ReLU || relu_mask, "bias_activation_forward: a ReLU needs its mask");
    if (bias) bias_add_rows(y, bias, m, n);
    if (act == Activation::ReLU)
      relu_forward_mask(y, y, relu_mask, m * n);
    else
      activation_forward(act, y, y, m * n);
  }
  // Its backward: dy (m×n) ← dy·act'(·) in place, from the saved output y (σ, tanh) or the ReLU
  // mask; then dbias (n; may be null) = the column sums of the result, per `mode`.
  virtual void activation_backward_bias(Activation act, const float* y, const uint32_t* relu_mask, float* dy,
                                        int64_t m, int64_t n, float* dbias, GradientMode mode) {
    UV_CHECK(act != Activation::ReLU || relu_mask, "activation_backward_bias: a ReLU needs its mask");
    if (act == Activation::ReLU)
      relu_backward_mask(relu_mask, dy, dy, m * n);
    else
      activation_backward(act, y, dy, dy, m * n);
    if (dbias) column_sums(dy, m, n, dbias, mode);
  }
  // Mean softmax cross-entropy over M rows of C logits; dlogits = (softmax − onehot)/M.
  virtual LossResult softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t m,
                                           int64_t c, float* dlogits) = 0;
  // The same, with the batch's summed loss (in double, rows in order, as the LossResult) and hits
  // added to state->loss_sum and state->correct on the device: nothing returns to the host.
  virtual void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m,
                                                int64_t c, float* dlogits, StepState* state) = 0;
  // loss = (1/M)·Σ ½‖y − t‖² ; dy = (y − t)/M.
  virtual LossResult mean_squared_error(const float* y, const float* target, int64_t m, int64_t n,
                                        float* dy) = 0;

  // --- optimiser, init -----------------------------------------------------------------------
  virtual void sgd_step(const SgdArgs& args) = 0;
  // Rescales each column of `count` row-major (rows × cols) matrices to norm ≤ max_norm.
  virtual void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols,
                               float max_norm) = 0;
  // The same over several tensors: the step's bounded weights, one launch on the GPU.
  struct ColumnNormTarget {
    float* v = nullptr;
    int64_t count = 1, rows = 0, cols = 0;
  };
  // advance_step's arguments, for the step's last launch to carry (state null: no advance).
  struct StepAdvance {
    StepState* state = nullptr;
    int64_t batch = 0;
    double lr_decay = 1.0;
  };
  // With `advance`, the step state advances after the bounds (on the GPU in the same launch: the
  // bound is a step's last kernel, and a launch fewer is a step's few microseconds less).
  virtual void max_column_norms(const std::vector<ColumnNormTarget>& targets, float max_norm,
                                const StepAdvance& advance) {
    for (const ColumnNormTarget& t : targets) max_column_norm(t.v, t.count, t.rows, t.cols, max_norm);
    if (advance.state) advance_step(advance.state, advance.batch, advance.lr_decay);
  }
  // A supervised step's optimizer: sgd_step over the arena, then the bounds of `targets` (tensors
  // inside the arena), then the advance; the GPU does it in one launch where the targets allow.
  virtual void sgd_step_bounded(const SgdArgs& sgd, const std::vector<ColumnNormTarget>& targets, float max_norm,
                                const StepAdvance& advance) {
    sgd_step(sgd);
    max_column_norms(targets, max_norm, advance);
  }
  // How many sgd_step_bounded calls ran as one launch (counted on the host): tests tell the fused
  // path from the two-launch fallback by it.
  virtual int64_t fused_optimizer_launches() const { return 0; }
  // x[i] = lo + (hi − lo)·philox_uniform(seed, stream, i): identical on every backend.
  virtual void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed,
                            uint64_t stream) = 0;
  // End of a training step, on the device: state->begin += batch; state->lr /= lr_decay (double).
  virtual void advance_step(StepState* state, int64_t batch, double lr_decay) = 0;

  // --- capture (CUDA graphs) -----------------------------------------------------------------
  // A recorded sequence of backend calls, run again as one launch by replay().
  class Captured {
   public:
    virtual ~Captured() = default;
    virtual void replay() = 0;
  };
  // Whether capture() works here (the CUDA backend: stream capture into a CUDA graph).
  virtual bool can_capture() const { return false; }
  // Records the backend calls `work` makes instead of running them, and returns them for replay.
  // Every pointer and by-value argument is frozen into the recording, so what changes between
  // replays must live in backend memory (StepState); `work` must not allocate, copy to or from the
  // host, or synchronise. Backends that cannot capture throw.
  virtual std::unique_ptr<Captured> capture(const std::function<void()>& work);
};

std::unique_ptr<Backend> make_cpu_backend();
// Only in builds with UV_WITH_CUDA; throws uv::Error when the device cannot be set up.
std::unique_ptr<Backend> make_cuda_backend(int device);

// Device selection: "cpu", "cuda" (UserError when no usable GPU), or "auto" (CUDA if present).
struct DeviceReport {
  bool cuda_built = false;
  int cuda_devices = 0;
  std::string cuda_status;  // why there is no device, or the device names
  std::string cudnn;        // CUDA builds: the loaded cuDNN's version and the headers' it was built with
};
DeviceReport query_devices();
// Whether kernels built for `archs` (CMAKE_CUDA_ARCHITECTURES: "90", "80;90", "90-real",
// "90-virtual", "90a", ...) run on a device of compute capability major.minor: machine code for
// sm_XY runs on X.Y' with Y' ≥ Y; PTX for compute_XY is compiled at load time for any later device;
// "90a" is for 9.0 alone. CMake's special values (all, all-major, native) and an empty list run.
bool cuda_archs_run_on(const std::string& archs, int major, int minor);
std::unique_ptr<Backend> make_backend(const std::string& device_flag);

}  // namespace uv
