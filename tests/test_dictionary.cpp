// Dictionaries (engine/dict/dictionary.h): α draws, the kernel-ridge solve and its λ → 0 limit, each
// kernel, and build_dictionary's layout. Sizes are small or odd on purpose (n_v = 75, 97, 1300 rows)
// so no test passes only because a size happens to be round.
#include "engine/dict/dictionary.h"

#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/philox.h"

namespace uv::dict {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr DictionaryKind kAllKinds[] = {DictionaryKind::SE,       DictionaryKind::Emp,
                                        DictionaryKind::Emp2,     DictionaryKind::RandKernel,
                                        DictionaryKind::RandFixU, DictionaryKind::RandCon,
                                        DictionaryKind::DCT,      DictionaryKind::AE};

uint64_t test_stream(uint64_t sub) { return rng_stream(RngStream::kTest, sub); }

// Smallest eigenvalue of a symmetric matrix (n × n).
double min_eigenvalue(std::vector<double> matrix, int n) {
  std::vector<double> eigenvalues(n);
  EXPECT_EQ(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, matrix.data(), n, eigenvalues.data()), 0);
  return eigenvalues.front();  // dsyev sorts ascending
}

// SE kernel matrix K_α (n_alpha × n_alpha) at the given indices.
std::vector<double> se_gram(const Coordinates& coords, const std::vector<int>& alpha, double length_scale) {
  const size_t n = alpha.size();
  std::vector<double> gram(n * n);
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < n; ++b)
      gram[a * n + b] = se_kernel(coords.points[alpha[a]], coords.points[alpha[b]], length_scale);
  return gram;
}

// max_j max_a |U[alpha[j], a] - δ_ja|: how far the rows of U at α are from unit vectors.
double unit_row_error(const std::vector<double>& u, const std::vector<int>& alpha) {
  const size_t n_alpha = alpha.size();
  double worst = 0.0;
  for (size_t j = 0; j < n_alpha; ++j)
    for (size_t a = 0; a < n_alpha; ++a)
      worst = std::max(worst, std::fabs(u[alpha[j] * n_alpha + a] - (a == j ? 1.0 : 0.0)));
  return worst;
}

// Random data (rows × d) in float: column c has mean 50 + c, so centring matters, and unit-ish spread.
std::vector<float> random_data(int64_t rows, int d, uint64_t stream) {
  std::vector<float> data(static_cast<size_t>(rows) * d);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<float>(50 + i % d) + 2.0f * philox_uniform(7, test_stream(stream), i) - 1.0f;
  return data;
}

// Two-pass covariance (d × d) straight from the definition, each entry on its own.
std::vector<double> naive_covariance(const std::vector<float>& data, int64_t rows, int d, bool squared) {
  auto value = [&](int64_t r, int c) {
    const double x = data[r * d + c];
    return squared ? x * x : x;
  };
  std::vector<double> mean(d, 0.0), cov(static_cast<size_t>(d) * d, 0.0);
  for (int c = 0; c < d; ++c) {
    for (int64_t r = 0; r < rows; ++r) mean[c] += value(r, c);
    mean[c] /= static_cast<double>(rows);
  }
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      for (int64_t r = 0; r < rows; ++r) cov[a * d + b] += (value(r, a) - mean[a]) * (value(r, b) - mean[b]);
      cov[a * d + b] /= static_cast<double>(rows - 1);
    }
  return cov;
}

// Both sides compute the same means and the same centred products, then sum the n products in different
// orders (dsyrk blocks them). Each order is within n·eps·Σ|terms| of the exact sum, and by Cauchy–Schwarz
// Σ|terms|/(n-1) is at most the largest variance, so |Δ| <= 2·n·eps·max variance.
void expect_covariance_near(const std::vector<double>& got, const std::vector<double>& want, int64_t rows,
                            int d) {
  ASSERT_EQ(got.size(), want.size());
  double max_variance = 0.0;
  for (int c = 0; c < d; ++c) max_variance = std::max(max_variance, want[c * d + c]);
  const double tolerance = 2.0 * static_cast<double>(rows) * kEps * max_variance;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tolerance) << "entry " << i;
  EXPECT_GT(max_variance, 0.0);
}

template <typename Fn>
std::string user_error_message(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a UserError";
  return "";
}

// ---- coordinates ---------------------------------------------------------------------------------

TEST(DictionaryCoordinates, ImageIsHwcFlattened) {
  const Coordinates coords = image_coordinates(2, 3, 4);
  ASSERT_EQ(coords.points.size(), 24u);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      for (int ch = 0; ch < 4; ++ch) {
        const Point& p = coords.points[(r * 3 + c) * 4 + ch];
        EXPECT_EQ(p.row, r);
        EXPECT_EQ(p.col, c);
        EXPECT_EQ(p.channel, ch);
      }
}

TEST(DictionaryCoordinates, FlatIsALine) {
  const Coordinates coords = flat_coordinates(5);
  ASSERT_EQ(coords.points.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(coords.points[i].row, 0.0);
    EXPECT_EQ(coords.points[i].col, i);
    EXPECT_EQ(coords.points[i].channel, 0.0);
  }
}

// ---- α ---------------------------------------------------------------------------------------------

TEST(DictionaryAlpha, SameSeedAndStreamGiveSameAlpha) {
  EXPECT_EQ(draw_alpha(784, 78, 11, test_stream(1)), draw_alpha(784, 78, 11, test_stream(1)));
  EXPECT_NE(draw_alpha(784, 78, 11, test_stream(1)), draw_alpha(784, 78, 12, test_stream(1)));
}

TEST(DictionaryAlpha, EachColumnDrawsItsOwnAlpha) {
  DictionarySpec spec;
  spec.kind = DictionaryKind::RandCon;
  spec.n_inputs = 500;
  spec.n_alpha = 67;
  spec.columns = 5;
  spec.seed = 3;
  spec.layer_index = 1;
  const auto alphas = dictionary_alphas(spec);
  ASSERT_EQ(alphas.size(), 5u);
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ(alphas[j], draw_alpha(500, 67, 3, rng_stream(RngStream::kDictionary, 1 * kMaxColumns + j)));
    for (int k = 0; k < j; ++k) EXPECT_NE(alphas[j], alphas[k]) << "columns " << j << " and " << k;
  }
  spec.layer_index = 2;  // the next layer's column 0 is a different stream too
  EXPECT_NE(dictionary_alphas(spec)[0], alphas[0]);
}

TEST(DictionaryAlpha, SortedDistinctAndInRange) {
  for (const auto& [n_inputs, n_alpha] : {std::pair{784, 200}, {97, 1}, {97, 96}, {75, 75}}) {
    const std::vector<int> alpha = draw_alpha(n_inputs, n_alpha, 5, test_stream(n_inputs));
    ASSERT_EQ(static_cast<int>(alpha.size()), n_alpha);
    EXPECT_TRUE(std::is_sorted(alpha.begin(), alpha.end()));
    EXPECT_EQ(std::set<int>(alpha.begin(), alpha.end()).size(), alpha.size()) << "duplicates";
    EXPECT_GE(alpha.front(), 0);
    EXPECT_LT(alpha.back(), n_inputs);
  }
}

TEST(DictionaryAlpha, EveryIndexEquallyLikely) {
  // 3 of 10 indices over 20000 streams: each index is picked with p = 0.3, so its count is
  // Binomial(20000, 0.3): mean 6000, σ ≈ 64.8. A bias of one index by 5% would be 300 = 4.6σ away;
  // 5σ keeps a correct draw from failing by chance (p ≈ 6e-7 per index).
  constexpr int kTrials = 20000;
  std::vector<int> counts(10, 0);
  for (int t = 0; t < kTrials; ++t)
    for (int index : draw_alpha(10, 3, 1, test_stream(1000 + t))) ++counts[index];
  const double sigma = std::sqrt(kTrials * 0.3 * 0.7);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(counts[i], kTrials * 0.3, 5 * sigma) << "index " << i;
}

TEST(DictionaryAlpha, TooManyOrTooFewThrowUserErrorNamingTheNumbers) {
  const std::string message = user_error_message([] { draw_alpha(784, 785, 0, test_stream(2)); });
  EXPECT_NE(message.find("785"), std::string::npos) << message;
  EXPECT_NE(message.find("784"), std::string::npos) << message;
  EXPECT_THROW(draw_alpha(784, 0, 0, test_stream(2)), UserError);
}

// ---- SE kernel ridge -----------------------------------------------------------------------------

TEST(DictionarySE, KernelMatrixIsSymmetricPositiveDefinite) {
  const Coordinates coords = image_coordinates(28, 28, 1);
  const std::vector<int> alpha = draw_alpha(784, 100, 1, test_stream(3));
  std::vector<double> gram = se_gram(coords, alpha, 2.0);  // (100, 100)
  for (int a = 0; a < 100; ++a) {
    EXPECT_EQ(gram[a * 100 + a], 1.0);
    for (int b = 0; b < a; ++b) EXPECT_EQ(gram[a * 100 + b], gram[b * 100 + a]);
  }
  EXPECT_GT(min_eigenvalue(gram, 100), 0.0);
  EXPECT_EQ(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', 100, gram.data(), 100), 0);
}

TEST(DictionarySE, RowsAtAlphaTendToUnitVectorsAsRidgeVanishes) {
  const Coordinates coords = image_coordinates(28, 28, 1);
  const std::vector<int> alpha = draw_alpha(784, 60, 2, test_stream(4));
  // Row α of U is K_α(K_α + λI)⁻¹ = I - λ(K_α + λI)⁻¹, at most λ/(μ_min + λ) from the unit vector.
  const double mu_min = min_eigenvalue(se_gram(coords, alpha, 2.0), 60);
  ASSERT_GT(mu_min, 1e-3) << "the bound below needs a well-conditioned K_α";
  EXPECT_LT(unit_row_error(se_kernel_dictionary(coords, alpha, 2.0, 1e-8), alpha), 1e-5);
  // At the default λ = 0.1 the rows at α are visibly smoothed, not unit vectors.
  EXPECT_GT(unit_row_error(se_kernel_dictionary(coords, alpha, 2.0, 0.1), alpha), 1e-2);
}

TEST(DictionarySE, PredictsASmoothFunctionFromItsValuesAtAlpha) {
  // The paper's premise: a smooth feature is recovered from a fraction of its pixels. MNIST defaults
  // ℓ = 2, λ = 0.1, with 200 of 784 pixels (α about 2 pixels apart).
  const Coordinates coords = image_coordinates(28, 28, 1);
  const std::vector<int> alpha = draw_alpha(784, 200, 3, test_stream(5));
  auto feature = [](const Point& p) { return std::sin(p.row / 4.0) * std::cos(p.col / 5.0); };
  const std::vector<double> u = se_kernel_dictionary(coords, alpha, 2.0, 0.1);  // (784, 200)
  std::vector<double> w_alpha(200);
  for (int a = 0; a < 200; ++a) w_alpha[a] = feature(coords.points[alpha[a]]);

  // Only pixels at least 3 from the border: near the edge α surrounds a pixel on one side only and
  // ŵ falls towards the kernel's zero prior mean, an extrapolation error rather than interpolation.
  double squared_error = 0.0, squared_norm = 0.0;
  const std::set<int> alpha_set(alpha.begin(), alpha.end());
  for (int i = 0; i < 784; ++i) {
    const Point& p = coords.points[i];
    if (alpha_set.count(i) || std::min({p.row, p.col, 27 - p.row, 27 - p.col}) < 3) continue;
    double predicted = 0.0;
    for (int a = 0; a < 200; ++a) predicted += u[i * 200 + a] * w_alpha[a];
    const double truth = feature(p);
    squared_error += (predicted - truth) * (predicted - truth);
    squared_norm += truth * truth;
  }
  EXPECT_GT(squared_norm, 0.0);
  // A quality bound, not a rounding tolerance: this draw gives 0.05; predicting zero would give 1.
  EXPECT_LT(std::sqrt(squared_error / squared_norm), 0.1) << "relative RMS error at interior pixels";
}

TEST(DictionarySE, ChannelsAreIndependent) {
  // A 5×5 filter over 3 input channels with the conv defaults (ℓ = 3, λ = 0.1).
  const Coordinates coords = image_coordinates(5, 5, 3);
  EXPECT_EQ(se_kernel(coords.points[0], coords.points[1], 3.0), 0.0);  // same pixel, channels 0 and 1
  EXPECT_GT(se_kernel(coords.points[0], coords.points[3], 3.0), 0.0);  // next pixel, channel 0

  const std::vector<int> alpha = draw_alpha(75, 19, 4, test_stream(6));
  std::set<int> alpha_channels;
  for (int index : alpha) alpha_channels.insert(index % 3);
  ASSERT_EQ(alpha_channels.size(), 3u) << "the test needs α in every channel";

  const std::vector<double> u = se_kernel_dictionary(coords, alpha, 3.0, 0.1);  // (75, 19)
  for (int i = 0; i < 75; ++i) {
    double in_channel_norm = 0.0;
    for (int a = 0; a < 19; ++a) {
      if (i % 3 == alpha[a] % 3)
        in_channel_norm += u[i * 19 + a] * u[i * 19 + a];
      else  // the Cholesky factor and both solves keep the block structure exactly
        EXPECT_EQ(u[i * 19 + a], 0.0) << "input " << i << " uses α " << alpha[a];
    }
    EXPECT_GT(in_channel_norm, 0.0) << "input " << i;
  }
}

TEST(DictionarySE, IndefiniteKernelThrowsUserErrorNamingTheRidge) {
  // [[1, 2], [2, 1]] has eigenvalues 3 and -1: no Cholesky factor at λ = 0.5.
  const std::string message =
      user_error_message([] { covariance_dictionary({1.0, 2.0, 2.0, 1.0}, {0, 1}, 0.5); });
  EXPECT_NE(message.find("0.5"), std::string::npos) << message;
  EXPECT_NE(message.find("larger ridge"), std::string::npos) << message;
}

// ---- empirical covariance ------------------------------------------------------------------------

TEST(DictionaryEmpirical, CovarianceMatchesNaiveTwoPass) {
  constexpr int64_t kRows = 1300;  // more than two 512-row chunks and a partial one
  constexpr int kD = 7;
  const std::vector<float> data = random_data(kRows, kD, 7);
  expect_covariance_near(empirical_covariance(data.data(), kRows, kD, false),
                         naive_covariance(data, kRows, kD, false), kRows, kD);
}

TEST(DictionaryEmpirical, Emp2IsTheCovarianceOfSquares) {
  constexpr int64_t kRows = 301;
  constexpr int kD = 5;
  const std::vector<float> data = random_data(kRows, kD, 8);
  const std::vector<double> squared = empirical_covariance(data.data(), kRows, kD, true);
  expect_covariance_near(squared, naive_covariance(data, kRows, kD, true), kRows, kD);
  // x² of a column with mean 50 + c has about (2·(50 + c))² times the spread of x.
  const std::vector<double> plain = empirical_covariance(data.data(), kRows, kD, false);
  EXPECT_GT(squared[0], 1000.0 * plain[0]);
}

TEST(DictionaryEmpirical, DictionaryRowsAtAlphaTendToUnitVectorsAsRidgeVanishes) {
  constexpr int64_t kRows = 200;
  constexpr int kD = 20;
  const std::vector<float> data = random_data(kRows, kD, 9);
  const std::vector<double> cov = empirical_covariance(data.data(), kRows, kD, false);
  const std::vector<int> alpha = draw_alpha(kD, 8, 5, test_stream(10));
  EXPECT_LT(unit_row_error(covariance_dictionary(cov, alpha, 1e-10), alpha), 1e-5);
}

TEST(DictionaryEmpirical, NeedsTwoSamples) {
  const float one_row[3] = {1.0f, 2.0f, 3.0f};
  EXPECT_THROW(empirical_covariance(one_row, 1, 3, false), UserError);
}

// ---- random dictionaries -------------------------------------------------------------------------

TEST(DictionaryRandKernel, SymmetricPositiveSemiDefiniteAndReproducible) {
  constexpr int kD = 31;
  const std::vector<double> kernel = rand_kernel(kD, 6, test_stream(11));  // (31, 31)
  EXPECT_EQ(kernel, rand_kernel(kD, 6, test_stream(11)));
  EXPECT_NE(kernel, rand_kernel(kD, 6, test_stream(12)));
  for (int a = 0; a < kD; ++a)
    for (int b = 0; b < a; ++b) EXPECT_EQ(kernel[a * kD + b], kernel[b * kD + a]);
  double trace = 0.0;
  for (int a = 0; a < kD; ++a) trace += kernel[a * kD + a];
  // Eigenvalues are |μ| of S, computed to about kD·eps·|S| ≈ kD·eps·trace.
  EXPECT_GT(min_eigenvalue(kernel, kD), -kD * kEps * trace);
  EXPECT_GT(trace, 0.0);
}

TEST(DictionaryRandFixU, UniformInRangeAndReproducible) {
  const std::vector<double> u = rand_fix_u(97, 13, 8, test_stream(13));  // (97, 13)
  EXPECT_EQ(u, rand_fix_u(97, 13, 8, test_stream(13)));
  EXPECT_NE(u, rand_fix_u(97, 13, 8, test_stream(14)));
  double sum = 0.0;
  for (double x : u) {
    EXPECT_GE(x, -0.1);
    EXPECT_LE(x, 0.1);
    sum += x;
  }
  // 1261 draws: the extremes come within 0.01 of ±0.1 (a miss has probability 0.95^1261 ≈ 1e-28),
  // and the mean is 0 within 5σ (σ = 0.2/√12/√1261 ≈ 0.0016).
  EXPECT_LT(*std::min_element(u.begin(), u.end()), -0.09);
  EXPECT_GT(*std::max_element(u.begin(), u.end()), 0.09);
  EXPECT_NEAR(sum / u.size(), 0.0, 0.0082);
}

TEST(DictionaryRandCon, IsExactlyTheIdentityColumnsAtAlpha) {
  const std::vector<int> alpha = draw_alpha(97, 11, 9, test_stream(15));
  const std::vector<double> u = rand_con(97, alpha);  // (97, 11)
  for (int i = 0; i < 97; ++i)
    for (int j = 0; j < 11; ++j) EXPECT_EQ(u[i * 11 + j], i == alpha[j] ? 1.0 : 0.0);
}

// ---- DCT -----------------------------------------------------------------------------------------

// UᵀU (n_alpha × n_alpha) of a row-major U (n_v × n_alpha), in float64.
std::vector<double> gram_of_columns(const std::vector<double>& u, int n_v, int n_alpha) {
  std::vector<double> gram(static_cast<size_t>(n_alpha) * n_alpha, 0.0);
  for (int i = 0; i < n_v; ++i)
    for (int a = 0; a < n_alpha; ++a)
      for (int b = 0; b < n_alpha; ++b) gram[a * n_alpha + b] += u[size_t(i) * n_alpha + a] * u[size_t(i) * n_alpha + b];
  return gram;
}

// Each entry of UᵀU sums n_v products of entries below 1 in size: rounding stays under n_v·eps (and
// the cosines themselves are within a few eps), so 4·n_v·eps is generous and far below any real
// loss of orthogonality.
void expect_orthonormal(const std::vector<double>& u, int n_v, int n_alpha) {
  const std::vector<double> gram = gram_of_columns(u, n_v, n_alpha);
  for (int a = 0; a < n_alpha; ++a)
    for (int b = 0; b < n_alpha; ++b)
      EXPECT_NEAR(gram[a * n_alpha + b], a == b ? 1.0 : 0.0, 4.0 * n_v * kEps) << "atoms " << a << ", " << b;
}

TEST(DictionaryDCT, ColumnsAreOrthonormal) {
  // Non-square, multi-channel, every atom and a prefix of them; and a flat (1-D) input.
  const Coordinates image = image_coordinates(7, 6, 2);  // n_v = 84
  for (int n_alpha : {1, 23, 84}) {
    SCOPED_TRACE(n_alpha);
    expect_orthonormal(dct_dictionary(image, n_alpha), 84, n_alpha);
  }
  expect_orthonormal(dct_dictionary(flat_coordinates(97), 31), 97, 31);
}

TEST(DictionaryDCT, FirstAtomIsConstant) {
  for (const Coordinates& coords : {image_coordinates(5, 9, 1), flat_coordinates(13)}) {
    const int n_v = static_cast<int>(coords.points.size());
    const std::vector<double> u = dct_dictionary(coords, 4);  // (n_v, 4)
    for (int i = 0; i < n_v; ++i) EXPECT_NEAR(u[i * 4], 1.0 / std::sqrt(double(n_v)), 4 * kEps) << i;
  }
}

// Atom (u, v) of a rows × cols image is the outer product of the 1-D atoms u (over rows) and v
// (over cols), in the documented order: u + v, then u.
TEST(DictionaryDCT, AtomsAreSeparableInTheDocumentedOrder) {
  constexpr int kRows = 6, kCols = 5, kAtoms = kRows * kCols;
  const std::vector<double> u = dct_dictionary(image_coordinates(kRows, kCols, 1), kAtoms);  // (30, 30)
  const std::vector<double> by_row = dct_dictionary(flat_coordinates(kRows), kRows);  // (6, 6)
  const std::vector<double> by_col = dct_dictionary(flat_coordinates(kCols), kCols);  // (5, 5)
  const std::vector<std::pair<int, int>> first = {{0, 0}, {0, 1}, {1, 0}, {0, 2}, {1, 1}, {2, 0}, {0, 3}};
  int atom = 0;
  std::set<std::pair<int, int>> seen;
  for (int sum = 0; sum <= kRows + kCols - 2; ++sum)
    for (int fu = 0; fu < kRows; ++fu) {
      const int fv = sum - fu;
      if (fv < 0 || fv >= kCols) continue;
      if (atom < static_cast<int>(first.size())) {
        EXPECT_EQ(first[atom], std::make_pair(fu, fv));
      }
      seen.insert({fu, fv});
      for (int r = 0; r < kRows; ++r)
        for (int c = 0; c < kCols; ++c)
          EXPECT_NEAR(u[(r * kCols + c) * kAtoms + atom], by_row[r * kRows + fu] * by_col[c * kCols + fv], 4 * kEps)
              << "atom " << atom << " = (" << fu << ", " << fv << ") at pixel (" << r << ", " << c << ")";
      ++atom;
    }
  EXPECT_EQ(atom, kAtoms);
  EXPECT_EQ(seen.size(), size_t{kAtoms});
  // The 1-D atoms are the DCT-II's cosines: atom k at x is √(2/n)·cos(π(2x + 1)k / (2n)) for k > 0.
  for (int x = 0; x < kRows; ++x)
    EXPECT_NEAR(by_row[x * kRows + 2], std::sqrt(2.0 / kRows) * std::cos(std::acos(-1.0) * (2 * x + 1) * 2 / (2.0 * kRows)),
                4 * kEps);
}

TEST(DictionaryDCT, ChannelsAreIndependent) {
  constexpr int kRows = 4, kCols = 3, kChannels = 3, kPixels = kRows * kCols, kInputs = kPixels * kChannels;
  const std::vector<double> u = dct_dictionary(image_coordinates(kRows, kCols, kChannels), kInputs);
  const std::vector<double> gray = dct_dictionary(image_coordinates(kRows, kCols, 1), kPixels);  // (12, 12)
  // Atom a is frequency a / channels of channel a % channels: zero on the other channels, and on
  // its own channel the single-channel atom.
  for (int a = 0; a < kInputs; ++a) {
    const int channel = a % kChannels, frequency = a / kChannels;
    for (int p = 0; p < kPixels; ++p)
      for (int ch = 0; ch < kChannels; ++ch) {
        const double got = u[(p * kChannels + ch) * kInputs + a];
        if (ch == channel)
          EXPECT_NEAR(got, gray[p * kPixels + frequency], 4 * kEps) << "atom " << a << " pixel " << p;
        else
          EXPECT_EQ(got, 0.0) << "atom " << a << " leaks into channel " << ch;
      }
  }
}

TEST(DictionaryDCT, MoreAtomsThanInputsThrowUserErrorNamingTheNumbers) {
  const std::string message = user_error_message([] { dct_dictionary(image_coordinates(3, 4, 2), 25); });
  EXPECT_NE(message.find("25"), std::string::npos) << message;
  EXPECT_NE(message.find("24"), std::string::npos) << message;
  EXPECT_THROW(dct_dictionary(flat_coordinates(8), 0), UserError);
  DictionarySpec spec;
  spec.kind = DictionaryKind::DCT;
  spec.n_inputs = 8;
  spec.n_alpha = 9;
  spec.coords = flat_coordinates(8);
  EXPECT_THROW(build_dictionary(spec), UserError);
  // Points that do not fill a grid have no DCT.
  Coordinates holes = flat_coordinates(5);
  holes.points[4].col = 7;
  EXPECT_THROW(dct_dictionary(holes, 2), UserError);
}

TEST(DictionaryDCT, EveryColumnGetsTheSameLowestAtoms) {
  DictionarySpec spec;
  spec.kind = DictionaryKind::DCT;
  spec.n_inputs = 35;
  spec.n_alpha = 9;
  spec.columns = 3;
  spec.coords = image_coordinates(7, 5, 1);
  const std::vector<float> u_all = build_dictionary(spec);  // (35, 3·9)
  const std::vector<double> atoms = dct_dictionary(spec.coords, 9);  // (35, 9)
  for (int i = 0; i < 35; ++i)
    for (int j = 0; j < 3; ++j)
      for (int a = 0; a < 9; ++a) EXPECT_EQ(u_all[i * 27 + j * 9 + a], static_cast<float>(atoms[i * 9 + a]));
  for (const std::vector<int>& alpha : dictionary_alphas(spec)) EXPECT_TRUE(alpha.empty());
}

// ---- AE (selection; the autoencoder's training is tests/test_autoencoder.cpp) ---------------------

TEST(DictionaryAE, ColumnsAreTheEncoderAtomsAtEachColumnsAlpha) {
  constexpr int kInputs = 19, kAtoms = 41, kAlpha = 7, kColumns = 3;
  std::vector<float> encoder(kInputs * kAtoms);  // (19, 41)
  for (size_t i = 0; i < encoder.size(); ++i) encoder[i] = philox_uniform(3, test_stream(20), i) - 0.5f;
  DictionarySpec spec;
  spec.kind = DictionaryKind::AE;
  spec.n_inputs = kInputs;
  spec.n_alpha = kAlpha;
  spec.columns = kColumns;
  spec.seed = 5;
  spec.layer_index = 1;
  spec.atoms = encoder.data();
  spec.atom_count = kAtoms;
  const std::vector<float> u_all = build_dictionary(spec);  // (19, 3·7)
  const auto alphas = dictionary_alphas(spec);
  ASSERT_EQ(alphas.size(), size_t{kColumns});
  for (int j = 0; j < kColumns; ++j) {
    ASSERT_EQ(alphas[j].size(), size_t{kAlpha});
    // α indexes atoms: the same draw as any kind's, over [0, atom_count) instead of the inputs.
    EXPECT_EQ(alphas[j], draw_alpha(kAtoms, kAlpha, 5, rng_stream(RngStream::kDictionary, 1 * kMaxColumns + j)));
    for (int i = 0; i < kInputs; ++i)
      for (int a = 0; a < kAlpha; ++a)
        EXPECT_EQ(u_all[i * kColumns * kAlpha + j * kAlpha + a], encoder[i * kAtoms + alphas[j][a]]);
  }
  EXPECT_NE(alphas[0], alphas[1]);
  // More atoms per column than the autoencoder has: a UserError naming both numbers.
  spec.n_alpha = kAtoms + 1;
  const std::string message = user_error_message([&] { build_dictionary(spec); });
  EXPECT_NE(message.find(std::to_string(kAtoms)), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(kAtoms + 1)), std::string::npos) << message;
  spec.n_alpha = kAlpha;
  spec.atoms = nullptr;
  EXPECT_THROW(build_dictionary(spec), UserError);
}

// ---- build_dictionary ----------------------------------------------------------------------------

TEST(DictionaryBuild, ColumnBlocksAreEachColumnsDictionary) {
  DictionarySpec spec;
  spec.kind = DictionaryKind::SE;
  spec.n_inputs = 99;
  spec.n_alpha = 17;
  spec.columns = 3;
  spec.seed = 10;
  spec.layer_index = 2;
  spec.coords = image_coordinates(9, 11, 1);
  const std::vector<float> u_all = build_dictionary(spec);  // (99, 3·17)
  ASSERT_EQ(u_all.size(), 99u * 3 * 17);
  const auto alphas = dictionary_alphas(spec);
  for (int j = 0; j < 3; ++j) {
    const std::vector<double> u_j = se_kernel_dictionary(spec.coords, alphas[j], 2.0, 0.1);  // (99, 17)
    for (int i = 0; i < 99; ++i)
      for (int a = 0; a < 17; ++a)
        EXPECT_EQ(u_all[i * 51 + j * 17 + a], static_cast<float>(u_j[i * 17 + a]));
  }
  // Column blocks differ because their α differ.
  auto block = [&](int j) {
    std::vector<float> out;
    for (int i = 0; i < 99; ++i)
      out.insert(out.end(), u_all.begin() + i * 51 + j * 17, u_all.begin() + i * 51 + (j + 1) * 17);
    return out;
  };
  EXPECT_NE(block(0), block(1));
  EXPECT_NE(block(1), block(2));
}

TEST(DictionaryBuild, EveryKindHasTheLayerShape) {
  constexpr int kInputs = 23, kAlpha = 6, kColumns = 2;
  const std::vector<float> data = random_data(40, kInputs, 16);
  for (DictionaryKind kind : kAllKinds) {
    DictionarySpec spec;
    spec.kind = kind;
    spec.n_inputs = kInputs;
    spec.n_alpha = kAlpha;
    spec.columns = kColumns;
    spec.coords = flat_coordinates(kInputs);
    spec.data = data.data();
    spec.data_rows = 40;
    spec.atoms = data.data();  // AE: any (23 × 40) matrix serves as the encoder's 40 atoms
    spec.atom_count = 40;
    const std::vector<float> u_all = build_dictionary(spec);  // (23, 2·6)
    ASSERT_EQ(u_all.size(), size_t{kInputs} * kColumns * kAlpha) << dictionary_kind_name(kind);
    double norm = 0.0;
    for (float x : u_all) {
      EXPECT_TRUE(std::isfinite(x)) << dictionary_kind_name(kind);
      norm += double(x) * x;
    }
    EXPECT_GT(norm, 0.0) << dictionary_kind_name(kind);
  }
}

TEST(DictionaryBuild, EmpiricalKindsNeedData) {
  DictionarySpec spec;
  spec.n_inputs = 10;
  spec.n_alpha = 3;
  for (DictionaryKind kind : {DictionaryKind::Emp, DictionaryKind::Emp2}) {
    spec.kind = kind;
    const std::string message = user_error_message([&] { build_dictionary(spec); });
    EXPECT_NE(message.find("inputs"), std::string::npos) << message;
  }
}

TEST(DictionaryBuild, SeNeedsCoordinatesForEveryInput) {
  DictionarySpec spec;
  spec.kind = DictionaryKind::SE;
  spec.n_inputs = 10;
  spec.n_alpha = 3;
  spec.coords = flat_coordinates(9);
  EXPECT_THROW(build_dictionary(spec), UserError);
}

TEST(DictionaryBuild, ParsesKindNames) {
  for (DictionaryKind kind : kAllKinds)
    EXPECT_EQ(parse_dictionary_kind(dictionary_kind_name(kind)), kind);
  EXPECT_EQ(parse_dictionary_kind("SE"), DictionaryKind::SE);
  const std::string message = user_error_message([] { parse_dictionary_kind("fourier"); });
  for (const char* name : {"fourier", "se", "emp2", "randkernel", "randfixu", "randcon", "dct", "ae"})
    EXPECT_NE(message.find(name), std::string::npos) << message;
}

}  // namespace
}  // namespace uv::dict
