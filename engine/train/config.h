// Run configuration: JSON files in models/, every field defaulted and validated with a message that
// names the file and the field. `--set key=value` overrides use the same dotted paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace uv {

struct LayerConfig {
  std::string type;          // dense | predicted_dense | lowrank | conv | predicted_conv | lowrank_conv | maxpool
  int64_t units = 0;         // outputs (fully connected) or filters C_out (conv); 0 for maxpool
  std::string activation;    // sigmoid | tanh | relu | identity (the last layer feeds the loss)
  int64_t kernel = 0;        // conv filter / pooling window: kernel × kernel
  int64_t stride = 1;
  int64_t padding = 0;       // pixels on every side, or −1 for "same" (conv only)
  std::string dictionary;    // se | emp | emp2 | randkernel | randfixu | randcon | dct | ae
  double fraction = 0.1;     // n_α / n_v, in (0, 1]
  int64_t rank = 0;          // explicit n_α per column; 0 → int(inputs · fraction)
  int64_t columns = 1;       // J
  double length_scale = 2.0; // SE kernel ℓ in pixel units
  double ridge = 0.1;        // λ of the kernel ridge regression
  // float32 | tf32: U rounded to TF32 (10 mantissa bits) once built, so that the 3xTF32 GEMM's
  // products with U (X·U, dT·Uᵀ) drop a third of their tensor-core work (kernels/cuda/tf32x3_gemm_tile.h:
  // tf32x3_presplit_region_floats). U is fixed, so this is another fixed dictionary, within 2⁻¹¹ of
  // the float32 one entry by entry, not a lower precision of the training: every backend and
  // strategy multiplies by the same rounded U.
  std::string dictionary_precision = "float32";
  // ae dictionary: a tied sigmoid autoencoder with ae_atoms hidden units, trained by SGD on the
  // layer's inputs over the first data.emp_samples examples (train.batch_size rows a step); α picks
  // n_α of its atoms per column (engine/dict/autoencoder.h)
  int64_t ae_atoms = 1000;
  int64_t ae_epochs = 50;
  double ae_lr = 0.1, ae_momentum = 0.7;
  std::string strategy;      // auto | materialise | chain | chain_fused | onthefly_w
                             // (auto: engine/ops/strategy_cost.h)
  bool pretrain = false;     // autoencoder pretraining of this layer (predicted layers)
  double init_scale = 0.1;   // Uniform(±init_scale) for V (or W)

  bool is_conv() const { return type == "conv" || type == "predicted_conv" || type == "lowrank_conv"; }
  bool is_predicted() const { return type == "predicted_dense" || type == "predicted_conv"; }
  bool is_lowrank() const { return type == "lowrank" || type == "lowrank_conv"; }
};

struct RunConfig {
  std::string name;
  std::string source;  // file the config came from, for messages
  uint64_t seed = 1;
  // data
  std::string dataset;    // mnist | fashion_mnist | cifar10 | stl10
  std::string data_dir;   // empty → the dataset's default location
  int64_t train_limit = 0, test_limit = 0;  // 0 = all
  int64_t emp_samples = 10000;  // rows used to estimate an empirical covariance
  // Each epoch's order: host (Fisher-Yates on the host, uploaded once an epoch; the default, and
  // what every documented run used) | device (indices sorted by Philox keys on the backend: CUB's
  // radix sort on CUDA, the same order from std::sort on the CPU; nothing crosses from the host).
  std::string shuffle = "host";
  // model
  std::vector<LayerConfig> layers;
  // supervised training
  int64_t epochs = 20, batch_size = 100;
  double lr = 0.1, momentum = 0.9, weight_decay = 0.0, lr_decay = 1.0, max_col_norm = 0.0;
  // T = X·U of a predicted first layer computed once for the whole data set (U is fixed, so is X):
  // auto (when J·r ≤ the input size, so it also saves memory) | on | off.
  std::string project_input = "auto";
  // The supervised step captured once as a CUDA graph and replayed for every full batch: auto (on
  // the CUDA backend; the CPU runs it directly) | off.
  std::string cuda_graph = "auto";
  // The GPU's GEMM library: cublaslt (bias and bias-gradient epilogues fused into the products; the
  // fastest of the three on an H200, docs/gpu-results.md) | cublas | cublaslt_one_kernel (also no
  // split-K reduction kernels) | tf32x3 (our 3xTF32 tensor-core GEMM, float32 accuracy; no fused
  // epilogues). The CPU ignores it.
  std::string gemm = "cublaslt";
  // on: small products with a folded σ, tanh or identity run as one kernel with the bias and
  // activation in its epilogue (kernels/cuda/small_gemm.cu) | off. The CPU ignores it.
  std::string small_gemm = "off";
  // on: a supervised step's update, column-norm bounds and step-state advance run as one launch on
  // the GPU (Backend::sgd_step_bounded) | off: three. The CPU computes the same either way.
  std::string fused_optimizer = "off";
  // autoencoder pretraining of layers with pretrain = true
  int64_t pretrain_epochs = 0;
  double pretrain_lr = 0.1, pretrain_momentum = 0.7;
  // checkpoints and logging
  int64_t checkpoint_every_steps = 0;  // 0 → once per epoch
  int64_t log_every_steps = 100;
  nlohmann::json resolved;  // the full config after defaults and overrides (saved with the run)
};

// The defaults every config is checked against (also printed by `uvtrain config --defaults`).
nlohmann::json default_config();

// Parses `text` (from `source`), applies `key=value` overrides and validates.
RunConfig parse_config(const std::string& text, const std::string& source,
                       const std::vector<std::string>& overrides);
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace uv
