// Every shipped config in models/ parses and builds its network (without data): the layer shapes
// the configs' comments promise, and the learned share of each convnet.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/train/config.h"
#include "models/network.h"

namespace uv {
namespace {

// One example's geometry per data set (what the loaders produce).
ImageShape input_of(const std::string& dataset) {
  static const std::map<std::string, ImageShape> shapes = {
      {"mnist", {28, 28, 1}}, {"fashion_mnist", {28, 28, 1}}, {"cifar10", {32, 32, 3}}, {"stl10", {96, 96, 3}}};
  return shapes.at(dataset);
}

TEST(ModelConfigs, EveryShippedConfigBuildsItsNetwork) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  int configs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(UV_SOURCE_DIR) + "/models")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const RunConfig config = load_config(entry.path().string(), {});
    Network network(config, *cpu, input_of(config.dataset));
    const std::vector<LayerSummary> rows = network.summary();
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows.back().out, 10);  // every shipped model classifies 10 classes
    ++configs;
  }
  EXPECT_GE(configs, 10);
}

// The convnets learn a quarter of their hidden weights: n_alpha = int(fraction · p·p·C_in) with
// fraction 0.25, except the Fashion convnet's first layer (0.5 of its 25 taps, 0.2% of the weights).
TEST(ModelConfigs, ConvnetsLearnAQuarterOfTheirHiddenWeights) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const char* name : {"convnet_fashion", "convnet_cifar10", "convnet_fashion_randfixu"}) {
    SCOPED_TRACE(name);
    const RunConfig config = load_config(std::string(UV_SOURCE_DIR) + "/models/" + name + ".json", {});
    Network network(config, *cpu, input_of(config.dataset));
    const std::vector<LayerSummary> rows = network.summary();
    int64_t learned = 0, dense = 0;
    for (size_t i = 0; i + 1 < rows.size(); ++i) {
      const LayerSummary& row = rows[i];
      const double fraction = (i == 0 && config.dataset == "fashion_mnist") ? 0.5 : 0.25;
      EXPECT_EQ(row.rank, static_cast<int64_t>(fraction * static_cast<double>(row.in))) << row.name;
      learned += row.learned;
      dense += row.dense_equivalent;
    }
    const double share = static_cast<double>(learned) / static_cast<double>(dense);
    EXPECT_GT(share, 0.245);
    EXPECT_LT(share, 0.26);
  }
  // The paper's CIFAR-10 filter banks: 8·8·3 → 48, 8·8·48 → 64, 5·5·64 → 64, then 4·4·64 → 500.
  const RunConfig cifar = load_config(std::string(UV_SOURCE_DIR) + "/models/convnet_cifar10.json", {});
  Network network(cifar, *cpu, input_of("cifar10"));
  const std::vector<LayerSummary> rows = network.summary();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].in, 192);
  EXPECT_EQ(rows[1].in, 3072);
  EXPECT_EQ(rows[2].in, 1600);
  EXPECT_EQ(rows[3].in, 1024);
  EXPECT_EQ(rows[3].columns, 5);
}

// The paper's pipeline config carries spec section 5's schedule, knob by knob.
TEST(ModelConfigs, PaperPipelineHasTheSpecSchedule) {
  const RunConfig c = load_config(std::string(UV_SOURCE_DIR) + "/models/mnist_mlp_paper_pipeline.json", {});
  EXPECT_EQ(c.dataset, "mnist");
  EXPECT_EQ(c.train_limit, 0);  // the 60k training set
  EXPECT_EQ(c.test_limit, 0);   // the 10k test set
  EXPECT_EQ(c.batch_size, 100);
  // Pretraining: layers 1 and 2 as tied sigmoid autoencoders, SGD lr 0.1, momentum 0.7, 50 epochs.
  EXPECT_EQ(c.pretrain_epochs, 50);
  EXPECT_DOUBLE_EQ(c.pretrain_lr, 0.1);
  EXPECT_DOUBLE_EQ(c.pretrain_momentum, 0.7);
  // Fine-tuning: lr 0.01, momentum 0.7, weight decay 5e-5, 100 epochs, lr / 1.00004 per minibatch,
  // max column norm 1.9365.
  EXPECT_EQ(c.epochs, 100);
  EXPECT_DOUBLE_EQ(c.lr, 0.01);
  EXPECT_DOUBLE_EQ(c.momentum, 0.7);
  EXPECT_DOUBLE_EQ(c.weight_decay, 5e-5);
  EXPECT_DOUBLE_EQ(c.lr_decay, 1.00004);
  EXPECT_DOUBLE_EQ(c.max_col_norm, 1.9365);
  // 784-500(SE)-500(Emp)-10, sigmoid hidden units, 10% learned, V ~ Uniform(±0.1).
  ASSERT_EQ(c.layers.size(), 3u);
  const char* dictionaries[] = {"se", "emp"};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(c.layers[i].type, "predicted_dense");
    EXPECT_EQ(c.layers[i].units, 500);
    EXPECT_EQ(c.layers[i].activation, "sigmoid");
    EXPECT_EQ(c.layers[i].dictionary, dictionaries[i]);
    EXPECT_DOUBLE_EQ(c.layers[i].fraction, 0.1);
    EXPECT_TRUE(c.layers[i].pretrain);
    EXPECT_DOUBLE_EQ(c.layers[i].init_scale, 0.1);
  }
  EXPECT_EQ(c.layers[2].type, "dense");
  EXPECT_FALSE(c.layers[2].pretrain);
  EXPECT_DOUBLE_EQ(c.layers[2].init_scale, 0.1);
  // Biases start at 0 and U is left to the dictionaries: every parameter that is neither drawn
  // Uniform(±0.1) nor fixed is zero-initialised.
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  Network network(c, *cpu, input_of(c.dataset));
  int biases = 0;
  for (const Parameter& p : network.store().all()) {
    SCOPED_TRACE(p.spec.name);
    if (p.spec.kind != ParamKind::Learned) continue;
    if (p.spec.init == ParamInit::Uniform) {
      EXPECT_FLOAT_EQ(p.spec.init_scale, 0.1f);
      EXPECT_TRUE(p.spec.weight_decay);
    } else {
      EXPECT_EQ(p.spec.init, ParamInit::Zero);
      EXPECT_FALSE(p.spec.weight_decay);
      ++biases;
    }
  }
  EXPECT_EQ(biases, 3 + 2);  // a bias a layer, and the two decoders' output biases
}

// pretrain.epochs with no layer to pretrain would do nothing: refused, naming the field.
TEST(ModelConfigs, PretrainEpochsWithoutAPretrainedLayerIsRefused) {
  const std::string path = std::string(UV_SOURCE_DIR) + "/models/mnist_mlp.json";
  try {
    load_config(path, {"pretrain.epochs=5"});
    FAIL() << "pretrain.epochs = 5 with no pretrained layer was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'pretrain.epochs' = 5 but no layer has \"pretrain\": true"), std::string::npos)
        << e.what();
  }
  // Pretraining switched off in the pipeline config is fine (plain supervised from the same file).
  const RunConfig off =
      load_config(std::string(UV_SOURCE_DIR) + "/models/mnist_mlp_paper_pipeline.json", {"pretrain.epochs=0"});
  EXPECT_EQ(off.pretrain_epochs, 0);
}

}  // namespace
}  // namespace uv
