// The autoencoder behind the `ae` dictionary (paper.md section 2: "U = the features of a tied-weight
// sigmoid autoencoder trained on the layer's input"). Unlike the rest of engine/dict this trains on a
// Backend, in float32, with the engine's own pieces: a Graph of Dense encoder → sigmoid →
// TiedDenseDecoder → sigmoid, the mean-squared reconstruction loss, and Backend::sgd_step.
//
//   H = sigmoid(X·W + b)    X (M × n_v), W (n_v × atoms), b (atoms)
//   Z = sigmoid(H·Wᵀ + c)   c (n_v)
//   loss = (1/M)·Σ ½‖Z − X‖²
//
// The dictionary's atoms are W's columns (one per hidden unit); dict::autoencoder_dictionary picks
// a layer's n_α of them at α.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/backend/backend.h"

namespace uv::dict {

struct AutoencoderConfig {
  int64_t atoms = 1000;       // hidden units (code: 1000 for layer 2 of the MNIST MLP)
  int64_t epochs = 50;        // full passes over the inputs (code: 50); 0 returns the initial weights
  int64_t batch_size = 100;
  double lr = 0.1;            // spec section 5's pretraining settings: lr 0.1, momentum 0.7
  double momentum = 0.7;
  float init_scale = 0.001f;  // W ~ Uniform(±init_scale), biases 0 (code: pylearn2 irange 0.001)
  uint64_t seed = 0;
  uint64_t layer_index = 0;   // separates the streams (initialisation, shuffles) of the layers
};

struct AutoencoderResult {
  std::vector<float> encoder;       // (n_v, atoms): W, column a is atom a
  std::vector<float> encoder_bias;  // (atoms): b
  std::vector<float> decoder_bias;  // (n_v): c
  double loss_before = NAN;  // mean reconstruction loss over all inputs at initialisation
  double loss_after = NAN;   // the same after training
};

// Trains the autoencoder on `inputs` (rows × n_v, host memory, row-major) with per-epoch shuffles;
// deterministic for a given (seed, layer_index) on a given backend. Throws UserError when the loss
// becomes non-finite.
AutoencoderResult train_autoencoder(Backend& backend, const float* inputs, int64_t rows, int64_t n_v,
                                    const AutoencoderConfig& config);

}  // namespace uv::dict
