// CPU elementwise kernels, losses and the optimiser step. Templated on the scalar so
// finite-difference checks run the same code in float64.
#pragma once

#include <cstdint>

#include "kernels/step_state.h"

namespace uv {
enum class Activation;
}

namespace uv::cpu {

template <typename Scalar>
void activation_forward(Activation act, const Scalar* x, Scalar* y, int64_t n);
// dx = dy·act'(x), computed from the saved output y (σ' = y(1−y), tanh' = 1−y², relu' = [y>0]).
template <typename Scalar>
void activation_backward(Activation act, const Scalar* y, const Scalar* dy, Scalar* dx, int64_t n);

// ReLU whose backward reads a bit mask (⌈n/32⌉ words: bit i % 32 of word i / 32 is x_i > 0)
// instead of the output: 1/32 of the memory to keep for backward. Same results as the Activation
// path bit for bit.
void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n);
void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n);

// σ(x) through the vectorised float path activation_forward uses (for tests).
float sigmoid_f32(float x);

// Returns the summed loss; writes dlogits = (softmax − onehot)/M and counts argmax hits.
template <typename Scalar>
double softmax_cross_entropy(const Scalar* logits, const int32_t* labels, int64_t m, int64_t c,
                             Scalar* dlogits, int64_t* correct);
// Returns Σ ½‖y − t‖² over the batch; dy = (y − t)/M.
template <typename Scalar>
double mean_squared_error(const Scalar* y, const Scalar* target, int64_t m, int64_t n, Scalar* dy);

// dst (m×features) = rows index[0..m) of src; labels likewise.
void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features, float* dst);
void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst);
// Both, for examples order[state->begin, state->begin + m).
void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                  int64_t m, int64_t features, float* dst, int32_t* dst_labels);
// softmax_cross_entropy with its loss sum and hits added to state->loss_sum and state->correct.
void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                      float* dlogits, StepState* state);
// state->begin += batch; state->lr /= lr_decay.
void advance_step(StepState* state, int64_t batch, double lr_decay);

// Weight decay on elements [0, decay_end) (decay_end = n: all).
void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n, float lr,
              float momentum, float weight_decay, int64_t decay_end);
void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm);
void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream);

}  // namespace uv::cpu
