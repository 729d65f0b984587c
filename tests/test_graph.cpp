// The graph executor: the buffer planner, whole-network gradients through the planned arena,
// tied-autoencoder gradient accumulation, each graph's own gradient modes over shared ops, and a short
// end-to-end training run on real MNIST.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "engine/backend/backend.h"
#include "engine/core/tf32.h"
#include "engine/data/dataset.h"
#include "engine/graph/graph.h"
#include "engine/ops/ops.h"
#include "engine/train/config.h"
#include "models/network.h"
#include "tests/test_util.h"

namespace uv {
namespace {

TEST(GraphPlanner, LiveBuffersNeverShareMemory) {
  std::mt19937_64 rng(test::fresh_seed());
  std::uniform_int_distribution<int> t(0, 30), len(0, 8), size(1, 500);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<PlannedBuffer> bufs(40);
    for (PlannedBuffer& b : bufs) {
      b.first = t(rng);
      b.last = b.first + len(rng);
      b.floats = size(rng);
    }
    const int64_t arena = plan_offsets(bufs, 16);
    for (size_t i = 0; i < bufs.size(); ++i) {
      EXPECT_EQ(bufs[i].offset % 16, 0);
      EXPECT_LE(bufs[i].offset + bufs[i].floats, arena);
      for (size_t j = i + 1; j < bufs.size(); ++j) {
        const bool live_together = bufs[i].first <= bufs[j].last && bufs[j].first <= bufs[i].last;
        const bool overlap = bufs[i].offset < bufs[j].offset + bufs[j].floats &&
                             bufs[j].offset < bufs[i].offset + bufs[i].floats;
        EXPECT_FALSE(live_together && overlap) << "buffers " << i << " and " << j;
      }
    }
  }
}

RunConfig small_config(const std::string& strategy, int64_t columns, bool pretrain) {
  const std::string text = R"({
    "name": "graph_test",
    "model": {"layers": [
      {"type": "predicted_dense", "units": 12, "activation": "sigmoid", "dictionary": "randfixu",
       "rank": 5, "columns": )" + std::to_string(columns) + R"(, "strategy": ")" + strategy +
                           R"(", "pretrain": )" + (pretrain ? "true" : "false") + R"(, "init_scale": 0.5},
      {"type": "lowrank", "units": 9, "activation": "tanh", "rank": 4, "strategy": ")" + strategy +
                           R"(", "init_scale": 0.5},
      {"type": "dense", "units": 4, "activation": "identity", "init_scale": 0.5}
    ]}})";
  return parse_config(text, "graph_test", {});
}

// Whole-network gradient through the planned arena against central differences. The graph runs in
// float32, so h = 1e-2 and the check is on gradients above 1e-3 with a 3% relative bound: float32
// rounding of a ~1 loss is ~1e-7/h = 1e-5 absolute, O(h²) truncation ~1e-4.
void check_network_gradient(Graph& graph, ParameterStore& store, Backend& backend,
                            const std::vector<float>& x, const std::vector<int32_t>& labels,
                            const std::vector<float>* target, int64_t m, int min_checked = 20) {
  auto loss = [&] {
    const float* out = graph.forward(x.data(), m);
    const LossResult r = target ? backend.mean_squared_error(out, target ? target->data() : nullptr, m,
                                                             graph.out_features(), graph.output_grad())
                                : backend.softmax_cross_entropy(out, labels.data(), m,
                                                                graph.out_features(), graph.output_grad());
    return r.loss_sum / m;
  };
  loss();
  graph.backward(m);
  int checked = 0;
  for (int p : graph.trainable_params()) {
    Parameter& param = store.at(p);
    const std::vector<float> analytic(param.grad, param.grad + param.numel());
    for (int64_t i = 0; i < param.numel(); ++i) {
      const float saved = param.value[i];
      const float h = 1e-2f;
      param.value[i] = saved + h;
      const double up = loss();
      param.value[i] = saved - h;
      const double down = loss();
      param.value[i] = saved;
      const double fd = (up - down) / (2 * h);
      if (std::fabs(fd) < 1e-3) continue;
      EXPECT_NEAR(analytic[i], fd, 0.03 * std::fabs(fd)) << param.spec.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GE(checked, min_checked);
}

// dictionary_precision = tf32: U is the float32 dictionary rounded to TF32 entry by entry (so
// within 2⁻¹¹ of it, and every entry exactly TF32), the same for the same seed; float32 keeps it.
TEST(NetworkDictionary, Tf32PrecisionRoundsTheDictionary) {
  std::vector<float> u[2];
  for (int tf32 = 0; tf32 < 2; ++tf32) {
    std::unique_ptr<Backend> backend = make_cpu_backend();
    RunConfig config = small_config("chain", 2, false);
    config.layers[0].dictionary_precision = tf32 ? "tf32" : "float32";
    Network model(config, *backend, ImageShape{1, 1, 10});
    model.init_parameters(3);
    data::Dataset none;
    model.build_dictionary(0, none, 7, 1);
    const Parameter& up = model.store().at(model.layers()[0].predicted->u());
    u[tf32].resize(static_cast<size_t>(up.numel()));
    backend->copy_to_host(u[tf32].data(), up.value, u[tf32].size() * sizeof(float));
  }
  ASSERT_EQ(u[0].size(), 10u * 2 * 5);
  int changed = 0;
  for (size_t i = 0; i < u[0].size(); ++i) {
    EXPECT_EQ(u[1][i], tf32_round(u[0][i])) << i;
    EXPECT_LE(std::fabs(u[1][i] - u[0][i]), std::ldexp(std::fabs(u[0][i]), -11)) << i;
    changed += u[1][i] != u[0][i];
  }
  EXPECT_GT(changed, 0) << "RandFixU's entries are not TF32 already";
}

class GraphGradient : public ::testing::TestWithParam<std::tuple<std::string, int64_t>> {};

TEST_P(GraphGradient, SupervisedNetworkMatchesFiniteDifferences) {
  const auto [strategy, columns] = GetParam();
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const RunConfig config = small_config(strategy, columns, false);
  Network model(config, *backend, ImageShape{1, 1, 10});
  model.init_parameters(test::fresh_seed());
  std::mt19937_64 rng(test::fresh_seed());
  // RandFixU needs no data; write U for layer 1 from it.
  data::Dataset none;
  model.build_dictionary(0, none, 7, 1);
  const int64_t m = 7;
  std::unique_ptr<Graph> graph = model.supervised_graph(8);
  EXPECT_LT(graph->plan().arena_floats, graph->plan().unplanned_floats);
  const auto x = test::random_vector<float>(m * 10, rng);
  std::vector<int32_t> labels(m);
  for (int64_t i = 0; i < m; ++i) labels[i] = static_cast<int32_t>(i % 4);
  check_network_gradient(*graph, model.store(), *backend, x, labels, nullptr, m);
}

INSTANTIATE_TEST_SUITE_P(GraphStrategies, GraphGradient,
                         ::testing::Combine(::testing::Values("chain", "materialise", "chain_fused", "onthefly_w"),
                                            ::testing::Values(int64_t{1}, int64_t{3})));

TEST(GraphPlanner, MaterialisedAlternativeIsPricedWithoutChangingTheModel) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const RunConfig config = small_config("chain", 3, false);
  Network model(config, *backend, ImageShape{1, 1, 10});
  std::unique_ptr<Graph> graph = model.supervised_graph(8);
  EXPECT_EQ(graph->plan().materialised_weight_floats, 0);
  const ActivationPlan materialised = model.plan_if_materialised(*graph);
  // Layer 1 (10×12) and the LowRank layer 2 (12×9): W saved and dW scratch each.
  EXPECT_EQ(materialised.materialised_weight_floats, 2 * (10 * 12 + 12 * 9));
  EXPECT_GT(materialised.arena_floats, graph->plan().arena_floats);
  for (const Network::Layer& layer : model.layers()) {
    if (layer.predicted) {
      EXPECT_EQ(layer.predicted->config().strategy, PredictedStrategy::Chain);
    }
  }
  EXPECT_EQ(graph->replan().arena_floats, graph->plan().arena_floats);
}

RunConfig relu_config(const std::string& strategy) {
  const std::string text = R"({
    "name": "graph_relu",
    "model": {"layers": [
      {"type": "predicted_dense", "units": 40, "activation": "relu", "dictionary": "randfixu", "rank": 6,
       "strategy": ")" + strategy + R"(", "init_scale": 0.5},
      {"type": "predicted_dense", "units": 40, "activation": "relu", "dictionary": "randfixu", "rank": 7,
       "strategy": ")" + strategy + R"(", "init_scale": 0.5},
      {"type": "dense", "units": 4, "activation": "identity", "init_scale": 0.5}
    ]}})";
  return parse_config(text, "graph_relu", {});
}

// A ReLU (folded into its layer) keeps a bit mask, and the chain strategies read their saved T
// rather than X: so a hidden ReLU output dies once the next predicted layer has read it, and its
// memory is reused during backward. The gradients must come out as with materialise, whose backward reads X (and so keeps
// every output alive), on the same parameters and batch. Tolerance: the suite's rule over the
// longest reduction (40 units).
TEST(GraphPlanner, ReluOutputsDieAfterTheNextForwardAndGradientsStayRight) {
  std::mt19937_64 rng(test::fresh_seed());
  const uint64_t init_seed = rng();
  const int64_t m = 9;
  const auto x = test::random_vector<float>(m * 10, rng);
  std::vector<int32_t> labels(m);
  for (int64_t i = 0; i < m; ++i) labels[i] = static_cast<int32_t>(i % 4);
  std::map<std::string, std::vector<float>> grads[2];
  const char* strategies[2] = {"chain", "materialise"};
  for (int k = 0; k < 2; ++k) {
    std::unique_ptr<Backend> backend = make_cpu_backend();
    Network model(relu_config(strategies[k]), *backend, ImageShape{1, 1, 10});
    model.init_parameters(init_seed);
    data::Dataset none;
    model.build_dictionary(0, none, 7, 1);
    model.build_dictionary(1, none, 7, 1);
    std::unique_ptr<Graph> graph = model.supervised_graph(m);
    const ActivationPlan& plan = graph->plan();
    int found = 0;
    for (const PlannedBuffer& b : plan.buffers) {
      // Layer 1's output, its ReLU folded in, is read by layer 2's forward (t = 1): with chain
      // nothing later.
      if (b.name == "layer1.out") {
        ++found;
        if (k == 0) {
          EXPECT_EQ(b.last, b.first + 1);
        } else {
          EXPECT_GT(b.last, b.first + 1);
        }
      }
      if (b.name == "layer1.relu_mask") {
        ++found;
        EXPECT_EQ(b.floats, (m * 40 + 31) / 32);
      }
    }
    EXPECT_EQ(found, 2);
    const float* out = graph->forward(x.data(), m);
    backend->softmax_cross_entropy(out, labels.data(), m, 4, graph->output_grad());
    graph->backward(m);
    for (int p : graph->trainable_params()) {
      const Parameter& param = model.store().at(p);
      grads[k][param.spec.name] = std::vector<float>(param.grad, param.grad + param.numel());
    }
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  const double r = test::rtol_for<float>(40);
  for (const auto& [name, g] : grads[0]) {
    ASSERT_TRUE(grads[1].count(name)) << name;
    double scale = 1e-3;
    for (float v : grads[1][name]) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    EXPECT_TRUE(test::all_close(g, grads[1][name], r, r * scale)) << name;
  }
}

// A fully connected op with its activation folded in (Op::fold_activation) against the same op
// followed by an ActivationOp, in a graph with a learned layer before it (so its dX is used) and
// one after: outputs and every parameter gradient bit for bit, since the CPU composes the same
// loops. Every foldable op (Dense, PredictedDense under each strategy, J = 1 and 3, U fixed and
// learned, ProjectedInputDense), every activation.
struct FoldCase {
  std::string kind;  // dense, predicted, projected
  PredictedStrategy strategy = PredictedStrategy::Chain;
  int64_t columns = 1;
  bool learn_u = false;
};

struct FoldResult {
  std::vector<float> y;
  std::map<std::string, std::vector<float>> grads;
};

FoldResult run_fold_case(const FoldCase& c, Activation act, bool fold, uint64_t seed) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  ParameterStore store;
  const int64_t m = 7, k0 = 11, k = 18, n = 24, classes = 5;
  PredictedDenseConfig pc;
  pc.in = k;
  pc.out = n;
  pc.rank = 4;
  pc.columns = c.columns;
  pc.strategy = c.strategy;
  pc.learn_u = c.learn_u;
  std::unique_ptr<Dense> before, dense;
  std::unique_ptr<PredictedDense> predicted;
  std::unique_ptr<ProjectedInputDense> projected;
  Op* layer = nullptr;
  if (c.kind != "projected") before = std::make_unique<Dense>("before", store, k0, k, 0.5f, 0.f);
  if (c.kind == "dense") {
    dense = std::make_unique<Dense>("layer", store, k, n, 0.5f, 0.f);
    layer = dense.get();
  } else {
    predicted = std::make_unique<PredictedDense>("layer", store, pc);
    layer = predicted.get();
  }
  if (fold) {
    EXPECT_TRUE(layer->fold_activation(act));
  }
  if (c.kind == "projected") {
    projected = std::make_unique<ProjectedInputDense>(*predicted);
    layer = projected.get();
  }
  ActivationOp activation("layer.act", n, act);
  Dense after("after", store, n, classes, 0.5f, 0.f);
  store.allocate(*backend);
  std::mt19937_64 rng(seed);
  for (Parameter& p : store.all()) {
    const std::vector<float> values = test::random_vector<float>(p.numel(), rng, -0.5, 0.5);
    std::copy(values.begin(), values.end(), p.value);
  }
  Graph graph(*backend, store, m);
  if (before) graph.add(before.get());
  graph.add(layer);
  if (!fold) graph.add(&activation);
  graph.add(&after);
  graph.finalize();
  const int64_t in = before ? k0 : layer->in_features();
  const auto x = test::random_vector<float>(m * in, rng, -1, 1), dy = test::random_vector<float>(m * classes, rng);
  for (int p : graph.trainable_params()) {
    Parameter& param = store.at(p);
    std::fill(param.grad, param.grad + param.numel(), std::numeric_limits<float>::quiet_NaN());
  }
  const float* y = graph.forward(x.data(), m);
  FoldResult r{std::vector<float>(y, y + m * classes), {}};
  std::copy(dy.begin(), dy.end(), graph.output_grad());
  graph.backward(m);
  for (int p : graph.trainable_params()) {
    const Parameter& param = store.at(p);
    r.grads[param.spec.name] = std::vector<float>(param.grad, param.grad + param.numel());
  }
  return r;
}

TEST(GraphFoldedActivation, MatchesTheSeparateActivationOpBitForBit) {
  std::vector<FoldCase> cases = {{"dense"}, {"projected", PredictedStrategy::Chain, 3}};
  for (PredictedStrategy strategy : {PredictedStrategy::Chain, PredictedStrategy::Materialise, PredictedStrategy::ChainFused,
                                     PredictedStrategy::OnTheFlyW})
    for (int64_t columns : {int64_t{1}, int64_t{3}})
      for (bool learn_u : {false, true}) cases.push_back({"predicted", strategy, columns, learn_u});
  const uint64_t seed = test::fresh_seed();
  for (const FoldCase& c : cases)
    for (Activation act : {Activation::Sigmoid, Activation::Tanh, Activation::ReLU}) {
      const std::string where = c.kind + " " + predicted_strategy_name(c.strategy) + " J" + std::to_string(c.columns) +
                                (c.learn_u ? " learnU " : " ") + activation_name(act);
      const FoldResult folded = run_fold_case(c, act, true, seed), separate = run_fold_case(c, act, false, seed);
      EXPECT_EQ(folded.y, separate.y) << where;
      ASSERT_EQ(folded.grads.size(), separate.grads.size()) << where;
      for (const auto& [name, g] : separate.grads) {
        ASSERT_TRUE(folded.grads.count(name)) << where << ": " << name;
        EXPECT_EQ(0, std::memcmp(folded.grads.at(name).data(), g.data(), g.size() * sizeof(float)))
            << where << ": " << name;
      }
    }
}

// A 10-input net whose predicted layer 1 (chain, 2 columns) pretrains, initialised and with its
// dictionary built: where the tests of tied and shared ops start.
struct PretrainableNet {
  std::unique_ptr<Backend> backend = make_cpu_backend();  // before the model, which keeps a reference
  Network model{small_config("chain", 2, true), *backend, ImageShape{1, 1, 10}};
  PretrainableNet() {
    model.init_parameters(test::fresh_seed());
    data::Dataset none;
    model.build_dictionary(0, none, 7, 1);
  }
};

TEST(GraphGradient, TiedAutoencoderAccumulatesEncoderAndDecoderGradients) {
  PretrainableNet net;
  std::unique_ptr<Graph> graph = net.model.pretrain_graph(0, 6);
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 6;
  const auto x = test::random_vector<float>(m * 10, rng, 0, 1);
  // A 6-row reconstruction loss has few gradients above the 1e-3 floor: 14 for one seed of many.
  check_network_gradient(*graph, net.model.store(), *net.backend, x, {}, &x, m, 8);
}

// A layer's op is shared by the supervised graph and its pretraining graph, whose encoder V
// accumulates onto the decoder's gradient. Finalizing the pretraining graph after the supervised one
// must not leave the supervised graph accumulating: its backward overwrites V's gradient, so two
// identical backward passes give identical gradients, the same as before the pretraining graph existed.
TEST(GraphGradient, SharedOpsKeepEachGraphsGradientModes) {
  PretrainableNet net;
  Network& model = net.model;
  std::unique_ptr<Graph> supervised = model.supervised_graph(6);
  const int64_t m = 6;
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_vector<float>(m * 10, rng, 0, 1);
  const auto dy = test::random_vector<float>(m * 4, rng, -1, 1);
  const Parameter& v = model.store().at(model.layers()[0].predicted->v());
  auto supervised_grad = [&] {
    supervised->forward(x.data(), m);
    std::copy(dy.begin(), dy.end(), supervised->output_grad());
    supervised->backward(m);
    return std::vector<float>(v.grad, v.grad + v.numel());
  };
  const std::vector<float> before = supervised_grad();
  ASSERT_TRUE(std::any_of(before.begin(), before.end(), [](float g) { return g != 0.f; }));

  std::unique_ptr<Graph> pretrain = model.pretrain_graph(0, m);
  pretrain->forward(x.data(), m);
  const auto dz = test::random_vector<float>(m * 10, rng, -1, 1);
  std::copy(dz.begin(), dz.end(), pretrain->output_grad());
  pretrain->backward(m);  // leaves its own gradient in V's buffer

  EXPECT_TRUE(supervised_grad() == before) << "the supervised backward added onto a stale gradient";
  EXPECT_TRUE(supervised_grad() == before);
}

// The ae dictionary's autoencoder: Dense encoder → sigmoid → TiedDenseDecoder → sigmoid, W written
// by both (decoder overwrites, encoder accumulates).
TEST(GraphGradient, TiedDenseAutoencoderAccumulatesTheSharedWeight) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  ParameterStore store;
  Dense encoder("ae.encoder", store, 11, 7, 0.5f, 0.f);
  ActivationOp hidden("ae.encoder.sigmoid", 7, Activation::Sigmoid);
  TiedDenseDecoder decoder("ae.decoder", store, encoder);
  ActivationOp output("ae.decoder.sigmoid", 11, Activation::Sigmoid);
  store.allocate(*backend);
  std::mt19937_64 rng(test::fresh_seed());
  for (Parameter& p : store.all()) {
    const std::vector<float> values = test::random_vector<float>(p.numel(), rng, -0.5, 0.5);
    std::copy(values.begin(), values.end(), p.value);
  }
  Graph graph(*backend, store, 6);
  for (Op* op : std::initializer_list<Op*>{&encoder, &hidden, &decoder, &output}) graph.add(op);
  graph.keep_value_for_loss(0);
  graph.finalize();
  EXPECT_EQ(decoder.gradient_mode(encoder.weight()), GradientMode::Overwrite);
  EXPECT_EQ(encoder.gradient_mode(encoder.weight()), GradientMode::Accumulate);
  const int64_t m = 6;
  const auto x = test::random_vector<float>(m * 11, rng, 0, 1);
  check_network_gradient(graph, store, *backend, x, {}, &x, m);
}

// A predicted first layer reading T = X·U (ProjectedInputDense, the trainer's train.project_input)
// must give the predicted layer's Y, dV and db: J = 3 columns, sizes off any blocking, the
// parameters' gradients poisoned before each backward so an unwritten element shows. Tolerance: the
// two compute the same float sums in a different association (X·U once against per batch), so
// relative 1e-5 of each output's scale.
TEST(GraphProjectedInput, MatchesThePredictedLayerOnXTimesU) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  ParameterStore store;
  PredictedDenseConfig c;
  c.in = 29;
  c.out = 21;
  c.rank = 5;
  c.columns = 3;
  c.strategy = PredictedStrategy::Chain;
  PredictedDense layer("layer1", store, c);
  ProjectedInputDense projected(layer);
  EXPECT_EQ(projected.in_features(), 15);
  store.allocate(*backend);
  std::mt19937_64 rng(test::fresh_seed());
  for (Parameter& p : store.all()) {
    const std::vector<float> values = test::random_vector<float>(p.numel(), rng, -0.5, 0.5);
    std::copy(values.begin(), values.end(), p.value);
  }
  const int64_t m = 11;
  const auto x = test::random_vector<float>(m * c.in, rng, 0, 1);
  const auto dy = test::random_vector<float>(m * c.out, rng, -1, 1);
  std::vector<float> t(static_cast<size_t>(m * 15));
  backend->gemm(false, false, m, 15, c.in, 1.f, x.data(), c.in, store.at(layer.u()).value, 15, 0.f, t.data(), 15);

  struct Result { std::vector<float> y, dv, db; };
  auto run = [&](Op& op, const std::vector<float>& input) {
    Graph graph(*backend, store, m);
    graph.add(&op);
    graph.finalize();
    Parameter& v = store.at(layer.v());
    Parameter& b = store.at(layer.bias());
    const auto poison_v = test::poisoned<float>(v.numel()), poison_b = test::poisoned<float>(b.numel());
    std::copy(poison_v.begin(), poison_v.end(), v.grad);
    std::copy(poison_b.begin(), poison_b.end(), b.grad);
    const float* y = graph.forward(input.data(), m);
    Result r{std::vector<float>(y, y + m * c.out), {}, {}};
    std::copy(dy.begin(), dy.end(), graph.output_grad());
    graph.backward(m);
    r.dv.assign(v.grad, v.grad + v.numel());
    r.db.assign(b.grad, b.grad + b.numel());
    return r;
  };
  const Result want = run(layer, x), got = run(projected, t);
  EXPECT_TRUE(test::all_close(got.y, want.y, 1e-5, 1e-5));
  EXPECT_TRUE(test::all_close(got.dv, want.dv, 1e-5, 1e-5));
  EXPECT_TRUE(test::all_close(got.db, want.db, 1e-5, 1e-5));
}

// The trainer's single optimiser call over the learned arena (decayed tensors first, SgdArgs::
// decay_end) must update every tensor bit for bit as one call per tensor does, and leave the
// arena's alignment padding at zero.
TEST(ParameterArena, OneOptimiserCallMatchesOnePerTensor) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  auto make = [&](ParameterStore& store) {
    const std::vector<std::pair<int64_t, bool>> tensors = {{37, false}, {23 * 5, true}, {1, false}, {17 * 3, true}};
    for (size_t i = 0; i < tensors.size(); ++i) {
      ParamSpec spec;
      spec.name = "p" + std::to_string(i);
      spec.shape = {tensors[i].first};
      spec.weight_decay = tensors[i].second;
      store.add(spec);
    }
    ParamSpec fixed;
    fixed.name = "U";
    fixed.shape = {9};
    fixed.kind = ParamKind::Fixed;
    store.add(fixed);
    store.allocate(*backend);
  };
  ParameterStore a, b;
  make(a);
  make(b);
  EXPECT_GT(a.decayed_floats(), 0);
  EXPECT_LT(a.decayed_floats(), a.learned_floats());
  std::mt19937_64 rng(test::fresh_seed());
  for (size_t i = 0; i < a.all().size(); ++i) {
    Parameter& pa = a.all()[i];
    Parameter& pb = b.all()[i];
    if (pa.spec.kind != ParamKind::Learned) continue;
    EXPECT_EQ(pa.spec.weight_decay, pa.offset < a.decayed_floats()) << pa.spec.name;
    for (float* dst : {pa.value, pa.grad, pa.momentum}) {
      const auto v = test::random_vector<float>(pa.numel(), rng, -1, 1);
      std::copy(v.begin(), v.end(), dst);
    }
    std::copy(pa.value, pa.value + pa.numel(), pb.value);
    std::copy(pa.grad, pa.grad + pa.numel(), pb.grad);
    std::copy(pa.momentum, pa.momentum + pa.numel(), pb.momentum);
  }
  const float lr = 0.05f, momentum = 0.9f, decay = 0.01f;
  SgdArgs arena;
  arena.params = a.learned_arena();
  arena.grads = a.grad_arena();
  arena.momentum_buffer = a.momentum_arena();
  arena.n = a.learned_floats();
  arena.lr = lr;
  arena.momentum = momentum;
  arena.weight_decay = decay;
  arena.decay_end = a.decayed_floats();
  backend->sgd_step(arena);
  for (Parameter& p : b.all()) {
    if (p.spec.kind != ParamKind::Learned) continue;
    SgdArgs one;
    one.params = p.value;
    one.grads = p.grad;
    one.momentum_buffer = p.momentum;
    one.n = p.numel();
    one.lr = lr;
    one.momentum = momentum;
    one.weight_decay = p.spec.weight_decay ? decay : 0.f;
    backend->sgd_step(one);
  }
  for (size_t i = 0; i < a.all().size(); ++i) {
    const Parameter& pa = a.all()[i];
    const Parameter& pb = b.all()[i];
    if (pa.spec.kind != ParamKind::Learned) continue;
    EXPECT_TRUE(std::equal(pa.value, pa.value + pa.numel(), pb.value)) << pa.spec.name;
    EXPECT_TRUE(std::equal(pa.momentum, pa.momentum + pa.numel(), pb.momentum)) << pa.spec.name;
  }
  std::vector<bool> used(static_cast<size_t>(a.learned_floats()), false);
  for (const Parameter& p : a.all())
    if (p.spec.kind == ParamKind::Learned)
      for (int64_t k = 0; k < p.numel(); ++k) used[static_cast<size_t>(p.offset + k)] = true;
  for (int64_t k = 0; k < a.learned_floats(); ++k)
    if (!used[static_cast<size_t>(k)]) {
      ASSERT_EQ(a.learned_arena()[k], 0.f) << "padding at " << k;
      ASSERT_EQ(a.momentum_arena()[k], 0.f) << "padding at " << k;
    }
}

TEST(GraphEndToEnd, ShortMnistRunReachesStatedAccuracy) {
  const std::string dir = std::string(UV_SOURCE_DIR) + "/data/mnist";
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte"))
    GTEST_SKIP() << "MNIST not fetched (run `make data`)";
  // 6000 training images, 6 epochs of the predicted MLP (SE-Emp, 10% learned) in a few seconds.
  const std::string out = (std::filesystem::temp_directory_path() / ("uv_e2e_" + std::to_string(test::fresh_seed()))).string();
  const std::string cmd = std::string(UV_CLI_PATH) + " train --config " + UV_SOURCE_DIR +
                          "/models/mnist_mlp.json --device cpu --epochs 6 --set data.dir=" + dir +
                          " --set data.train_limit=6000 --set data.test_limit=2000 --out " +
                          out + " > " + out + ".log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "see " << out << ".log";
  std::ifstream summary(out + "/summary.json");
  const nlohmann::json s = nlohmann::json::parse(summary);
  // Stated bar: ≤ 10% test error on 2000 test images (measured 8.1%; the run is seeded, so the
  // figure only moves with the BLAS build).
  EXPECT_LE(s["test_error"].get<double>(), 0.10);
  EXPECT_LE(s["learned_fraction_hidden"].get<double>(), 0.15);
  std::filesystem::remove_all(out);
  std::filesystem::remove(out + ".log");
}

}  // namespace
}  // namespace uv
