// A network built from a RunConfig: the paper's MLP (dense, predicted (U fixed, V learned) and LowRank
// fully connected layers) and its convnet (dense, predicted and LowRank convolutions, max-pooling,
// NHWC), with the graphs its training stages need (supervised, layer-wise pretraining).
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/graph/graph.h"
#include "engine/ops/ops.h"
#include "engine/train/config.h"

namespace uv {

struct LayerSummary {
  std::string name, type, dictionary, strategy;
  int64_t in = 0, out = 0, rank = 0, columns = 1;
  int64_t learned = 0;    // learned numbers: V (+U for LowRank, W for dense) and bias
  int64_t predicted = 0;  // weights predicted rather than learned: K·N − learned weights
  int64_t fixed = 0;      // static numbers stored: U (J·K·r)
  int64_t dense_equivalent = 0;  // K·N + N
};

// What building one layer's dictionary did beyond U itself (for the log and metrics).
struct DictionaryReport {
  int64_t data_rows = 0;  // examples whose layer inputs were gathered (emp, emp2, ae); 0 otherwise
  // ae only: the autoencoder's mean reconstruction loss before and after its training
  double ae_loss_before = NAN, ae_loss_after = NAN;
};

class Network {
 public:
  struct Layer {
    LayerConfig config;
    std::string name;                // "layer1"
    Op* op = nullptr;                     // the layer's op before its activation
    PredictedDense* predicted = nullptr;  // predicted and LowRank fully connected layers
    Conv2d* conv = nullptr;               // conv layers, dense or predicted
    ImageShape input;                     // this layer's input geometry (1×1×n when flat)
    Op* activation = nullptr;             // null for identity
    TiedDecoder* decoder = nullptr;       // predicted layers with pretrain = true
    Op* decoder_activation = nullptr;
  };

  // `input`: the geometry of one example (rows × cols × channels, NHWC).
  Network(const RunConfig& config, Backend& backend, ImageShape input);
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Uniform(±scale) draws from per-parameter Philox streams; zero biases; U left for the dictionaries.
  void init_parameters(uint64_t seed);
  // Builds the fixed U of predicted layer `index` (needs the layers below it for the data-driven
  // kinds emp, emp2 and ae, which read the layer's inputs over the first emp_samples examples); a
  // no-op for layers without a dictionary.
  DictionaryReport build_dictionary(size_t index, const data::Dataset& train, uint64_t seed,
                                    int64_t emp_samples);

  // project_input: layer 1 reads T = X·U (see ProjectedInputDense and project_inputs).
  std::unique_ptr<Graph> supervised_graph(int64_t max_batch, bool project_input = false);
  // Why layer 1 cannot read projected inputs, or "" when it can: it must be a predicted fully
  // connected layer with a fixed U.
  std::string why_no_input_projection() const;
  int64_t projected_features() const;  // J·r of layer 1
  // t (count × J·r) = x (count × K)·U of layer 1, both on the backend: one GEMM for the data set.
  void project_inputs(const float* x, int64_t count, float* t);
  std::unique_ptr<Graph> prefix_graph(size_t index, int64_t max_batch);    // layers [0, index)
  std::unique_ptr<Graph> pretrain_graph(size_t index, int64_t max_batch);  // autoencoder of `index`

  // The activation plan `graph` would get with every predicted layer materialised (memory account).
  ActivationPlan plan_if_materialised(const Graph& graph);

  ParameterStore& store() { return store_; }
  const std::vector<Layer>& layers() const { return layers_; }
  std::vector<LayerSummary> summary() const;

 private:
  Backend& backend_;
  const RunConfig& config_;
  ImageShape input_;
  ParameterStore store_;
  std::vector<std::unique_ptr<Op>> ops_;
  std::vector<Layer> layers_;
  Op* projected_input_ = nullptr;  // layer 1 as a ProjectedInputDense, made on first use
  template <typename T, typename... Args>
  T* make(Args&&... args);
  // Layer `index`'s inputs (rows × its input features) over the first `rows` training examples:
  // the images for layer 0, else their codes through the layers below.
  std::vector<float> layer_inputs(size_t index, const data::Dataset& train, int64_t rows);
};

}  // namespace uv
