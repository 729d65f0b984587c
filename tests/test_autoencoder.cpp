// The autoencoder behind the `ae` dictionary (engine/dict/autoencoder.h): its initialisation, a short
// training that lowers the reconstruction loss it reports (checked against a float64 recomputation
// from the weights it returns), determinism from the seed, and the Network's ae layer, whose U must
// be exactly the trained encoder's columns at each column's α.
#include "engine/dict/autoencoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/data/dataset.h"
#include "engine/dict/dictionary.h"
#include "engine/graph/graph.h"
#include "engine/train/config.h"
#include "models/network.h"
#include "tests/test_util.h"

namespace uv {
namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Inputs (rows × n_v) in (0, 1) with structure an autoencoder can find: x = sigmoid(A·s) for a
// 3-dimensional code s, A (n_v × 3) fixed, plus a little noise.
std::vector<float> structured_inputs(int64_t rows, int64_t n_v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<double> mixing = test::random_vector<double>(n_v * 3, rng, -3, 3);  // (n_v, 3)
  std::normal_distribution<double> code(0, 1), noise(0, 0.02);
  std::vector<float> x(static_cast<size_t>(rows * n_v));
  for (int64_t r = 0; r < rows; ++r) {
    const double s[3] = {code(rng), code(rng), code(rng)};
    for (int64_t i = 0; i < n_v; ++i)
      x[r * n_v + i] = static_cast<float>(
          sigmoid(mixing[i * 3] * s[0] + mixing[i * 3 + 1] * s[1] + mixing[i * 3 + 2] * s[2]) + noise(rng));
  }
  return x;
}

// The autoencoder's mean loss (1/rows)·Σ ½‖sigmoid(sigmoid(x·W + b)·Wᵀ + c) − x‖², in float64 from
// the returned weights: an independent check of what train_autoencoder reports.
double host_reconstruction_loss(const std::vector<float>& x, int64_t rows, int64_t n_v,
                                const dict::AutoencoderResult& ae) {
  const int64_t atoms = static_cast<int64_t>(ae.encoder_bias.size());
  double sum = 0;
  std::vector<double> h(atoms);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t a = 0; a < atoms; ++a) {
      double pre = ae.encoder_bias[a];
      for (int64_t i = 0; i < n_v; ++i) pre += double(x[r * n_v + i]) * ae.encoder[i * atoms + a];
      h[a] = sigmoid(pre);
    }
    for (int64_t i = 0; i < n_v; ++i) {
      double pre = ae.decoder_bias[i];
      for (int64_t a = 0; a < atoms; ++a) pre += h[a] * ae.encoder[i * atoms + a];
      const double d = sigmoid(pre) - x[r * n_v + i];
      sum += 0.5 * d * d;
    }
  }
  return sum / static_cast<double>(rows);
}

// The loss of the best constant reconstruction (every row reconstructed as the mean row): what an
// autoencoder achieves with its output biases alone.
double mean_row_loss(const std::vector<float>& x, int64_t rows, int64_t n_v) {
  std::vector<double> mean(n_v, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n_v; ++i) mean[i] += x[r * n_v + i] / double(rows);
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n_v; ++i) sum += 0.5 * (x[r * n_v + i] - mean[i]) * (x[r * n_v + i] - mean[i]);
  return sum / static_cast<double>(rows);
}

constexpr int64_t kRows = 310, kInputs = 29, kAtoms = 23;  // 310 rows: the last batch is partial

dict::AutoencoderConfig small_config(int64_t epochs) {
  dict::AutoencoderConfig c;
  c.atoms = kAtoms;
  c.epochs = epochs;
  c.batch_size = 20;
  c.lr = 0.5;
  c.momentum = 0.7;
  c.seed = 17;
  c.layer_index = 1;
  return c;
}

TEST(Autoencoder, StartsSmallAndReportsItsLoss) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const std::vector<float> x = structured_inputs(kRows, kInputs, test::fresh_seed());
  const dict::AutoencoderResult ae = train_autoencoder(*cpu, x.data(), kRows, kInputs, small_config(0));
  ASSERT_EQ(ae.encoder.size(), size_t(kInputs * kAtoms));
  ASSERT_EQ(ae.encoder_bias.size(), size_t(kAtoms));
  ASSERT_EQ(ae.decoder_bias.size(), size_t(kInputs));
  double norm = 0;
  for (float w : ae.encoder) {
    EXPECT_LE(std::fabs(w), 0.001f);
    norm += double(w) * w;
  }
  EXPECT_GT(norm, 0.0);
  for (float b : ae.encoder_bias) EXPECT_EQ(b, 0.0f);
  for (float c : ae.decoder_bias) EXPECT_EQ(c, 0.0f);
  // No epochs: the loss before and after is the initial one, and the float64 recomputation agrees
  // to float32 accuracy (sums of ~30 terms near 0.5: 1e-5 relative is far above rounding).
  EXPECT_EQ(ae.loss_before, ae.loss_after);
  EXPECT_NEAR(ae.loss_before, host_reconstruction_loss(x, kRows, kInputs, ae), 1e-5 * ae.loss_before);
}

TEST(Autoencoder, ShortTrainingLowersTheReconstructionLossBelowTheMeanRow) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const std::vector<float> x = structured_inputs(kRows, kInputs, test::fresh_seed());
  const dict::AutoencoderResult start = train_autoencoder(*cpu, x.data(), kRows, kInputs, small_config(0));
  const dict::AutoencoderResult ae = train_autoencoder(*cpu, x.data(), kRows, kInputs, small_config(30));
  EXPECT_EQ(ae.loss_before, start.loss_before);  // same initialisation
  const double before = host_reconstruction_loss(x, kRows, kInputs, start);
  const double after = host_reconstruction_loss(x, kRows, kInputs, ae);
  EXPECT_NEAR(ae.loss_after, after, 1e-5 * after + 1e-7);
  EXPECT_LT(after, 0.5 * before);
  // Better than the best constant output: the hidden units carry information about each input.
  EXPECT_LT(after, 0.9 * mean_row_loss(x, kRows, kInputs)) << "before " << before << ", after " << after;
}

TEST(Autoencoder, DeterministicForASeed) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const std::vector<float> x = structured_inputs(kRows, kInputs, test::fresh_seed());
  dict::AutoencoderConfig config = small_config(2);
  const dict::AutoencoderResult a = train_autoencoder(*cpu, x.data(), kRows, kInputs, config);
  const dict::AutoencoderResult b = train_autoencoder(*cpu, x.data(), kRows, kInputs, config);
  EXPECT_EQ(a.encoder, b.encoder);
  EXPECT_EQ(a.encoder_bias, b.encoder_bias);
  EXPECT_EQ(a.decoder_bias, b.decoder_bias);
  EXPECT_EQ(a.loss_after, b.loss_after);
  config.seed += 1;
  EXPECT_NE(train_autoencoder(*cpu, x.data(), kRows, kInputs, config).encoder, a.encoder);
  config.seed -= 1;
  config.layer_index += 1;  // another layer of the same model draws other streams
  EXPECT_NE(train_autoencoder(*cpu, x.data(), kRows, kInputs, config).encoder, a.encoder);
}

TEST(Autoencoder, BadSettingsThrowUserError) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const std::vector<float> x(10 * 3, 0.5f);
  dict::AutoencoderConfig config = small_config(1);
  config.lr = 0;
  EXPECT_THROW(train_autoencoder(*cpu, x.data(), 10, 3, config), UserError);
  config = small_config(1);
  config.atoms = 0;
  EXPECT_THROW(train_autoencoder(*cpu, x.data(), 10, 3, config), UserError);
  EXPECT_THROW(train_autoencoder(*cpu, x.data(), 0, 3, small_config(1)), UserError);
  config = small_config(1);
  config.momentum = 1.5;
  EXPECT_THROW(train_autoencoder(*cpu, x.data(), 10, 3, config), UserError);
}

// A model whose second layer has an ae dictionary: its U is exactly the encoder of an autoencoder
// trained on layer 1's codes of the first emp_samples examples, at each column's α.
TEST(Autoencoder, NetworkLayerUIsTheTrainedEncoderAtAlpha) {
  const RunConfig config = parse_config(R"({
    "name": "ae_layer", "seed": 9,
    "model": {"layers": [
      {"type": "predicted_dense", "units": 10, "dictionary": "randfixu", "rank": 4, "init_scale": 0.5},
      {"type": "predicted_dense", "units": 8, "dictionary": "ae", "rank": 3, "columns": 2,
       "ae_atoms": 11, "ae_epochs": 3, "ae_lr": 0.3, "ae_momentum": 0.5},
      {"type": "dense", "units": 4, "activation": "identity"}]},
    "train": {"batch_size": 16}})",
                                        "ae_layer", {});
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  data::Dataset set;
  set.count = 60; set.rows = 1; set.cols = 12; set.num_classes = 4;
  std::mt19937_64 rng(test::fresh_seed());
  set.images = test::random_vector<float>(set.count * 12, rng, 0, 1);
  set.labels.assign(set.count, 0);
  constexpr int64_t kSamples = 50;

  Network model(config, *cpu, ImageShape{1, 1, 12});
  model.init_parameters(config.seed);
  model.build_dictionary(0, set, config.seed, kSamples);
  const DictionaryReport report = model.build_dictionary(1, set, config.seed, kSamples);
  EXPECT_EQ(report.data_rows, kSamples);
  EXPECT_LT(report.ae_loss_after, report.ae_loss_before);

  // Layer 1's codes of the first 50 examples, as the model gathers them.
  std::unique_ptr<Graph> prefix = model.prefix_graph(1, kSamples);
  const float* codes = prefix->forward(set.images.data(), kSamples);  // (50, 10), host memory on the CPU
  const std::vector<float> inputs(codes, codes + kSamples * 10);
  dict::AutoencoderConfig ac;
  ac.atoms = 11;
  ac.epochs = 3;
  ac.batch_size = 16;
  ac.lr = 0.3;
  ac.momentum = 0.5;
  ac.seed = 9;
  ac.layer_index = 1;
  const dict::AutoencoderResult ae = train_autoencoder(*cpu, inputs.data(), kSamples, 10, ac);
  EXPECT_EQ(ae.loss_after, report.ae_loss_after);

  dict::DictionarySpec spec;
  spec.kind = dict::DictionaryKind::AE;
  spec.n_inputs = 10;
  spec.n_alpha = 3;
  spec.columns = 2;
  spec.seed = 9;
  spec.layer_index = 1;
  spec.atom_count = 11;
  const std::vector<std::vector<int>> alphas = dict::dictionary_alphas(spec);
  const Parameter& u = model.store().at(model.layers()[1].predicted->u());  // (10, 2·3)
  ASSERT_EQ(u.numel(), 10 * 6);
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 2; ++j)
      for (int a = 0; a < 3; ++a)
        EXPECT_EQ(u.value[i * 6 + j * 3 + a], ae.encoder[i * 11 + alphas[j][a]]) << i << ", " << j << ", " << a;
}

TEST(Autoencoder, SeAeConfigLoads) {
  const RunConfig config = load_config(std::string(UV_SOURCE_DIR) + "/models/mnist_mlp_se_ae.json", {});
  ASSERT_EQ(config.layers.size(), 3u);
  EXPECT_EQ(config.layers[0].dictionary, "se");
  EXPECT_EQ(config.layers[1].dictionary, "ae");
  EXPECT_EQ(config.layers[1].ae_atoms, 1000);
  EXPECT_EQ(config.layers[1].ae_epochs, 50);
  EXPECT_EQ(config.layers[1].ae_lr, 0.1);
  EXPECT_EQ(config.layers[1].ae_momentum, 0.7);
}

}  // namespace
}  // namespace uv
