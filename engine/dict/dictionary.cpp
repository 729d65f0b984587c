#include "engine/dict/dictionary.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <sstream>
#include <utility>

#include "engine/core/error.h"
#include "engine/core/philox.h"

namespace uv::dict {

namespace {

// Rows of centred inputs held at once by empirical_covariance: 512 × 1000 doubles is 4 MB, where a
// centred copy of all of MNIST would be 60000 × 784 doubles (376 MB).
constexpr int64_t kCovarianceChunkRows = 512;

// The RNG streams of a layer's random values (RandKernel's G, RandFixU's U) set this bit so they never
// meet the α streams, which use the same layer_index*kMaxColumns + j below it.
constexpr uint64_t kValueStreamBit = uint64_t{1} << 40;
constexpr uint64_t kMaxLayerIndex = (uint64_t{1} << 30) - 1;  // keeps layer*kMaxColumns + j < 2^40

constexpr double kPi = 3.14159265358979323846;

uint64_t alpha_stream(const DictionarySpec& spec, int column) {
  return rng_stream(RngStream::kDictionary, spec.layer_index * kMaxColumns + column);
}

uint64_t value_stream(const DictionarySpec& spec, int column) {
  return rng_stream(RngStream::kDictionary,
                    kValueStreamBit | (spec.layer_index * kMaxColumns + column));
}

// The i-th uniform double of a stream in [0, 1), with 53 random bits (philox_uniform has only 24,
// too coarse for float64 dictionaries).
double uniform53(uint64_t seed, uint64_t stream, uint64_t i) {
  return static_cast<double>(philox_bits64(seed, stream, i) >> 11) * 0x1p-53;
}

// The i-th standard Gaussian of a stream: Box–Muller on the uniform pair (2⌊i/2⌋, 2⌊i/2⌋ + 1); even i
// takes the cosine, odd i the sine, so every pair of uniforms yields two independent normals.
double gaussian(uint64_t seed, uint64_t stream, uint64_t i) {
  const uint64_t pair = i >> 1;
  const double u1 = 1.0 - uniform53(seed, stream, 2 * pair);  // (0, 1]: log stays finite
  const double u2 = uniform53(seed, stream, 2 * pair + 1);
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * kPi * u2;
  return (i & 1) ? radius * std::sin(angle) : radius * std::cos(angle);
}

void check_alpha(const std::vector<int>& alpha, int n_v) {
  UV_CHECK(!alpha.empty(), "α is empty");
  for (int index : alpha)
    UV_CHECK(index >= 0 && index < n_v, "α index " << index << " outside [0, " << n_v << ")");
}

const std::pair<const char*, DictionaryKind> kKindNames[] = {
    {"se", DictionaryKind::SE},
    {"emp", DictionaryKind::Emp},
    {"emp2", DictionaryKind::Emp2},
    {"randkernel", DictionaryKind::RandKernel},
    {"randfixu", DictionaryKind::RandFixU},
    {"randcon", DictionaryKind::RandCon},
    {"dct", DictionaryKind::DCT},
    {"ae", DictionaryKind::AE},
};

// The grid of a coordinate set: coordinates are whole numbers from 0, and every (row, col, channel)
// of the rows × cols × channels box appears exactly once (image_coordinates, flat_coordinates).
struct Grid {
  int rows = 0, cols = 0, channels = 0;
};

Grid coordinate_grid(const Coordinates& coords) {
  Grid grid;
  for (const Point& p : coords.points) {
    UV_REQUIRE(p.row >= 0 && p.col >= 0 && p.channel >= 0 && p.row == std::floor(p.row) &&
                   p.col == std::floor(p.col) && p.channel == std::floor(p.channel),
               "the dct dictionary needs whole-number grid coordinates, got (" << p.row << ", " << p.col
                                                                                 << ", " << p.channel << ")");
    grid.rows = std::max(grid.rows, static_cast<int>(p.row) + 1);
    grid.cols = std::max(grid.cols, static_cast<int>(p.col) + 1);
    grid.channels = std::max(grid.channels, static_cast<int>(p.channel) + 1);
  }
  const size_t cells = static_cast<size_t>(grid.rows) * grid.cols * grid.channels;
  UV_REQUIRE(cells == coords.points.size(),
             "the dct dictionary needs a full rows x cols x channels grid: " << coords.points.size()
                 << " points span " << grid.rows << "x" << grid.cols << "x" << grid.channels);
  std::vector<char> seen(cells, 0);
  for (const Point& p : coords.points) {
    char& cell = seen[(static_cast<size_t>(p.row) * grid.cols + static_cast<size_t>(p.col)) * grid.channels +
                      static_cast<size_t>(p.channel)];
    UV_REQUIRE(!cell, "the dct dictionary got the point (" << p.row << ", " << p.col << ", " << p.channel
                                                           << ") twice");
    cell = 1;
  }
  return grid;
}

// The k-th orthonormal DCT-II basis vector of length n at position x: c_k·cos(π(2x + 1)k / (2n)).
double dct_basis(int k, int n, double x) {
  const double scale = std::sqrt((k == 0 ? 1.0 : 2.0) / n);
  return scale * std::cos(kPi * (2.0 * x + 1.0) * k / (2.0 * n));
}

}  // namespace

// ---- coordinates ---------------------------------------------------------------------------------

Coordinates image_coordinates(int rows, int cols, int channels) {
  UV_REQUIRE(rows >= 1 && cols >= 1 && channels >= 1,
             "image coordinates need positive sizes, got " << rows << "x" << cols << "x" << channels);
  Coordinates coords;
  coords.points.reserve(static_cast<size_t>(rows) * cols * channels);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      for (int ch = 0; ch < channels; ++ch) coords.points.push_back(Point{double(r), double(c), double(ch)});
  return coords;
}

Coordinates flat_coordinates(int n) {
  UV_REQUIRE(n >= 1, "flat coordinates need n >= 1, got " << n);
  Coordinates coords;
  coords.points.reserve(n);
  for (int i = 0; i < n; ++i) coords.points.push_back(Point{0.0, double(i), 0.0});
  return coords;
}

// ---- α ---------------------------------------------------------------------------------------------

std::vector<int> draw_alpha(int n_inputs, int n_alpha, uint64_t seed, uint64_t stream) {
  UV_REQUIRE(n_alpha >= 1 && n_alpha <= n_inputs,
             "n_alpha = " << n_alpha << " must be between 1 and n_inputs = " << n_inputs);
  std::vector<int> order(n_inputs);  // (n_inputs): the first k entries are the picks so far
  std::iota(order.begin(), order.end(), 0);
  uint64_t counter = 0;  // every 64-bit draw, rejected or not, takes the next offset of the stream
  for (int k = 0; k < n_alpha; ++k) {
    const uint64_t bound = static_cast<uint64_t>(n_inputs - k);
    // Values below 2^64 mod bound would make the low residues one count more likely: reject them, so
    // the accepted range holds a whole multiple of bound values.
    const uint64_t threshold = (0 - bound) % bound;
    uint64_t bits;
    do {
      bits = philox_bits64(seed, stream, counter++);
    } while (bits < threshold);
    std::swap(order[k], order[k + static_cast<int>(bits % bound)]);
  }
  order.resize(n_alpha);
  std::sort(order.begin(), order.end());
  return order;
}

// ---- kernels and kernel ridge regression ---------------------------------------------------------

double se_kernel(const Point& a, const Point& b, double length_scale) {
  if (a.channel != b.channel) return 0.0;
  const double dr = a.row - b.row, dc = a.col - b.col;
  return std::exp(-(dr * dr + dc * dc) / (2.0 * length_scale * length_scale));
}

std::vector<double> kernel_ridge_dictionary(const std::vector<double>& k_alpha_all,
                                            const std::vector<int>& alpha, int n_v, double ridge) {
  const int n_alpha = static_cast<int>(alpha.size());
  check_alpha(alpha, n_v);
  UV_CHECK(k_alpha_all.size() == static_cast<size_t>(n_alpha) * n_v,
           "k_α has " << k_alpha_all.size() << " entries, expected " << n_alpha << "x" << n_v);
  UV_REQUIRE(std::isfinite(ridge) && ridge >= 0.0, "ridge λ must be finite and >= 0, got " << ridge);

  std::vector<double> gram(static_cast<size_t>(n_alpha) * n_alpha);  // (n_alpha, n_alpha): K_α + λI
  for (int a = 0; a < n_alpha; ++a) {
    for (int b = 0; b < n_alpha; ++b) gram[a * n_alpha + b] = k_alpha_all[size_t(a) * n_v + alpha[b]];
    gram[a * n_alpha + a] += ridge;
  }
  int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n_alpha, gram.data(), n_alpha);
  UV_CHECK(info >= 0, "LAPACKE_dpotrf rejected argument " << -info);
  UV_REQUIRE(info == 0, "kernel ridge: K_α + λI (" << n_alpha << "x" << n_alpha
                            << ") is not positive definite at ridge λ = " << ridge << " (leading minor "
                            << info << " fails); use a larger ridge");

  std::vector<double> solved = k_alpha_all;  // (n_alpha, n_v): becomes (K_α + λI)⁻¹ k_α
  info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', n_alpha, n_v, gram.data(), n_alpha, solved.data(), n_v);
  UV_CHECK(info == 0, "LAPACKE_dpotrs failed with info " << info);

  // U = k_αᵀ (K_α + λI)⁻¹ = ((K_α + λI)⁻¹ k_α)ᵀ because K_α + λI is symmetric.
  std::vector<double> u(static_cast<size_t>(n_v) * n_alpha);  // (n_v, n_alpha)
  for (int a = 0; a < n_alpha; ++a)
    for (int i = 0; i < n_v; ++i) u[size_t(i) * n_alpha + a] = solved[size_t(a) * n_v + i];
  return u;
}

std::vector<double> se_kernel_dictionary(const Coordinates& coords, const std::vector<int>& alpha,
                                         double length_scale, double ridge) {
  UV_REQUIRE(std::isfinite(length_scale) && length_scale > 0.0,
             "SE length scale must be finite and > 0, got " << length_scale);
  const int n_v = static_cast<int>(coords.points.size());
  const int n_alpha = static_cast<int>(alpha.size());
  check_alpha(alpha, n_v);
  std::vector<double> k_alpha_all(static_cast<size_t>(n_alpha) * n_v);  // (n_alpha, n_v)
  for (int a = 0; a < n_alpha; ++a)
    for (int i = 0; i < n_v; ++i)
      k_alpha_all[size_t(a) * n_v + i] = se_kernel(coords.points[alpha[a]], coords.points[i], length_scale);
  return kernel_ridge_dictionary(k_alpha_all, alpha, n_v, ridge);
}

std::vector<double> empirical_covariance(const float* inputs, int64_t n_samples, int d, bool squared) {
  UV_REQUIRE(n_samples >= 2, "empirical covariance needs at least 2 samples, got " << n_samples);
  UV_CHECK(inputs != nullptr && d >= 1, "empirical covariance of " << d << " null or empty columns");
  auto value = [&](int64_t row, int col) {
    const double x = inputs[row * d + col];
    return squared ? x * x : x;
  };

  // Two passes (mean first, then centred products) rather than Σxxᵀ - n·mmᵀ, which loses the digits
  // of the covariance when the mean is large against the spread (sigmoid activations near 1).
  std::vector<double> mean(d, 0.0);  // (d)
  for (int64_t row = 0; row < n_samples; ++row)
    for (int col = 0; col < d; ++col) mean[col] += value(row, col);
  for (double& m : mean) m /= static_cast<double>(n_samples);

  std::vector<double> cov(static_cast<size_t>(d) * d, 0.0);  // (d, d): upper triangle accumulated
  const int64_t chunk_capacity = std::min(n_samples, kCovarianceChunkRows);
  std::vector<double> centred(static_cast<size_t>(chunk_capacity) * d);  // (chunk_capacity, d)
  for (int64_t start = 0; start < n_samples; start += chunk_capacity) {
    const int rows = static_cast<int>(std::min(chunk_capacity, n_samples - start));
    for (int r = 0; r < rows; ++r)
      for (int col = 0; col < d; ++col) centred[size_t(r) * d + col] = value(start + r, col) - mean[col];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0, centred.data(), d, 1.0, cov.data(), d);
  }

  const double scale = 1.0 / static_cast<double>(n_samples - 1);
  for (int r = 0; r < d; ++r) {
    for (int c = r; c < d; ++c) {
      cov[size_t(r) * d + c] *= scale;
      cov[size_t(c) * d + r] = cov[size_t(r) * d + c];
    }
  }
  return cov;
}

std::vector<double> covariance_dictionary(const std::vector<double>& cov, const std::vector<int>& alpha,
                                          double ridge) {
  const int d = static_cast<int>(std::lround(std::sqrt(static_cast<double>(cov.size()))));
  UV_CHECK(static_cast<size_t>(d) * d == cov.size(),
           "kernel matrix with " << cov.size() << " entries is not square");
  const int n_alpha = static_cast<int>(alpha.size());
  check_alpha(alpha, d);
  std::vector<double> k_alpha_all(static_cast<size_t>(n_alpha) * d);  // (n_alpha, d): rows α of cov
  for (int a = 0; a < n_alpha; ++a)
    std::copy_n(cov.begin() + size_t(alpha[a]) * d, d, k_alpha_all.begin() + size_t(a) * d);
  return kernel_ridge_dictionary(k_alpha_all, alpha, d, ridge);
}

std::vector<double> rand_kernel(int d, uint64_t seed, uint64_t stream) {
  UV_REQUIRE(d >= 1, "random kernel needs d >= 1, got " << d);
  std::vector<double> sym(static_cast<size_t>(d) * d);  // (d, d): S = (G + Gᵀ)/2, G(r, c) = draw r*d + c
  for (int r = 0; r < d; ++r)
    for (int c = 0; c < d; ++c)
      sym[size_t(r) * d + c] = 0.5 * (gaussian(seed, stream, uint64_t(r) * d + c) +
                                      gaussian(seed, stream, uint64_t(c) * d + r));

  std::vector<double> eigenvalues(d);  // (d)
  const int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', d, sym.data(), d, eigenvalues.data());
  UV_CHECK(info == 0, "LAPACKE_dsyev failed with info " << info);

  // sym now holds Q (columns are eigenvectors). K = Q·|Λ|·Qᵀ = B·Bᵀ with B = Q·|Λ|^½; dsyrk on B makes
  // K exactly symmetric and positive semi-definite by construction.
  for (int r = 0; r < d; ++r)
    for (int c = 0; c < d; ++c) sym[size_t(r) * d + c] *= std::sqrt(std::fabs(eigenvalues[c]));
  std::vector<double> kernel(static_cast<size_t>(d) * d, 0.0);  // (d, d)
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, d, d, 1.0, sym.data(), d, 0.0, kernel.data(), d);
  for (int r = 0; r < d; ++r)
    for (int c = r + 1; c < d; ++c) kernel[size_t(c) * d + r] = kernel[size_t(r) * d + c];
  return kernel;
}

// ---- dictionaries that are not kernel ridge ------------------------------------------------------

std::vector<double> rand_fix_u(int n_v, int n_alpha, uint64_t seed, uint64_t stream) {
  UV_REQUIRE(n_v >= 1 && n_alpha >= 1, "RandFixU needs positive sizes, got " << n_v << "x" << n_alpha);
  std::vector<double> u(static_cast<size_t>(n_v) * n_alpha);  // (n_v, n_alpha)
  for (size_t i = 0; i < u.size(); ++i) u[i] = -0.1 + 0.2 * uniform53(seed, stream, i);
  return u;
}

std::vector<double> rand_con(int n_v, const std::vector<int>& alpha) {
  check_alpha(alpha, n_v);
  const size_t n_alpha = alpha.size();
  std::vector<double> u(static_cast<size_t>(n_v) * n_alpha, 0.0);  // (n_v, n_alpha)
  for (size_t j = 0; j < n_alpha; ++j) u[size_t(alpha[j]) * n_alpha + j] = 1.0;
  return u;
}

std::vector<double> dct_dictionary(const Coordinates& coords, int n_alpha) {
  const int n_v = static_cast<int>(coords.points.size());
  UV_REQUIRE(n_v >= 1, "the dct dictionary needs at least one input");
  UV_REQUIRE(n_alpha >= 1 && n_alpha <= n_v,
             "the dct dictionary has " << n_v << " atoms (one per input), so n_alpha = " << n_alpha
                                       << " must be between 1 and " << n_v);
  const Grid grid = coordinate_grid(coords);

  struct Frequency {
    int u, v, channel;
  };
  std::vector<Frequency> order;  // (n_v): every atom, lowest frequency first
  order.reserve(n_v);
  for (int u = 0; u < grid.rows; ++u)
    for (int v = 0; v < grid.cols; ++v)
      for (int ch = 0; ch < grid.channels; ++ch) order.push_back({u, v, ch});
  std::stable_sort(order.begin(), order.end(), [](const Frequency& a, const Frequency& b) {
    if (a.u + a.v != b.u + b.v) return a.u + a.v < b.u + b.v;
    if (a.u != b.u) return a.u < b.u;
    return a.channel < b.channel;
  });

  std::vector<double> u(static_cast<size_t>(n_v) * n_alpha);  // (n_v, n_alpha)
  for (int i = 0; i < n_v; ++i) {
    const Point& p = coords.points[i];
    for (int a = 0; a < n_alpha; ++a) {
      const Frequency& f = order[a];
      u[size_t(i) * n_alpha + a] = p.channel == f.channel ? dct_basis(f.u, grid.rows, p.row) *
                                                                dct_basis(f.v, grid.cols, p.col)
                                                          : 0.0;
    }
  }
  return u;
}

std::vector<double> autoencoder_dictionary(const float* encoder, int n_v, int atom_count,
                                           const std::vector<int>& alpha) {
  UV_REQUIRE(encoder != nullptr && atom_count >= 1,
             "the ae dictionary needs the trained autoencoder's encoder weights");
  check_alpha(alpha, atom_count);
  const size_t n_alpha = alpha.size();
  std::vector<double> u(static_cast<size_t>(n_v) * n_alpha);  // (n_v, n_alpha)
  for (int i = 0; i < n_v; ++i)
    for (size_t a = 0; a < n_alpha; ++a)
      u[size_t(i) * n_alpha + a] = encoder[size_t(i) * atom_count + size_t(alpha[a])];
  return u;
}

// ---- the engine's entry point --------------------------------------------------------------------

DictionaryKind parse_dictionary_kind(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  for (const auto& [kind_name, kind] : kKindNames)
    if (lower == kind_name) return kind;
  std::ostringstream accepted;
  for (const auto& entry : kKindNames) accepted << (&entry == kKindNames ? "" : ", ") << entry.first;
  UV_FAIL("unknown dictionary '" << name << "'; accepted: " << accepted.str());
}

const char* dictionary_kind_name(DictionaryKind kind) {
  for (const auto& [kind_name, entry_kind] : kKindNames)
    if (entry_kind == kind) return kind_name;
  UV_CHECK(false, "dictionary kind " << static_cast<int>(kind) << " has no name");
  return "";
}

std::vector<std::vector<int>> dictionary_alphas(const DictionarySpec& spec) {
  UV_REQUIRE(spec.columns >= 1 && spec.columns <= kMaxColumns,
             "columns = " << spec.columns << " must be between 1 and " << kMaxColumns);
  UV_CHECK(spec.layer_index <= kMaxLayerIndex, "layer index " << spec.layer_index << " too large");
  if (spec.kind == DictionaryKind::DCT) return std::vector<std::vector<int>>(spec.columns);
  // AE picks atoms (the autoencoder's hidden units), every other kind picks inputs.
  const bool atoms = spec.kind == DictionaryKind::AE;
  const int population = atoms ? spec.atom_count : spec.n_inputs;
  UV_REQUIRE(!atoms || (spec.n_alpha >= 1 && spec.n_alpha <= spec.atom_count),
             "the ae dictionary draws n_alpha = " << spec.n_alpha << " of its " << spec.atom_count
                                                  << " atoms: n_alpha must be between 1 and ae_atoms");
  std::vector<std::vector<int>> alphas;  // (columns, n_alpha)
  alphas.reserve(spec.columns);
  for (int j = 0; j < spec.columns; ++j)
    alphas.push_back(draw_alpha(population, spec.n_alpha, spec.seed, alpha_stream(spec, j)));
  return alphas;
}

std::vector<float> build_dictionary(const DictionarySpec& spec) {
  const std::vector<std::vector<int>> alphas = dictionary_alphas(spec);
  const int n_v = spec.n_inputs, n_alpha = spec.n_alpha;

  // The kernel matrix all columns share (n_v, n_v), for the kinds whose kernel is not a formula.
  std::vector<double> shared_kernel;
  switch (spec.kind) {
    case DictionaryKind::SE:
      UV_REQUIRE(spec.coords.points.size() == static_cast<size_t>(n_v),
                 "the se dictionary needs coordinates for all " << n_v << " inputs, got "
                                                                << spec.coords.points.size());
      break;
    case DictionaryKind::Emp:
    case DictionaryKind::Emp2:
      UV_REQUIRE(spec.data != nullptr && spec.data_rows >= 2,
                 "the " << dictionary_kind_name(spec.kind)
                        << " dictionary needs the layer's inputs (at least 2 rows), got "
                        << (spec.data == nullptr ? 0 : spec.data_rows) << " rows");
      shared_kernel = empirical_covariance(spec.data, spec.data_rows, n_v, spec.kind == DictionaryKind::Emp2);
      break;
    case DictionaryKind::RandKernel:
      shared_kernel = rand_kernel(n_v, spec.seed, value_stream(spec, 0));
      break;
    case DictionaryKind::DCT:
      UV_REQUIRE(spec.coords.points.size() == static_cast<size_t>(n_v),
                 "the dct dictionary needs coordinates for all " << n_v << " inputs, got "
                                                                 << spec.coords.points.size());
      break;
    case DictionaryKind::AE:
      UV_REQUIRE(spec.atoms != nullptr && spec.atom_count >= 1,
                 "the ae dictionary needs the trained autoencoder's encoder weights (" << n_v
                                                                                      << " x ae_atoms)");
      break;
    case DictionaryKind::RandFixU:
    case DictionaryKind::RandCon:
      break;
  }
  // The DCT atoms are the same for every column: computed once.
  const std::vector<double> dct =
      spec.kind == DictionaryKind::DCT ? dct_dictionary(spec.coords, n_alpha) : std::vector<double>{};

  const size_t width = static_cast<size_t>(spec.columns) * n_alpha;
  std::vector<float> u_all(static_cast<size_t>(n_v) * width);  // (n_v, columns·n_alpha)
  for (int j = 0; j < spec.columns; ++j) {
    std::vector<double> u;  // (n_v, n_alpha): U_j
    switch (spec.kind) {
      case DictionaryKind::SE:
        u = se_kernel_dictionary(spec.coords, alphas[j], spec.length_scale, spec.ridge);
        break;
      case DictionaryKind::Emp:
      case DictionaryKind::Emp2:
      case DictionaryKind::RandKernel:
        u = covariance_dictionary(shared_kernel, alphas[j], spec.ridge);
        break;
      case DictionaryKind::RandFixU:
        u = rand_fix_u(n_v, n_alpha, spec.seed, value_stream(spec, j));
        break;
      case DictionaryKind::RandCon:
        u = rand_con(n_v, alphas[j]);
        break;
      case DictionaryKind::DCT:
        u = dct;
        break;
      case DictionaryKind::AE:
        u = autoencoder_dictionary(spec.atoms, n_v, spec.atom_count, alphas[j]);
        break;
    }
    for (int i = 0; i < n_v; ++i)
      for (int a = 0; a < n_alpha; ++a)
        u_all[size_t(i) * width + size_t(j) * n_alpha + a] = static_cast<float>(u[size_t(i) * n_alpha + a]);
  }
  return u_all;
}

}  // namespace uv::dict
