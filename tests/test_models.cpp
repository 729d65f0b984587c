// Every shipped config in models/ parses and builds its network (without data): the layer shapes
// the configs' comments promise, and the learned share of each convnet.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "engine/backend/backend.h"
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

// The convnets learn 25% of every predicted layer's weights: n_alpha = int(0.25 · p·p·C_in).
TEST(ModelConfigs, ConvnetsLearnAQuarterOfEachPredictedLayer) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const char* name : {"convnet_fashion", "convnet_cifar10", "convnet_fashion_randfixu"}) {
    SCOPED_TRACE(name);
    const RunConfig config = load_config(std::string(UV_SOURCE_DIR) + "/models/" + name + ".json", {});
    Network network(config, *cpu, input_of(config.dataset));
    for (const LayerSummary& row : network.summary()) {
      if (row.type == "dense") continue;
      EXPECT_EQ(row.rank, static_cast<int64_t>(0.25 * static_cast<double>(row.in)));
      const double weights = static_cast<double>(row.learned - row.out) / static_cast<double>(row.in * row.out);
      EXPECT_LE(weights, 0.25);  // n_alpha rounds down: at most one filter tap short of a quarter
      EXPECT_GT(weights, 0.25 - 1.0 / static_cast<double>(row.in));
    }
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

}  // namespace
}  // namespace uv
