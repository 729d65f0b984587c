#include "models/network.h"

#include <algorithm>

#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "engine/core/tf32.h"
#include "engine/dict/autoencoder.h"
#include "engine/dict/dictionary.h"
#include "engine/ops/strategy_cost.h"

namespace uv {

template <typename T, typename... Args>
T* Network::make(Args&&... args) {
  auto op = std::make_unique<T>(std::forward<Args>(args)...);
  T* raw = op.get();
  ops_.push_back(std::move(op));
  return raw;
}

Network::Network(const RunConfig& config, Backend& backend, ImageShape input)
    : backend_(backend), config_(config), input_(input) {
  ImageShape shape = input;  // what flows into the next layer
  for (size_t i = 0; i < config.layers.size(); ++i) {
    const LayerConfig& lc = config.layers[i];
    Layer layer;
    layer.config = lc;
    layer.name = "layer" + std::to_string(i + 1);
    layer.input = shape;
    const std::string field = "config " + config.source + ": 'model.layers[" + std::to_string(i) + "]";
    const int64_t in = shape.features();
    UV_REQUIRE(!lc.pretrain || lc.type == "predicted_dense" || lc.type == "lowrank",
               field << ".pretrain' is only for predicted_dense and lowrank layers, not " << lc.type);
    if (lc.type == "maxpool") {
      UV_REQUIRE(shape.h * shape.w > 1, field << "' (maxpool) needs a feature map, but its input is flat");
      auto* pool = make<MaxPool2d>(layer.name + ".maxpool", shape, lc.kernel, lc.stride);
      layer.op = pool;
      shape = pool->output();
    } else if (lc.is_conv()) {
      UV_REQUIRE(shape.h * shape.w > 1 || i == 0, field << "' (" << lc.type << ") needs a feature map, but its input is flat");
      Conv2dConfig cc;
      cc.input = shape;
      cc.filters = lc.units;
      cc.kernel = lc.kernel;
      cc.stride = lc.stride;
      cc.pad = lc.padding;
      cc.init_scale = cc.u_init_scale = static_cast<float>(lc.init_scale);
      cc.max_col_norm = static_cast<float>(config.max_col_norm);
      const bool predicted = lc.type != "conv";
      if (predicted) {
        const int64_t patch = lc.kernel * lc.kernel * shape.c;
        cc.columns = lc.columns;
        cc.rank = lc.rank > 0 ? lc.rank : std::max<int64_t>(1, static_cast<int64_t>(patch * lc.fraction));
        UV_REQUIRE(cc.rank <= patch, field << ".rank' = " << cc.rank << " is larger than the filter's " << patch
                                           << " weights (kernel*kernel*channels)");
        UV_REQUIRE(lc.is_lowrank() || (lc.dictionary != "emp" && lc.dictionary != "emp2" && lc.dictionary != "ae"),
                   field << ".dictionary' = \"" << lc.dictionary
                         << "\": conv layers take data-free dictionaries (se, randkernel, randfixu, randcon, dct)");
        cc.learn_u = lc.is_lowrank();
        if (lc.strategy != "auto") cc.strategy = parse_predicted_strategy(lc.strategy);
      }
      layer.conv = make<Conv2d>(layer.name, store_, backend, cc, predicted);
      if (predicted && lc.strategy == "auto")  // priced on the im2col rows at the training batch size
        layer.conv->set_strategy(choose_predicted_strategy(layer.conv->layout(config.batch_size).linear(),
                                                           backend.device(), backend.wgmma_tensor_chain()));
      layer.op = layer.conv;
      shape = cc.output();
    } else if (lc.type == "dense") {
      layer.op = make<Dense>(layer.name, store_, in, lc.units, static_cast<float>(lc.init_scale),
                             static_cast<float>(config.max_col_norm));
      shape = {1, 1, lc.units};
    } else {
      PredictedDenseConfig pc;
      pc.in = in;
      pc.out = lc.units;
      pc.columns = lc.columns;
      // The spec: n_α per column = int(n_v · fraction) unless a rank is given.
      pc.rank = lc.rank > 0 ? lc.rank : std::max<int64_t>(1, static_cast<int64_t>(in * lc.fraction));
      UV_REQUIRE(pc.rank <= in, field << ".rank' = " << pc.rank << " is larger than the layer's "
                                      << in << " inputs");
      UV_REQUIRE(lc.is_lowrank() || lc.dictionary != "ae" || pc.rank <= lc.ae_atoms,
                 field << ".ae_atoms' = " << lc.ae_atoms << " is fewer than the " << pc.rank
                       << " atoms (n_alpha) each column draws from the autoencoder");
      if (lc.strategy != "auto") pc.strategy = parse_predicted_strategy(lc.strategy);
      pc.learn_u = lc.is_lowrank();
      pc.v_init_scale = pc.u_init_scale = static_cast<float>(lc.init_scale);
      pc.max_col_norm = static_cast<float>(config.max_col_norm);
      layer.predicted = make<PredictedDense>(layer.name, store_, pc);
      if (lc.strategy == "auto")  // priced at the training batch size, before any graph exists
        layer.predicted->set_strategy(choose_predicted_strategy(layer.predicted->shape(config.batch_size), backend.device(),
                                                               backend.wgmma_tensor_chain()));
      layer.op = layer.predicted;
      if (lc.pretrain) {
        layer.decoder = make<TiedDecoder>(layer.name + ".decoder", store_, *layer.predicted);
        layer.decoder_activation = make<ActivationOp>(layer.name + ".decoder.sigmoid", in, Activation::Sigmoid);
      }
      shape = {1, 1, lc.units};
    }
    const Activation act = parse_activation(lc.activation);
    // Fully connected layers fold their activation in (one pass with the bias, forward and
    // backward); the others keep an ActivationOp after them.
    if (act != Activation::Identity && !layer.op->fold_activation(act))
      layer.activation = make<ActivationOp>(layer.name + "." + lc.activation, shape.features(), act);
    layers_.push_back(layer);
  }
  store_.allocate(backend_);
}

void Network::init_parameters(uint64_t seed) {
  std::vector<Parameter>& params = store_.all();
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter& p = params[i];
    if (p.spec.init == ParamInit::Uniform)
      backend_.uniform_init(p.value, p.numel(), -p.spec.init_scale, p.spec.init_scale, seed,
                            rng_stream(RngStream::kInit, i));
    else if (p.spec.init == ParamInit::Zero)
      backend_.fill(p.value, p.numel(), 0.f);
  }
}

std::vector<float> Network::layer_inputs(size_t index, const data::Dataset& train, int64_t rows) {
  const int64_t n_v = layers_.at(index).input.features();
  std::vector<float> inputs(static_cast<size_t>(rows * n_v));  // (rows, n_v)
  if (index == 0) {
    std::copy(train.images.begin(), train.images.begin() + rows * n_v, inputs.begin());
    return inputs;
  }
  const int64_t batch = std::min<int64_t>(1000, rows);
  std::unique_ptr<Graph> prefix = prefix_graph(index, batch);
  const int64_t features = input_.features();
  Buffer x = backend_.allocate(static_cast<size_t>(batch * features) * sizeof(float));
  for (int64_t begin = 0; begin < rows; begin += batch) {
    const int64_t m = std::min(batch, rows - begin);
    backend_.copy_to_device(x.data(), train.image(begin), static_cast<size_t>(m * features) * sizeof(float));
    const float* out = prefix->forward(x.floats(), m);
    backend_.copy_to_host(inputs.data() + begin * n_v, out, static_cast<size_t>(m * n_v) * sizeof(float));
  }
  return inputs;
}

DictionaryReport Network::build_dictionary(size_t index, const data::Dataset& train, uint64_t seed,
                                           int64_t emp_samples) {
  const Layer& layer = layers_.at(index);
  DictionaryReport report;
  if (!layer.config.is_predicted()) return report;  // dense, LowRank (U learned) and pooling layers
  dict::DictionarySpec spec;
  spec.kind = dict::parse_dictionary_kind(layer.config.dictionary);
  spec.length_scale = layer.config.length_scale;
  spec.ridge = layer.config.ridge;
  spec.seed = seed;
  spec.layer_index = index;
  int u_param = -1;
  if (layer.conv) {
    // A filter's index space is (filter row, filter col, channel): SE over (row, col), channels
    // independent (spec section 4); DCT atoms over the same p × p × C_in grid.
    const Conv2dConfig& cc = layer.conv->config();
    spec.n_inputs = static_cast<int>(cc.kernel * cc.kernel * cc.input.c);
    spec.n_alpha = static_cast<int>(cc.rank);
    spec.columns = static_cast<int>(cc.columns);
    spec.coords = dict::image_coordinates(static_cast<int>(cc.kernel), static_cast<int>(cc.kernel),
                                          static_cast<int>(cc.input.c));
    u_param = layer.conv->u();
  } else {
    const PredictedDenseConfig& pc = layer.predicted->config();
    spec.n_inputs = static_cast<int>(pc.in);
    spec.n_alpha = static_cast<int>(pc.rank);
    spec.columns = static_cast<int>(pc.columns);
    // Pixel (or feature-map) geometry where the input has one; hidden units lie on a line.
    const ImageShape& in = layer.input;
    spec.coords = in.h * in.w > 1 ? dict::image_coordinates(static_cast<int>(in.h), static_cast<int>(in.w),
                                                            static_cast<int>(in.c))
                                  : dict::flat_coordinates(static_cast<int>(pc.in));
    u_param = layer.predicted->u();
  }
  const bool empirical = spec.kind == dict::DictionaryKind::Emp || spec.kind == dict::DictionaryKind::Emp2;
  const bool autoencoder = spec.kind == dict::DictionaryKind::AE;
  std::vector<float> inputs;  // (rows, n_v): this layer's inputs over the first training examples
  dict::AutoencoderResult ae;
  if (empirical || autoencoder) {
    UV_CHECK(!layer.conv, "data-driven dictionaries of conv layers are refused when the network is built");
    report.data_rows = std::min<int64_t>(emp_samples, train.count);
    inputs = layer_inputs(index, train, report.data_rows);
  }
  if (empirical) {
    spec.data = inputs.data();
    spec.data_rows = report.data_rows;
  }
  if (autoencoder) {
    dict::AutoencoderConfig ac;
    ac.atoms = layer.config.ae_atoms;
    ac.epochs = layer.config.ae_epochs;
    ac.batch_size = config_.batch_size;
    ac.lr = layer.config.ae_lr;
    ac.momentum = layer.config.ae_momentum;
    ac.seed = seed;
    ac.layer_index = index;
    ae = dict::train_autoencoder(backend_, inputs.data(), report.data_rows, spec.n_inputs, ac);
    report.ae_loss_before = ae.loss_before;
    report.ae_loss_after = ae.loss_after;
    spec.atoms = ae.encoder.data();
    spec.atom_count = static_cast<int>(ac.atoms);
  }
  std::vector<float> u = dict::build_dictionary(spec);  // (K, J·r)
  if (layer.config.dictionary_precision == "tf32")
    for (float& x : u) x = tf32_round(x);  // LayerConfig::dictionary_precision says why
  Parameter& up = store_.at(u_param);
  UV_CHECK(static_cast<int64_t>(u.size()) == up.numel(), "dictionary size mismatch for " << layer.name);
  backend_.copy_to_device(up.value, u.data(), u.size() * sizeof(float));
  return report;
}

std::unique_ptr<Graph> Network::prefix_graph(size_t index, int64_t max_batch) {
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (size_t i = 0; i < index; ++i) {
    graph->add(layers_[i].op);
    if (layers_[i].activation) graph->add(layers_[i].activation);
  }
  graph->set_trainable_from(graph->size());  // inference only
  graph->finalize();
  return graph;
}

std::unique_ptr<Graph> Network::supervised_graph(int64_t max_batch, bool project_input) {
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (const Layer& layer : layers_) {
    if (project_input && &layer == &layers_.front()) {
      const std::string why = why_no_input_projection();
      UV_REQUIRE(why.empty(), "cannot project the inputs: " << why);
      if (!projected_input_) projected_input_ = make<ProjectedInputDense>(*layer.predicted);
      graph->add(projected_input_);
    } else {
      graph->add(layer.op);
    }
    if (layer.activation) graph->add(layer.activation);
  }
  graph->finalize();
  return graph;
}

std::string Network::why_no_input_projection() const {
  const Layer& first = layers_.front();
  if (!first.predicted) return first.name + " is " + first.config.type + ", not predicted_dense";
  if (first.predicted->config().learn_u) return first.name + " is lowrank: it learns U";
  return "";
}

int64_t Network::projected_features() const {
  const PredictedDenseConfig& c = layers_.front().predicted->config();
  return c.columns * c.rank;
}

void Network::project_inputs(const float* x, int64_t count, float* t) {
  const PredictedDense& first = *layers_.front().predicted;
  const int64_t k = first.in_features(), jr = projected_features();
  backend_.gemm(false, false, count, jr, k, 1.f, x, k, store_.at(first.u()).value, jr, 0.f, t, jr);
}

std::unique_ptr<Graph> Network::pretrain_graph(size_t index, int64_t max_batch) {
  const Layer& layer = layers_.at(index);
  UV_CHECK(layer.decoder, layer.name << " has no decoder (pretrain is off)");
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (size_t i = 0; i < index; ++i) {
    graph->add(layers_[i].op);
    if (layers_[i].activation) graph->add(layers_[i].activation);
  }
  const size_t frozen = graph->size();
  graph->add(layer.op);
  if (layer.activation) graph->add(layer.activation);
  graph->add(layer.decoder);
  graph->add(layer.decoder_activation);
  graph->set_trainable_from(frozen);
  graph->keep_value_for_loss(frozen);  // the reconstruction target: this layer's input
  graph->finalize();
  return graph;
}

ActivationPlan Network::plan_if_materialised(const Graph& graph) {
  // Every predicted layer (fully connected or conv) switched to materialise, replanned, switched back.
  std::vector<PredictedStrategy> chosen;
  auto visit = [&](auto&& apply) {
    for (Layer& layer : layers_) {
      if (layer.predicted) apply(*layer.predicted, layer.predicted->config().strategy);
      if (layer.conv && layer.conv->predicted()) apply(*layer.conv, layer.conv->config().strategy);
    }
  };
  visit([&](auto& op, PredictedStrategy current) {
    chosen.push_back(current);
    op.set_strategy(PredictedStrategy::Materialise);
  });
  const ActivationPlan plan = graph.replan();
  size_t i = 0;
  visit([&](auto& op, PredictedStrategy) { op.set_strategy(chosen[i++]); });
  return plan;
}

std::vector<LayerSummary> Network::summary() const {
  std::vector<LayerSummary> out;
  for (const Layer& layer : layers_) {
    if (layer.config.type == "maxpool") continue;  // no parameters
    LayerSummary s;
    s.name = layer.name;
    s.type = layer.config.type;
    // Weights of the layer's matrix: inputs × outputs of a fully connected layer, the filter bank
    // (p·p·C_in) × C_out of a conv layer.
    int64_t rank = 0, columns = 1;
    bool predicted = false, learn_u = false;
    PredictedStrategy strategy = PredictedStrategy::Chain;
    if (layer.conv) {
      const Conv2dConfig& cc = layer.conv->config();
      s.in = cc.kernel * cc.kernel * cc.input.c;
      s.out = cc.filters;
      predicted = layer.conv->predicted();
      rank = cc.rank;
      columns = cc.columns;
      learn_u = cc.learn_u;
      strategy = cc.strategy;
    } else {
      s.in = layer.op->in_features();
      s.out = layer.op->out_features();
      if (layer.predicted) {
        const PredictedDenseConfig& pc = layer.predicted->config();
        predicted = true;
        rank = pc.rank;
        columns = pc.columns;
        learn_u = pc.learn_u;
        strategy = pc.strategy;
      }
    }
    s.dense_equivalent = s.in * s.out + s.out;
    if (predicted) {
      s.rank = rank;
      s.columns = columns;
      const int64_t v = rank * s.out;  // J · r · N/J
      const int64_t u = s.in * columns * rank;
      s.dictionary = learn_u ? "-" : layer.config.dictionary;
      s.strategy = predicted_strategy_name(strategy);
      s.learned = v + s.out + (learn_u ? u : 0);
      s.fixed = learn_u ? 0 : u;
    } else {
      s.learned = s.dense_equivalent;
      s.dictionary = "-";
      s.strategy = "-";
    }
    s.predicted = std::max<int64_t>(0, s.in * s.out - (s.learned - s.out));
    out.push_back(s);
  }
  return out;
}

}  // namespace uv
