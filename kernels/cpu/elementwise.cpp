#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/philox.h"

namespace uv::cpu {

template <typename Scalar>
static Scalar sigmoid(Scalar x) {
  // Split by sign so exp never overflows.
  if (x >= 0) return Scalar(1) / (Scalar(1) + std::exp(-x));
  const Scalar e = std::exp(x);
  return e / (Scalar(1) + e);
}

template <typename Scalar>
void activation_forward(Activation act, const Scalar* x, Scalar* y, int64_t n) {
  switch (act) {
    case Activation::Identity:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Activation::Sigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      return;
    case Activation::ReLU:
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
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (Scalar(1) - y[i]);
      return;
    case Activation::Tanh:
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (Scalar(1) - y[i] * y[i]);
      return;
    case Activation::ReLU:
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

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n, float lr,
              float momentum, float weight_decay) {
  for (int64_t i = 0; i < n; ++i) {
    const float m = momentum * momentum_buffer[i] - lr * (grads[i] + weight_decay * params[i]);
    momentum_buffer[i] = m;
    params[i] += m;
  }
}

void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm) {
  std::vector<double> norm2(static_cast<size_t>(cols));
  for (int64_t b = 0; b < count; ++b) {
    float* mat = v + b * rows * cols;
    std::fill(norm2.begin(), norm2.end(), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) norm2[j] += double(mat[i * cols + j]) * mat[i * cols + j];
    for (int64_t j = 0; j < cols; ++j) {
      const double norm = std::sqrt(norm2[j]);
      if (norm <= max_norm) continue;
      const float scale = static_cast<float>(max_norm / norm);
      for (int64_t i = 0; i < rows; ++i) mat[i * cols + j] *= scale;
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
