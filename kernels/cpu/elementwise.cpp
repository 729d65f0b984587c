#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/philox.h"
#include "kernels/relu_mask.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace uv::cpu {

template <typename Scalar>
static Scalar sigmoid(Scalar x) {
  // Split by sign so exp never overflows.
  if (x >= 0) return Scalar(1) / (Scalar(1) + std::exp(-x));
  const Scalar e = std::exp(x);
  return e / (Scalar(1) + e);
}

// e^x for float without a call or a branch, so the loops below vectorise: x = n·ln2 + z with n the
// nearest integer to x/ln2 (rounded by adding and subtracting 1.5·2^23), e^z by Cephes expf's
// degree-7 polynomial on |z| ≤ ln2/2, and 2^n built in the exponent bits. Relative error about
// 2e-7 (measured in tests/test_elementwise.cpp). x is clamped to [−87, 88] so 2^n stays a normal
// float; NaN passes through the clamps and the polynomial and comes out NaN.
static inline float exp_vectorisable(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float round = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + round) - round;
  const float z = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two for exactness
  float p = 1.9875691500e-4f;
  p = p * z + 1.3981999507e-3f;
  p = p * z + 8.3334519073e-3f;
  p = p * z + 4.1665795894e-2f;
  p = p * z + 1.6666665459e-1f;
  p = p * z + 5.0000001201e-1f;
  const float ez = p * z * z + z + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return ez * scale;
}

// The MLP's hot elementwise loops (sigmoid was 40% of a predicted MNIST step with libm's expf).
// Cloned for AVX-512 and AVX2 with a plain x86-64 fallback picked at load time, so one binary runs
// everywhere; contraction into FMA is off (CMakeLists.txt) so every clone gives the same bits.
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sigmoid_forward_f32(
    const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + exp_vectorisable(-x[i]));
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void sigmoid_backward_f32(
    const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void relu_forward_f32(const float* x,
                                                                                          float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void relu_backward_f32(
    const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

// f(begin, end) over [0, n): split across the OpenMP threads (the pool oneDNN's GEMMs already keep
// warm) when n is large enough to pay for waking them, else on this thread. Chunks are whole
// multiples of 64 elements so every thread starts on a cache line. Results do not depend on the
// split: every element is computed alone.
template <typename F>
static void parallel_chunks(int64_t n, F&& f) {
#ifdef _OPENMP
  constexpr int64_t kParallelElements = int64_t{1} << 17;  // 512 KiB of floats
  if (n >= kParallelElements && omp_get_max_threads() > 1) {
#pragma omp parallel
    {
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t chunk = ((n + threads - 1) / threads + 63) / 64 * 64;
      const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
      if (begin < end) f(begin, end);
    }
    return;
  }
#endif
  f(int64_t{0}, n);
}

float sigmoid_f32(float x) {
  float y;
  sigmoid_forward_f32(&x, &y, 1);
  return y;
}

// ReLU keeping one bit per element for backward (bit i % 32 of word i / 32: x > 0) instead of the
// output. parallel_chunks' chunks are multiples of 64 elements, so no two threads share a word.
__attribute__((target_clones("avx512f", "avx2", "default"))) static void relu_mask_words_f32(
    const float* x, float* y, uint32_t* mask, int64_t n) {
  for (int64_t w = 0; w * 32 < n; ++w) {
    uint32_t bits = 0;
    const int64_t count = std::min<int64_t>(32, n - w * 32);
    for (int64_t b = 0; b < count; ++b) {
      const float v = x[w * 32 + b];
      const bool on = v > 0.f;
      y[w * 32 + b] = on ? v : 0.f;
      bits |= static_cast<uint32_t>(on) << b;
    }
    mask[w] = bits;
  }
}

void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) { relu_mask_words_f32(x + b, y + b, mask + b / 32, e - b); });
}

void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n) {
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = relu_mask_bit(mask, i) ? dy[i] : 0.f;
  });
}

template <typename Scalar>
void activation_forward(Activation act, const Scalar* x, Scalar* y, int64_t n) {
  switch (act) {
    case Activation::Identity:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Activation::Sigmoid:
      if constexpr (std::is_same_v<Scalar, float>)
        parallel_chunks(n, [&](int64_t b, int64_t e) { sigmoid_forward_f32(x + b, y + b, e - b); });
      else  // float64 (finite-difference checks) keeps libm's exp
        for (int64_t i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      return;
    case Activation::ReLU:
      if constexpr (std::is_same_v<Scalar, float>)
        parallel_chunks(n, [&](int64_t b, int64_t e) { relu_forward_f32(x + b, y + b, e - b); });
      else
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] > Scalar(0) ? x[i] : Scalar(0);
      return;
  }
}

template <typename Scalar>
void activation_backward(Activation act, const Scalar* y, const Scalar* dy, Scalar* dx, int64_t n) {
  switch (act) {
    case Activation::Identity:
      if (dy != dx) std::copy(dy, dy + n, dx);
      return;
    case Activation::Sigmoid:
      if constexpr (std::is_same_v<Scalar, float>)
        parallel_chunks(n, [&](int64_t b, int64_t e) { sigmoid_backward_f32(y + b, dy + b, dx + b, e - b); });
      else
        for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (Scalar(1) - y[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (Scalar(1) - y[i] * y[i]);
      return;
    case Activation::ReLU:
      if constexpr (std::is_same_v<Scalar, float>)
        parallel_chunks(n, [&](int64_t b, int64_t e) { relu_backward_f32(y + b, dy + b, dx + b, e - b); });
      else
        for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > Scalar(0) ? dy[i] : Scalar(0);
      return;
  }
}

template <typename Scalar>
double softmax_cross_entropy(const Scalar* logits, const int32_t* labels, int64_t m, int64_t c,
                             Scalar* dlogits, int64_t* correct) {
  double loss = 0.0;
  int64_t hits = 0;
  const Scalar inv_m = Scalar(1) / static_cast<Scalar>(m);
  for (int64_t i = 0; i < m; ++i) {
    const Scalar* row = logits + i * c;
    Scalar* drow = dlogits + i * c;
    int64_t argmax = 0;
    for (int64_t j = 1; j < c; ++j)
      if (row[j] > row[argmax]) argmax = j;
    const Scalar top = row[argmax];  // subtract the max so exp cannot overflow
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(row[j] - top));
    const int32_t label = labels[i];
    loss += std::log(sum) - static_cast<double>(row[label] - top);
    hits += (argmax == label);
    for (int64_t j = 0; j < c; ++j) {
      const double p = std::exp(static_cast<double>(row[j] - top)) / sum;
      drow[j] = static_cast<Scalar>(p - (j == label ? 1.0 : 0.0)) * inv_m;
    }
  }
  if (correct) *correct = hits;
  return loss;
}

template <typename Scalar>
double mean_squared_error(const Scalar* y, const Scalar* target, int64_t m, int64_t n, Scalar* dy) {
  double loss = 0.0;
  const Scalar inv_m = Scalar(1) / static_cast<Scalar>(m);
  for (int64_t i = 0; i < m * n; ++i) {
    const Scalar diff = y[i] - target[i];
    loss += 0.5 * static_cast<double>(diff) * static_cast<double>(diff);
    dy[i] = diff * inv_m;
  }
  return loss;
}

void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features, float* dst) {
  for (int64_t i = 0; i < m; ++i)
    std::copy(src + index[i] * features, src + (index[i] + 1) * features, dst + i * features);
}

void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst) {
  for (int64_t i = 0; i < m; ++i) dst[i] = src[index[i]];
}

void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                  int64_t m, int64_t features, float* dst, int32_t* dst_labels) {
  gather_rows(src, order + state->begin, m, features, dst);
  gather_labels(src_labels, order + state->begin, m, dst_labels);
}

void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                      float* dlogits, StepState* state) {
  int64_t hits = 0;
  // The batch's sum first, then one addition: the order the trainer summed in on the host.
  state->loss_sum += softmax_cross_entropy(logits, labels, m, c, dlogits, &hits);
  state->correct += hits;
}

void advance_step(StepState* state, int64_t batch, double lr_decay) {
  state->begin += batch;
  state->lr /= lr_decay;
}

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n, float lr,
              float momentum, float weight_decay, int64_t decay_end) {
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float wd = i < decay_end ? weight_decay : 0.f;
      const float m = momentum * momentum_buffer[i] - lr * (grads[i] + wd * params[i]);
      momentum_buffer[i] = m;
      params[i] += m;
    }
  });
}

void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm) {
  // Columns in blocks of kBlock with their squared norms on the stack: no allocation per step.
  constexpr int64_t kBlock = 256;
  double norm2[kBlock];
  for (int64_t b = 0; b < count; ++b) {
    float* mat = v + b * rows * cols;
    for (int64_t j0 = 0; j0 < cols; j0 += kBlock) {
      const int64_t width = std::min(kBlock, cols - j0);
      std::fill(norm2, norm2 + width, 0.0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < width; ++j) norm2[j] += double(mat[i * cols + j0 + j]) * mat[i * cols + j0 + j];
      for (int64_t j = 0; j < width; ++j) {
        const double norm = std::sqrt(norm2[j]);
        if (norm <= max_norm) continue;
        const float scale = static_cast<float>(max_norm / norm);
        for (int64_t i = 0; i < rows; ++i) mat[i * cols + j0 + j] *= scale;
      }
    }
  }
}

void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = lo + (hi - lo) * philox_uniform(seed, stream, static_cast<uint64_t>(i));
}

#define UV_INSTANTIATE(Scalar)                                                                  \
  template void activation_forward<Scalar>(Activation, const Scalar*, Scalar*, int64_t);         \
  template void activation_backward<Scalar>(Activation, const Scalar*, const Scalar*, Scalar*,   \
                                            int64_t);                                           \
  template double softmax_cross_entropy<Scalar>(const Scalar*, const int32_t*, int64_t, int64_t, \
                                                Scalar*, int64_t*);                             \
  template double mean_squared_error<Scalar>(const Scalar*, const Scalar*, int64_t, int64_t,     \
                                             Scalar*);
UV_INSTANTIATE(float)
UV_INSTANTIATE(double)
#undef UV_INSTANTIATE

}  // namespace uv::cpu
