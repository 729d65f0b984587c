#include "models/mlp.h"

#include <algorithm>

#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "engine/dict/dictionary.h"
#include "engine/ops/strategy_cost.h"

namespace uv {

template <typename T, typename... Args>
T* Mlp::make(Args&&... args) {
  auto op = std::make_unique<T>(std::forward<Args>(args)...);
  T* raw = op.get();
  ops_.push_back(std::move(op));
  return raw;
}

Mlp::Mlp(const RunConfig& config, Backend& backend, int64_t input_features)
    : backend_(backend), config_(config), input_features_(input_features) {
  int64_t in = input_features;
  for (size_t i = 0; i < config.layers.size(); ++i) {
    const LayerConfig& lc = config.layers[i];
    Layer layer;
    layer.config = lc;
    layer.name = "layer" + std::to_string(i + 1);
    const std::string field = "config " + config.source + ": 'model.layers[" + std::to_string(i) + "]";
    if (lc.type == "dense") {
      layer.linear = make<Dense>(layer.name, store_, in, lc.units, static_cast<float>(lc.init_scale),
                                 static_cast<float>(config.max_col_norm));
    } else {
      PredictedDenseConfig pc;
      pc.in = in;
      pc.out = lc.units;
      pc.columns = lc.columns;
      // The spec: n_α per column = int(n_v · fraction) unless a rank is given.
      pc.rank = lc.rank > 0 ? lc.rank : std::max<int64_t>(1, static_cast<int64_t>(in * lc.fraction));
      UV_REQUIRE(pc.rank <= in, field << ".rank' = " << pc.rank << " is larger than the layer's "
                                      << in << " inputs");
      if (lc.strategy != "auto") pc.strategy = parse_predicted_strategy(lc.strategy);
      pc.learn_u = lc.type == "lowrank";
      pc.v_init_scale = pc.u_init_scale = static_cast<float>(lc.init_scale);
      pc.max_col_norm = static_cast<float>(config.max_col_norm);
      layer.predicted = make<PredictedDense>(layer.name, store_, pc);
      if (lc.strategy == "auto")  // priced at the training batch size, before any graph exists
        layer.predicted->set_strategy(choose_predicted_strategy(layer.predicted->shape(config.batch_size),
                                                                backend.device()));
      layer.linear = layer.predicted;
      if (lc.pretrain) {
        layer.decoder = make<TiedDecoder>(layer.name + ".decoder", store_, *layer.predicted);
        layer.decoder_activation = make<ActivationOp>(layer.name + ".decoder.sigmoid", in, Activation::Sigmoid);
      }
    }
    const Activation act = parse_activation(lc.activation);
    if (act != Activation::Identity)
      layer.activation = make<ActivationOp>(layer.name + "." + lc.activation, lc.units, act);
    layers_.push_back(layer);
    in = lc.units;
  }
  store_.allocate(backend_);
}

void Mlp::init_parameters(uint64_t seed) {
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

void Mlp::build_dictionary(size_t index, const data::Dataset& train, uint64_t seed,
                           int64_t emp_samples) {
  const Layer& layer = layers_.at(index);
  if (!layer.predicted || layer.config.type == "lowrank") return;
  const PredictedDenseConfig& pc = layer.predicted->config();
  dict::DictionarySpec spec;
  spec.kind = dict::parse_dictionary_kind(layer.config.dictionary);
  spec.n_inputs = static_cast<int>(pc.in);
  spec.n_alpha = static_cast<int>(pc.rank);
  spec.columns = static_cast<int>(pc.columns);
  spec.length_scale = layer.config.length_scale;
  spec.ridge = layer.config.ridge;
  spec.seed = seed;
  spec.layer_index = index;
  // Pixel geometry for a first layer on images; hidden units have none, so they lie on a line.
  spec.coords = (index == 0 && train.features() == pc.in)
                    ? dict::image_coordinates(train.rows, train.cols, train.channels)
                    : dict::flat_coordinates(static_cast<int>(pc.in));
  std::vector<float> inputs;  // (rows, n_v): this layer's inputs over the first training examples
  if (spec.kind == dict::DictionaryKind::Emp || spec.kind == dict::DictionaryKind::Emp2) {
    const int64_t rows = std::min<int64_t>(emp_samples, train.count);
    inputs.resize(static_cast<size_t>(rows * pc.in));
    if (index == 0) {
      std::copy(train.images.begin(), train.images.begin() + rows * pc.in, inputs.begin());
    } else {
      const int64_t batch = std::min<int64_t>(1000, rows);
      std::unique_ptr<Graph> prefix = prefix_graph(index, batch);
      Buffer x = backend_.allocate(static_cast<size_t>(batch * input_features_) * sizeof(float));
      for (int64_t begin = 0; begin < rows; begin += batch) {
        const int64_t m = std::min(batch, rows - begin);
        backend_.copy_to_device(x.data(), train.image(begin),
                                static_cast<size_t>(m * input_features_) * sizeof(float));
        const float* out = prefix->forward(x.floats(), m);
        backend_.copy_to_host(inputs.data() + begin * pc.in, out,
                              static_cast<size_t>(m * pc.in) * sizeof(float));
      }
    }
    spec.data = inputs.data();
    spec.data_rows = rows;
  }
  const std::vector<float> u = dict::build_dictionary(spec);  // (K, J·r)
  Parameter& up = store_.at(layer.predicted->u());
  UV_CHECK(static_cast<int64_t>(u.size()) == up.numel(), "dictionary size mismatch for " << layer.name);
  backend_.copy_to_device(up.value, u.data(), u.size() * sizeof(float));
}

std::unique_ptr<Graph> Mlp::prefix_graph(size_t index, int64_t max_batch) {
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (size_t i = 0; i < index; ++i) {
    graph->add(layers_[i].linear);
    if (layers_[i].activation) graph->add(layers_[i].activation);
  }
  graph->set_trainable_from(graph->size());  // inference only
  graph->finalize();
  return graph;
}

std::unique_ptr<Graph> Mlp::supervised_graph(int64_t max_batch) {
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (const Layer& layer : layers_) {
    graph->add(layer.linear);
    if (layer.activation) graph->add(layer.activation);
  }
  graph->finalize();
  return graph;
}

std::unique_ptr<Graph> Mlp::pretrain_graph(size_t index, int64_t max_batch) {
  const Layer& layer = layers_.at(index);
  UV_CHECK(layer.decoder, layer.name << " has no decoder (pretrain is off)");
  auto graph = std::make_unique<Graph>(backend_, store_, max_batch);
  for (size_t i = 0; i < index; ++i) {
    graph->add(layers_[i].linear);
    if (layers_[i].activation) graph->add(layers_[i].activation);
  }
  const size_t frozen = graph->size();
  graph->add(layer.linear);
  if (layer.activation) graph->add(layer.activation);
  graph->add(layer.decoder);
  graph->add(layer.decoder_activation);
  graph->set_trainable_from(frozen);
  graph->keep_value_for_loss(frozen);  // the reconstruction target: this layer's input
  graph->finalize();
  return graph;
}

ActivationPlan Mlp::plan_if_materialised(const Graph& graph) {
  std::vector<PredictedStrategy> chosen;
  for (Layer& layer : layers_)
    if (layer.predicted) {
      chosen.push_back(layer.predicted->config().strategy);
      layer.predicted->set_strategy(PredictedStrategy::Materialise);
    }
  const ActivationPlan plan = graph.replan();
  size_t i = 0;
  for (Layer& layer : layers_)
    if (layer.predicted) layer.predicted->set_strategy(chosen[i++]);
  return plan;
}

std::vector<LayerSummary> Mlp::summary() const {
  std::vector<LayerSummary> out;
  for (const Layer& layer : layers_) {
    LayerSummary s;
    s.name = layer.name;
    s.type = layer.config.type;
    s.in = layer.linear->in_features();
    s.out = layer.linear->out_features();
    s.dense_equivalent = s.in * s.out + s.out;
    if (layer.predicted) {
      const PredictedDenseConfig& pc = layer.predicted->config();
      s.rank = pc.rank;
      s.columns = pc.columns;
      const int64_t v = pc.rank * pc.out;  // J · r · N/J
      const int64_t u = pc.in * pc.columns * pc.rank;
      s.dictionary = pc.learn_u ? "-" : layer.config.dictionary;
      s.strategy = predicted_strategy_name(pc.strategy);
      s.learned = v + s.out + (pc.learn_u ? u : 0);
      s.fixed = pc.learn_u ? 0 : u;
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
