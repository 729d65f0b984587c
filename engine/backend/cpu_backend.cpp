// CPU backend: OpenBLAS GEMMs and the loops in kernels/cpu.
#include <cblas.h>
#include <pmmintrin.h>  // _MM_SET_DENORMALS_ZERO_MODE
#include <xmmintrin.h>  // _MM_SET_FLUSH_ZERO_MODE

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <utility>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/core/key_order.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/predicted_linear.h"

namespace uv {

double Backend::time_per_call_ms(const std::function<void()>& work, int reps) {
  synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) work();
  synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / reps;
}

std::unique_ptr<Backend::Captured> Backend::capture(const std::function<void()>&) {
  UV_CHECK(false, "the " << description() << " backend cannot capture work for replay (see can_capture())");
}

Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear" || name == "none") return Activation::Identity;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "tanh") return Activation::Tanh;
  if (name == "relu") return Activation::ReLU;
  UV_FAIL("unknown activation '" << name << "' (expected sigmoid, tanh, relu or identity)");
}

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::Identity: return "identity";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
    case Activation::ReLU: return "relu";
  }
  return "?";
}

namespace {
// train.gemm's and --gemm's names, in the order messages list them.
constexpr std::pair<GemmLibrary, const char*> kGemmLibraryNames[] = {
    {GemmLibrary::Cublas, "cublas"},
    {GemmLibrary::CublasLt, "cublaslt"},
    {GemmLibrary::CublasLtOneKernel, "cublaslt_one_kernel"},
    {GemmLibrary::Tf32x3, "tf32x3"}};
}  // namespace

bool is_gemm_library(const std::string& name) {
  for (const auto& [library, library_name] : kGemmLibraryNames)
    if (name == library_name) return true;
  return false;
}

std::string gemm_library_names() {
  std::string out;
  for (const auto& [library, library_name] : kGemmLibraryNames) {
    if (!out.empty()) out += ", ";
    out += library_name;
  }
  return out;
}

GemmLibrary parse_gemm_library(const std::string& name) {
  for (const auto& [library, library_name] : kGemmLibraryNames)
    if (name == library_name) return library;
  UV_FAIL("unknown GEMM library '" << name << "' (expected one of " << gemm_library_names() << ")");
}

const char* gemm_library_name(GemmLibrary library) {
  for (const auto& [known, library_name] : kGemmLibraryNames)
    if (known == library) return library_name;
  return "?";
}

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
    // Flush subnormal floats to zero (FTZ) and read them as zero (DAZ) on this thread. A saturated
    // sigmoid layer makes outputs and gradients around 1e-39, and x86 cores take a microcode
    // assist on every subnormal operand: a diverging 4096-wide MLP's step went from 0.53 to 0.97 s
    // within an epoch. GPUs flush the same way in their fast paths; training loses nothing by it.
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#ifdef UV_WITH_DNNL
    omp_set_num_threads(cpu::gemm_threads());  // oneDNN's OpenMP pool follows OPENBLAS_NUM_THREADS
#endif
  }
  Device device() const override { return Device::CPU; }
  std::string description() const override {
    std::ostringstream out;
#ifdef UV_WITH_DNNL
    const dnnl_version_t* v = dnnl_version();
    out << "cpu (oneDNN " << v->major << "." << v->minor << "." << v->patch << " sgemm, OpenBLAS "
        << openblas_get_corename() << " for float64 and LAPACK, " << cpu::gemm_threads() << " threads)";
#else
    out << "cpu (OpenBLAS, " << openblas_get_corename() << " kernels, " << cpu::gemm_threads()
        << " threads)";
#endif
    return out.str();
  }

  Buffer allocate(size_t bytes) override {
    constexpr size_t kAlignment = 64;  // a cache line and an AVX-512 vector
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    UV_CHECK(data != nullptr, "out of host memory allocating " << bytes << " bytes");
    const size_t now = allocated_ += rounded;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return Buffer(data, bytes, Device::CPU, [this, rounded](void* p) {
      allocated_ -= rounded;
      std::free(p);
    });
  }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill(float* x, int64_t n, float value) override { std::fill(x, x + n, value); }
  // UV_CPU_STAGES_DATA=1: hold the data set in allocations of its own, as a device does, so that
  // CPU tests run the trainer's device data path (uploads, the projection through the batch buffer).
  bool shares_host_memory() const override { return !stages_data_; }
  size_t peak_allocated_bytes() const override { return peak_.load(); }
  size_t allocated_bytes() const override { return allocated_.load(); }

  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) override {
    cpu::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n) override {
    cpu::bias_add_rows(y, bias, m, n);
  }
  void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode) override {
    cpu::column_sums(x, m, n, out, mode);
  }

  void predicted_linear_forward(const PredictedLinearForwardArgs& args) override {
    cpu::predicted_linear_forward(args);
  }
  void predicted_linear_backward(const PredictedLinearBackwardArgs& args) override {
    cpu::predicted_linear_backward(args);
  }
  void tied_decoder_forward(const PredictedLinearShape& s, const float* h, const float* u,
                            const float* v, const float* bias, float* s_saved, float* z) override {
    cpu::tied_decoder_forward(s, h, u, v, bias, s_saved, z);
  }
  void tied_decoder_backward(const PredictedLinearShape& s, const float* h, const float* u,
                             const float* v, const float* s_saved, const float* dz, float* scratch,
                             float* dh, float* dv, float* dbias, float* du, GradientMode dv_mode,
                             GradientMode dbias_mode, GradientMode du_mode) override {
    cpu::tied_decoder_backward(s, h, u, v, s_saved, dz, scratch, dh, dv, dbias, du, dv_mode,
                               dbias_mode, du_mode);
  }

  void im2col(const Conv2dShape& s, const float* x, float* cols) override { cpu::im2col(s, x, cols); }
  void col2im(const Conv2dShape& s, const float* dcols, float* dx) override { cpu::col2im(s, dcols, dx); }
  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y) override {
    cpu::maxpool2d_forward(s, x, y);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx) override {
    cpu::maxpool2d_backward(s, x, dy, dx);
  }

  void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features,
                   float* dst) override {
    cpu::gather_rows(src, index, m, features, dst);
  }
  void shuffled_order(int32_t* order, int64_t n, uint64_t seed, uint64_t stream) override {
    philox_key_order(order, n, seed, stream);
  }
  void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst) override {
    cpu::gather_labels(src, index, m, dst);
  }
  void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                    int64_t m, int64_t features, float* dst, int32_t* dst_labels) override {
    cpu::gather_batch(src, src_labels, order, state, m, features, dst, dst_labels);
  }

  void activation_forward(Activation act, const float* x, float* y, int64_t n) override {
    cpu::activation_forward(act, x, y, n);
  }
  void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n) override {
    cpu::relu_forward_mask(x, y, mask, n);
  }
  void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n) override {
    cpu::relu_backward_mask(mask, dy, dx, n);
  }
  void activation_backward(Activation act, const float* y, const float* dy, float* dx,
                           int64_t n) override {
    cpu::activation_backward(act, y, dy, dx, n);
  }
  LossResult softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                   float* dlogits) override {
    LossResult result;
    result.loss_sum = cpu::softmax_cross_entropy(logits, labels, m, c, dlogits, &result.correct);
    return result;
  }
  void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                        float* dlogits, StepState* state) override {
    cpu::softmax_cross_entropy_accumulate(logits, labels, m, c, dlogits, state);
  }
  LossResult mean_squared_error(const float* y, const float* target, int64_t m, int64_t n,
                                float* dy) override {
    LossResult result;
    result.loss_sum = cpu::mean_squared_error(y, target, m, n, dy);
    return result;
  }

  void sgd_step(const SgdArgs& a) override {
    // Backend memory is host memory here: the state's rate is read in place.
    const float lr = a.lr_from ? static_cast<float>(a.lr_from->lr) : a.lr;
    cpu::sgd_step(a.params, a.grads, a.momentum_buffer, a.n, lr, a.momentum, a.weight_decay,
                  a.decayed_elements());
  }
  void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm) override {
    cpu::max_column_norm(v, count, rows, cols, max_norm);
  }
  void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream) override {
    cpu::uniform_init(x, n, lo, hi, seed, stream);
  }
  void advance_step(StepState* state, int64_t batch, double lr_decay) override {
    cpu::advance_step(state, batch, lr_decay);
  }

 private:
  std::atomic<size_t> allocated_{0};
  std::atomic<size_t> peak_{0};
  const bool stages_data_ = [] {
    const char* v = std::getenv("UV_CPU_STAGES_DATA");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace uv
