// RICA (engine/rica/rica.h): the objective against a per-patch reference, float64 finite-difference
// gradients of the dense and predicted objectives, ZCA whitening, patch sampling, a short L-BFGS run,
// and `uvtrain rica` on the command line (bad inputs exit 2; a tiny run writes its files and
// tools/plot_filters.py draws them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cli_util.h"
#include "engine/core/error.h"
#include "engine/data/dataset.h"
#include "engine/rica/rica.h"

namespace {

namespace fs = std::filesystem;
using uv::rica::ObjectiveValue;
using uv::rica::PatchSet;
using uv::rica::RicaModel;
using uv::rica::RicaParams;

// Fresh random patches (count × side·side·channels), standard normal, from a seeded generator.
PatchSet random_patches(int side, int channels, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  PatchSet patches;
  patches.side = side;
  patches.channels = channels;
  patches.count = count;
  patches.values.resize(static_cast<size_t>(count) * patches.dims());
  for (double& v : patches.values) v = normal(rng);
  return patches;
}

std::vector<double> random_vector(size_t size, double scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-scale, scale);
  std::vector<double> values(size);
  for (double& v : values) v = uniform(rng);
  return values;
}

// The objective as the paper writes it, patch by patch: (λ/m)·Σ_i Σ_j g(W_j x_i) + (1/m)·Σ_i ½‖WᵀW x_i − x_i‖².
double reference_objective(const std::vector<double>& w, int k, const PatchSet& patches, const RicaParams& params) {
  const int n = patches.dims();
  double sparsity = 0.0, reconstruction = 0.0;
  for (int64_t i = 0; i < patches.count; ++i) {
    const double* x = patches.patch(i);
    std::vector<double> a(k, 0.0);
    for (int j = 0; j < k; ++j)
      for (int d = 0; d < n; ++d) a[j] += w[size_t(j) * n + d] * x[d];
    for (int j = 0; j < k; ++j) sparsity += std::sqrt(a[j] * a[j] + params.l1_epsilon);
    for (int d = 0; d < n; ++d) {
      double r = -x[d];
      for (int j = 0; j < k; ++j) r += w[size_t(j) * n + d] * a[j];
      reconstruction += 0.5 * r * r;
    }
  }
  return (params.lambda * sparsity + reconstruction) / static_cast<double>(patches.count);
}

// Central differences of model_objective against its analytic gradient, every coordinate.
// |analytic − numeric| ≤ atol + rtol·|numeric|: float64 central differences with step h have
// truncation error O(h²·J''') and round-off O(ε·J/h); h = 1e-5 puts both near 1e-9 for these
// O(1..100) objectives, so rtol = 1e-6 and atol = 1e-7 leave a margin of ~100.
void expect_gradient_matches(const RicaModel& model, const PatchSet& patches, const RicaParams& params,
                             uint32_t seed) {
  const std::vector<double> moment = uv::rica::second_moment(patches);
  std::vector<double> x = random_vector(static_cast<size_t>(model.learned_count()), 0.3, seed);
  std::vector<double> grad(x.size(), std::nan(""));  // poisoned: every entry must be written
  uv::rica::model_objective(model, x.data(), patches, moment, params, grad.data());
  double norm = 0.0;
  const double h = 1e-5;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = uv::rica::model_objective(model, x.data(), patches, moment, params, nullptr).total;
    x[i] = saved - h;
    const double minus = uv::rica::model_objective(model, x.data(), patches, moment, params, nullptr).total;
    x[i] = saved;
    const double numeric = (plus - minus) / (2.0 * h);
    EXPECT_NEAR(grad[i], numeric, 1e-7 + 1e-6 * std::abs(numeric)) << "parameter " << i;
    norm += grad[i] * grad[i];
  }
  EXPECT_GT(norm, 1e-6);
}

TEST(Rica, ObjectiveMatchesThePerPatchDefinition) {
  // Odd sizes: 3×3×2 patches (n = 18), 7 filters, 13 patches (two channels: the CIFAR path).
  const PatchSet patches = random_patches(3, 2, 13, 11);
  const int k = 7;
  const std::vector<double> w = random_vector(size_t(k) * patches.dims(), 0.4, 12);
  const RicaParams params{0.3, 0.01};
  const ObjectiveValue value =
      uv::rica::rica_objective(w, k, patches, uv::rica::second_moment(patches), params, nullptr);
  const double reference = reference_objective(w, k, patches, params);
  EXPECT_NEAR(value.total, reference, 1e-12 * std::abs(reference));
  EXPECT_NEAR(value.total, value.sparsity + value.reconstruction, 1e-12 * std::abs(value.total));
  EXPECT_GT(value.sparsity, 0.0);
  EXPECT_GT(value.reconstruction, 0.0);
}

TEST(Rica, DenseGradientMatchesFiniteDifferences) {
  const PatchSet patches = random_patches(3, 1, 17, 21);
  RicaModel model;
  model.dims = patches.dims();
  model.features = 5;
  expect_gradient_matches(model, patches, RicaParams{0.2, 0.01}, 22);
}

TEST(Rica, PredictedGradientMatchesFiniteDifferences) {
  const PatchSet patches = random_patches(4, 1, 17, 31);
  uv::rica::ModelSpec spec;
  spec.side = 4;
  spec.features = 5;
  spec.fraction = 0.5;  // n_α = 8 of 16
  const RicaModel model = uv::rica::make_model(spec);
  ASSERT_TRUE(model.predicted());
  EXPECT_EQ(model.n_alpha, 8);
  EXPECT_EQ(model.learned_count(), 8 * 5);
  expect_gradient_matches(model, patches, RicaParams{0.2, 0.01}, 32);
}

TEST(Rica, PredictedGradientWithColumnsAndChannels) {
  const PatchSet patches = random_patches(3, 3, 11, 41);  // n = 27, as a CIFAR patch
  uv::rica::ModelSpec spec;
  spec.side = 3;
  spec.channels = 3;
  spec.features = 6;
  spec.columns = 3;
  spec.fraction = 0.25;  // n_α = int(27·0.25) = 6
  const RicaModel model = uv::rica::make_model(spec);
  EXPECT_EQ(model.n_alpha, 6);
  EXPECT_EQ(model.dictionary.size(), size_t(27) * 3 * 6);
  expect_gradient_matches(model, patches, RicaParams{0.2, 0.01}, 42);
}

TEST(Rica, PredictedFiltersAreTheDictionaryTimesV) {
  uv::rica::ModelSpec spec;
  spec.side = 4;
  spec.features = 6;
  spec.columns = 2;
  spec.fraction = 0.25;
  const RicaModel model = uv::rica::make_model(spec);
  const int n = model.dims, r = model.n_alpha, group = 3, width = 2 * r;
  const std::vector<double> v = random_vector(static_cast<size_t>(model.learned_count()), 1.0, 51);
  const std::vector<double> w = model.filters(v.data());
  for (int f = 0; f < model.features; ++f) {
    const int j = f / group, local = f % group;
    for (int i = 0; i < n; ++i) {
      double expected = 0.0;
      for (int a = 0; a < r; ++a)
        expected += model.dictionary[size_t(i) * width + j * r + a] * v[size_t(j) * r * group + size_t(a) * group + local];
      EXPECT_NEAR(w[size_t(f) * n + i], expected, 1e-12) << "filter " << f << " pixel " << i;
    }
  }
}

TEST(Rica, ZcaWhiteningGivesIdentityCovariance) {
  // Correlated data: x = L·z + offset with a random mixing L, so the covariance is far from I.
  const int n = 6;
  PatchSet patches = random_patches(1, n, 3000, 61);  // 1×1×6 patches: 6 dims
  const std::vector<double> mixing = random_vector(size_t(n) * n, 1.0, 62);
  for (int64_t i = 0; i < patches.count; ++i) {
    std::vector<double> z(patches.patch(i), patches.patch(i) + n);
    for (int d = 0; d < n; ++d) {
      double v = 3.0 + d;  // a non-zero mean the whitening must remove
      for (int e = 0; e < n; ++e) v += mixing[size_t(d) * n + e] * z[e];
      patches.values[size_t(i) * n + d] = v;
    }
  }
  const uv::rica::Whitening whitening = uv::rica::fit_zca(patches, 0.0);
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b)
      EXPECT_NEAR(whitening.zca[size_t(a) * n + b], whitening.zca[size_t(b) * n + a], 1e-12);  // ZCA is symmetric
  uv::rica::apply_whitening(whitening, patches);
  const std::vector<double> moment = uv::rica::second_moment(patches);
  for (int a = 0; a < n; ++a) {
    double mean = 0.0;
    for (int64_t i = 0; i < patches.count; ++i) mean += patches.patch(i)[a];
    EXPECT_NEAR(mean / patches.count, 0.0, 1e-10) << "dimension " << a;
    for (int b = 0; b < n; ++b)
      EXPECT_NEAR(moment[size_t(a) * n + b], a == b ? 1.0 : 0.0, 1e-9) << "covariance (" << a << ", " << b << ")";
  }
}

TEST(Rica, ZcaEpsilonDampsSmallDirections) {
  PatchSet patches = random_patches(2, 1, 2000, 71);
  uv::rica::remove_patch_means(patches);  // the constant direction now has variance 0
  const double epsilon = 0.5;
  const uv::rica::Whitening whitening = uv::rica::fit_zca(patches, epsilon);
  EXPECT_NEAR(whitening.eigenvalues.front(), 0.0, 1e-12);
  uv::rica::apply_whitening(whitening, patches);
  // Whitened covariance = E·diag(d/(d + ε))·Eᵀ: its trace is Σ d/(d + ε).
  const std::vector<double> moment = uv::rica::second_moment(patches);
  double trace = 0.0, expected = 0.0;
  for (int a = 0; a < 4; ++a) {
    trace += moment[size_t(a) * 4 + a];
    expected += whitening.eigenvalues[a] / (whitening.eigenvalues[a] + epsilon);
  }
  EXPECT_NEAR(trace, expected, 1e-9);
}

TEST(Rica, PatchesComeFromTheImagesAndSkipFlatOnes) {
  uv::data::Dataset images;
  images.name = "synthetic";
  images.count = 3;
  images.rows = 6;
  images.cols = 5;
  images.channels = 2;
  images.images.assign(size_t(3) * 6 * 5 * 2, 0.0f);  // image 0 stays flat (all zero)
  for (size_t i = 6 * 5 * 2; i < images.images.size(); ++i) images.images[i] = static_cast<float>(i % 7) / 7.0f;
  images.labels.assign(3, 0);
  uv::rica::PatchSampling sampling;
  sampling.side = 3;
  sampling.count = 40;
  sampling.seed = 5;
  const PatchSet patches = uv::rica::sample_patches(images, sampling);
  ASSERT_EQ(patches.dims(), 18);
  for (int64_t p = 0; p < patches.count; ++p) {
    // Every patch is some (image ≥ 1, row, col) window, pixel for pixel.
    bool found = false;
    for (int64_t image = 1; image < 3 && !found; ++image)
      for (int row = 0; row + 3 <= 6 && !found; ++row)
        for (int col = 0; col + 3 <= 5 && !found; ++col) {
          bool same = true;
          for (int r = 0; r < 3 && same; ++r)
            for (int v = 0; v < 6 && same; ++v)
              same = patches.patch(p)[r * 6 + v] == images.image(image)[((row + r) * 5 + col) * 2 + v];
          found = same;
        }
    EXPECT_TRUE(found) << "patch " << p;
  }
  // The same seed gives the same patches.
  EXPECT_EQ(uv::rica::sample_patches(images, sampling).values, patches.values);
  sampling.side = 6;
  EXPECT_THROW(uv::rica::sample_patches(images, sampling), uv::UserError);  // wider than the images
}

TEST(Rica, ShortLbfgsRunDecreasesTheObjective) {
  PatchSet patches = random_patches(4, 1, 500, 81);
  uv::rica::remove_patch_means(patches);
  uv::rica::apply_whitening(uv::rica::fit_zca(patches, 0.01), patches);
  for (double fraction : {1.0, 0.5}) {
    uv::rica::ModelSpec spec;
    spec.side = 4;
    spec.features = 12;
    spec.fraction = fraction;
    const RicaModel model = uv::rica::make_model(spec);
    uv::rica::TrainSettings settings;
    settings.max_iterations = 30;
    const uv::rica::TrainResult result = uv::rica::train_rica(model, patches, RicaParams{}, settings);
    EXPECT_LT(result.final.total, 0.8 * result.initial.total) << "fraction " << fraction;
    EXPECT_GT(result.iterations, 0);
    ASSERT_FALSE(result.history.empty());
    EXPECT_DOUBLE_EQ(result.history.back(), result.final.total);
    const uv::rica::Evaluation evaluation =
        uv::rica::evaluate(model.filters(result.learned.data()), model.features, patches, RicaParams{});
    EXPECT_NEAR(evaluation.objective.total, result.final.total, 1e-9 * std::abs(result.final.total));
    EXPECT_GT(evaluation.hoyer_sparsity, 0.0);
    EXPECT_LT(evaluation.hoyer_sparsity, 1.0);
    EXPECT_LT(evaluation.relative_reconstruction, 1.0);
  }
}

TEST(Rica, BadModelSpecsAreUserErrors) {
  uv::rica::ModelSpec spec;
  spec.fraction = 0.0;
  EXPECT_THROW(uv::rica::make_model(spec), uv::UserError);
  spec.fraction = 1.5;
  EXPECT_THROW(uv::rica::make_model(spec), uv::UserError);
  spec.fraction = 0.5;
  spec.features = 10;
  spec.columns = 3;
  EXPECT_THROW(uv::rica::make_model(spec), uv::UserError);
  spec.columns = 1;
  spec.side = 2;
  spec.fraction = 0.1;  // int(4·0.1) = 0
  EXPECT_THROW(uv::rica::make_model(spec), uv::UserError);
}

// ---- the command line ---------------------------------------------------------------------------------

class CliRica : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("uvtrain_rica_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    uv::test::write_synthetic_mnist(dir_ / "data", 7);
  }
  void TearDown() override { fs::remove_all(dir_); }

  uv::test::CliResult rica(std::vector<std::string> extra) {
    std::vector<std::string> args = {"rica", "--dataset", "mnist", "--data-dir", (dir_ / "data").string(),
                                     "--out", (dir_ / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return uv::test::run_cli(args);
  }

  fs::path dir_;
};

TEST_F(CliRica, UnknownDatasetExits2) {
  EXPECT_TRUE(uv::test::is_user_error(uv::test::run_cli({"rica", "--dataset", "imagenet", "--out", (dir_ / "o").string()}),
                                      {"imagenet", "mnist, fashion_mnist"}));
}

TEST_F(CliRica, PatchLargerThanTheImagesExits2) {
  EXPECT_TRUE(uv::test::is_user_error(rica({"--patch", "29"}), {"--patch 29", "28x28"}));
}

TEST_F(CliRica, FractionsOutsideZeroOneExit2) {
  EXPECT_TRUE(uv::test::is_user_error(rica({"--fractions", "1,0"}), {"--fractions", "outside (0, 1]"}));
  EXPECT_TRUE(uv::test::is_user_error(rica({"--fractions", "1.5"}), {"1.5", "outside (0, 1]"}));
  EXPECT_TRUE(uv::test::is_user_error(rica({"--fractions", "0.5,abc"}), {"'abc' is not a number"}));
}

TEST_F(CliRica, ColumnsThatDoNotDivideTheFeaturesExit2) {
  EXPECT_TRUE(uv::test::is_user_error(rica({"--features", "10", "--columns", "3"}), {"--columns 3"}));
}

TEST_F(CliRica, MissingDataExits2) {
  fs::remove_all(dir_ / "data");
  EXPECT_EQ(rica({}).exit_code, 2);
}

// A tiny run writes every setting's files (including the equal-learned ones), refuses to overwrite
// them, and tools/plot_filters.py draws them when a python3 with matplotlib is there.
TEST_F(CliRica, TinyRunWritesFiltersAndThePlotScriptDrawsThem) {
  const std::vector<std::string> args = {"--patch", "4", "--features", "8", "--fractions", "1,0.5",
                                         "--train-patches", "400", "--test-patches", "100", "--max-iterations", "15"};
  ASSERT_TRUE(uv::test::succeeded(rica(args)));
  const fs::path out = dir_ / "out";
  for (const char* setting : {"k8_f1", "k8_f0.5", "k16_f0.5"}) {
    EXPECT_TRUE(fs::exists(out / setting / "filters.csv")) << setting;
    EXPECT_TRUE(fs::exists(out / setting / "filters_raw.csv")) << setting;
    EXPECT_TRUE(fs::exists(out / setting / "objective.csv")) << setting;
  }
  EXPECT_TRUE(fs::exists(out / "rica.json"));
  const std::string csv = uv::test::read_text(out / "results.csv");
  EXPECT_NE(csv.find("k16_f0.5,16,0.5,1,8,128,128,"), std::string::npos) << csv;  // 8·16 learned, as k8_f1
  EXPECT_NE(csv.find("k8_f1,8,1,1,0,128,0,"), std::string::npos) << csv;
  EXPECT_TRUE(uv::test::is_user_error(rica(args), {"already holds a RICA run"}));

  std::string python;
  for (const std::string candidate : {"python3", "/usr/bin/python3"})
    if (python.empty() && std::system((candidate + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0)
      python = candidate;
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (python3-matplotlib): tools/plot_filters.py not tested";
  const fs::path png = dir_ / "filters.png";
  const std::string command =
      python + " " + uv::test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "plot_filters.py").string()) + " " +
      uv::test::shell_quote(out.string()) + " -o " + uv::test::shell_quote(png.string()) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  ASSERT_TRUE(fs::exists(png));
  const uv::test::Bytes bytes = uv::test::read_bytes(png);
  ASSERT_GT(bytes.size(), 8u);
  EXPECT_EQ(bytes[1], 'P');  // \x89PNG
  EXPECT_EQ(bytes[2], 'N');
  EXPECT_EQ(bytes[3], 'G');
}

}  // namespace
