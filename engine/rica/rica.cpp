#include "engine/rica/rica.h"

#include <cblas.h>
#include <lapacke.h>
#include <lbfgs.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/core/clock.h"
#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "engine/dict/dictionary.h"

namespace uv::rica {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Patches go through the sparsity term this many at a time, so the activations of a chunk
// (kChunkRows × k doubles) stay small however many patches there are.
constexpr int64_t kChunkRows = 4096;

// Uniform in [0, bound) without modulo bias: draws below 2^64 mod bound are redrawn (the next
// index of the same stream; `next` advances past every draw used).
uint64_t draw_below(uint64_t bound, uint64_t seed, uint64_t stream, uint64_t& next) {
  const uint64_t reject_below = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t bits = philox_bits64(seed, stream, next++);
    if (bits >= reject_below) return bits % bound;
  }
}

const char* lbfgs_status_name(int code) {
  switch (code) {
    case LBFGS_SUCCESS: return "converged";
    case LBFGS_STOP: return "stopped (objective change below delta)";
    case LBFGS_ALREADY_MINIMIZED: return "already minimised";
    case LBFGSERR_MAXIMUMITERATION: return "max iterations";
    case LBFGSERR_ROUNDING_ERROR: return "rounding error (line search can make no progress)";
    case LBFGSERR_MINIMUMSTEP: return "line search step below minimum";
    case LBFGSERR_MAXIMUMSTEP: return "line search step above maximum";
    case LBFGSERR_MAXIMUMLINESEARCH: return "line search iterations exhausted";
    case LBFGSERR_WIDTHTOOSMALL: return "interval of uncertainty too small";
    case LBFGSERR_INCREASEGRADIENT: return "search direction increases the objective";
    default: return "other liblbfgs error";
  }
}

// Filters as CSV: one filter per line, its `dims` values in HWC patch order.
void write_matrix_csv(const fs::path& path, const std::vector<double>& values, int rows, int cols) {
  std::ofstream out(path, std::ios::trunc);
  UV_REQUIRE(out.good(), "cannot write " << path.string());
  out << std::setprecision(9);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) out << (c ? "," : "") << values[size_t(r) * cols + c];
    out << '\n';
  }
  UV_REQUIRE(out.good(), "writing " << path.string() << " failed");
}

std::string fraction_label(double fraction) {
  std::ostringstream text;
  text << fraction;
  return text.str();
}

}  // namespace

// ---- patches -----------------------------------------------------------------------------------------

PatchSet sample_patches(const data::Dataset& images, const PatchSampling& sampling) {
  UV_REQUIRE(sampling.side >= 1, "patch size " << sampling.side << " must be at least 1");
  UV_REQUIRE(sampling.side <= images.rows && sampling.side <= images.cols,
             "patch size " << sampling.side << " is larger than the " << images.name << " images ("
                           << images.rows << "x" << images.cols << ")");
  UV_REQUIRE(sampling.count >= 1, "patch count " << sampling.count << " must be at least 1");
  UV_REQUIRE(images.count >= 1, "no images to draw patches from in " << images.name);
  PatchSet patches;
  patches.side = sampling.side;
  patches.channels = images.channels;
  patches.count = sampling.count;
  const int n = patches.dims();
  const int row_span = sampling.side * images.channels;  // values of one patch row
  patches.values.resize(static_cast<size_t>(sampling.count) * n);
  uint64_t next = 0;
  const int64_t max_draws = 100 * sampling.count;
  int64_t taken = 0, draws = 0;
  while (taken < sampling.count) {
    UV_REQUIRE(draws < max_draws, "only " << taken << " of " << sampling.count << " patches of "
                                          << images.name << " in " << max_draws
                                          << " draws have a pixel standard deviation of at least "
                                          << sampling.min_std);
    ++draws;
    const int64_t image = static_cast<int64_t>(draw_below(images.count, sampling.seed, sampling.stream, next));
    const int row = static_cast<int>(draw_below(images.rows - sampling.side + 1, sampling.seed, sampling.stream, next));
    const int col = static_cast<int>(draw_below(images.cols - sampling.side + 1, sampling.seed, sampling.stream, next));
    const float* source = images.image(image);
    double* patch = patches.values.data() + taken * n;
    for (int r = 0; r < sampling.side; ++r) {
      const float* line = source + (static_cast<int64_t>(row + r) * images.cols + col) * images.channels;
      for (int v = 0; v < row_span; ++v) patch[r * row_span + v] = line[v];
    }
    double mean = 0.0, square = 0.0;
    for (int i = 0; i < n; ++i) mean += patch[i];
    mean /= n;
    for (int i = 0; i < n; ++i) square += (patch[i] - mean) * (patch[i] - mean);
    if (std::sqrt(square / n) >= sampling.min_std) ++taken;
  }
  return patches;
}

void remove_patch_means(PatchSet& patches) {
  const int n = patches.dims();
  for (int64_t i = 0; i < patches.count; ++i) {
    double* patch = patches.values.data() + i * n;
    double mean = 0.0;
    for (int d = 0; d < n; ++d) mean += patch[d];
    mean /= n;
    for (int d = 0; d < n; ++d) patch[d] -= mean;
  }
}

// ---- whitening --------------------------------------------------------------------------------------

std::vector<double> second_moment(const PatchSet& patches) {
  const int n = patches.dims();
  UV_CHECK(patches.count >= 1, "second moment of no patches");
  std::vector<double> moment(static_cast<size_t>(n) * n, 0.0);  // (n, n)
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, static_cast<int>(patches.count),
              1.0 / static_cast<double>(patches.count), patches.values.data(), n, 0.0, moment.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j) moment[size_t(i) * n + j] = moment[size_t(j) * n + i];
  return moment;
}

Whitening fit_zca(const PatchSet& patches, double epsilon) {
  UV_REQUIRE(std::isfinite(epsilon) && epsilon >= 0.0, "ZCA epsilon must be >= 0, got " << epsilon);
  UV_REQUIRE(patches.count >= 2, "ZCA whitening needs at least 2 patches, got " << patches.count);
  const int n = patches.dims();
  Whitening whitening;
  whitening.dims = n;
  whitening.epsilon = epsilon;
  whitening.mean.assign(n, 0.0);
  for (int64_t i = 0; i < patches.count; ++i)
    for (int d = 0; d < n; ++d) whitening.mean[d] += patches.patch(i)[d];
  for (double& v : whitening.mean) v /= static_cast<double>(patches.count);

  // Covariance in two passes (centre, then products), as dict::empirical_covariance, but divided by
  // m: whitened patches then have second moment exactly I (ε = 0) over the same patches.
  PatchSet centred = patches;
  for (int64_t i = 0; i < centred.count; ++i)
    for (int d = 0; d < n; ++d) centred.values[size_t(i) * n + d] -= whitening.mean[d];
  std::vector<double> basis = second_moment(centred);  // (n, n): C, then its eigenvectors (columns)
  whitening.eigenvalues.assign(n, 0.0);
  const int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, basis.data(), n, whitening.eigenvalues.data());
  UV_CHECK(info == 0, "LAPACKE_dsyevd failed with info " << info);

  // zca = E·diag(s)·Eᵀ with s = 1/sqrt(d + ε); a direction of variance ~0 (round-off around an exact
  // zero, e.g. the per-patch mean) gets scale 0 rather than 1/sqrt(round-off) when ε = 0.
  const double largest = std::max(whitening.eigenvalues.back(), 0.0);
  std::vector<double> scaled(basis.size());  // (n, n): E·diag(s)
  for (int a = 0; a < n; ++a) {
    const double d = whitening.eigenvalues[a];
    const double s = d + epsilon > 1e-12 * largest && d + epsilon > 0.0 ? 1.0 / std::sqrt(d + epsilon) : 0.0;
    for (int i = 0; i < n; ++i) scaled[size_t(i) * n + a] = basis[size_t(i) * n + a] * s;
  }
  whitening.zca.assign(size_t(n) * n, 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, scaled.data(), n, basis.data(), n, 0.0,
              whitening.zca.data(), n);
  return whitening;
}

void apply_whitening(const Whitening& whitening, PatchSet& patches) {
  const int n = patches.dims();
  UV_CHECK(whitening.dims == n, "whitening of " << whitening.dims << " dims applied to " << n);
  for (int64_t i = 0; i < patches.count; ++i)
    for (int d = 0; d < n; ++d) patches.values[size_t(i) * n + d] -= whitening.mean[d];
  // Rows are patches: X_white = X_centred · zcaᵀ = X_centred · zca (symmetric).
  std::vector<double> white(patches.values.size());
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(patches.count), n, n, 1.0,
              patches.values.data(), n, whitening.zca.data(), n, 0.0, white.data(), n);
  patches.values = std::move(white);
}

// ---- the model ----------------------------------------------------------------------------------------

int64_t RicaModel::learned_count() const {
  return predicted() ? int64_t{n_alpha} * features : int64_t{features} * dims;
}

std::vector<double> RicaModel::filters(const double* params) const {
  if (!predicted()) return std::vector<double>(params, params + size_t(features) * dims);
  const int group = features / columns;  // k/J filters per column
  const int width = columns * n_alpha;   // U's row length
  std::vector<double> w(size_t(features) * dims);  // (k, n)
  for (int j = 0; j < columns; ++j) {
    // W[group j] (k/J × n) = V_jᵀ (k/J × n_α) · U_jᵀ (n_α × n).
    const double* v = params + size_t(j) * n_alpha * group;  // V_j (n_α, k/J)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, group, dims, n_alpha, 1.0, v, group,
                dictionary.data() + size_t(j) * n_alpha, width, 0.0, w.data() + size_t(j) * group * dims, dims);
  }
  return w;
}

void RicaModel::filter_gradient_to_params(const double* grad_filters, double* grad_params) const {
  if (!predicted()) {
    std::copy(grad_filters, grad_filters + size_t(features) * dims, grad_params);
    return;
  }
  const int group = features / columns;
  const int width = columns * n_alpha;
  for (int j = 0; j < columns; ++j) {
    // ∂J/∂V_j (n_α × k/J) = U_jᵀ (n_α × n) · G[group j]ᵀ (n × k/J).
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, n_alpha, group, dims, 1.0,
                dictionary.data() + size_t(j) * n_alpha, width, grad_filters + size_t(j) * group * dims, dims,
                0.0, grad_params + size_t(j) * n_alpha * group, group);
  }
}

RicaModel make_model(const ModelSpec& spec) {
  UV_REQUIRE(spec.fraction > 0.0 && spec.fraction <= 1.0,
             "fraction learned " << spec.fraction << " must be in (0, 1]");
  UV_REQUIRE(spec.features >= 1, "features = " << spec.features << " must be at least 1");
  UV_REQUIRE(spec.columns >= 1 && spec.features % spec.columns == 0,
             "columns = " << spec.columns << " must be at least 1 and divide features = " << spec.features);
  RicaModel model;
  model.dims = spec.side * spec.side * spec.channels;
  model.features = spec.features;
  model.columns = spec.columns;
  if (spec.fraction >= 1.0) return model;  // ordinary RICA: W learned directly
  model.n_alpha = static_cast<int>(model.dims * spec.fraction);  // int(n·p), as the authors' code
  UV_REQUIRE(model.n_alpha >= 1, "fraction " << spec.fraction << " of " << model.dims
                                             << " patch values learns no weight (n_alpha = 0)");
  dict::DictionarySpec dictionary;
  dictionary.kind = dict::DictionaryKind::SE;
  dictionary.n_inputs = model.dims;
  dictionary.n_alpha = model.n_alpha;
  dictionary.columns = spec.columns;
  dictionary.length_scale = spec.length_scale;
  dictionary.ridge = spec.ridge;
  dictionary.seed = spec.seed;
  dictionary.coords = dict::image_coordinates(spec.side, spec.side, spec.channels);
  // α per column as build_dictionary draws it; U in float64 from the same kernel-ridge solve
  // (build_dictionary narrows to float for the network layers).
  const std::vector<std::vector<int>> alphas = dict::dictionary_alphas(dictionary);
  const int width = spec.columns * model.n_alpha;
  model.dictionary.assign(size_t(model.dims) * width, 0.0);
  for (int j = 0; j < spec.columns; ++j) {
    const std::vector<double> u =
        dict::se_kernel_dictionary(dictionary.coords, alphas[j], spec.length_scale, spec.ridge);  // (n, n_α)
    for (int i = 0; i < model.dims; ++i)
      for (int a = 0; a < model.n_alpha; ++a)
        model.dictionary[size_t(i) * width + size_t(j) * model.n_alpha + a] = u[size_t(i) * model.n_alpha + a];
  }
  return model;
}

// ---- the objective ----------------------------------------------------------------------------------------

ObjectiveValue rica_objective(const std::vector<double>& filters, int features, const PatchSet& patches,
                              const std::vector<double>& moment, const RicaParams& params,
                              double* grad_filters) {
  const int n = patches.dims(), k = features;
  const int64_t m = patches.count;
  UV_CHECK(filters.size() == size_t(k) * n, "filters hold " << filters.size() << " values, expected " << k << "x" << n);
  UV_CHECK(moment.size() == size_t(n) * n, "second moment is not " << n << "x" << n);
  UV_CHECK(m >= 1, "RICA objective over no patches");
  ObjectiveValue value;

  // Sparsity: (λ/m)·Σ_i Σ_j g(W_j x_i); ∂/∂W = (λ/m)·g'(A)ᵀ·X with A = X·Wᵀ (m × k), g'(u) = u/g(u).
  if (grad_filters != nullptr) std::fill(grad_filters, grad_filters + size_t(k) * n, 0.0);
  const double scale = params.lambda / static_cast<double>(m);
  std::vector<double> activations(size_t(std::min(m, kChunkRows)) * k);  // (chunk, k): A, then g'(A)
  double sparsity = 0.0;
  for (int64_t begin = 0; begin < m; begin += kChunkRows) {
    const int rows = static_cast<int>(std::min(kChunkRows, m - begin));
    const double* x = patches.patch(begin);  // (rows, n)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, n, 1.0, x, n, filters.data(), n, 0.0,
                activations.data(), k);
    for (size_t e = 0; e < size_t(rows) * k; ++e) {
      const double g = std::sqrt(activations[e] * activations[e] + params.l1_epsilon);
      sparsity += g;
      activations[e] /= g;
    }
    if (grad_filters != nullptr)  // G (k × n) += scale · g'(A)ᵀ (k × rows) · X (rows × n)
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, rows, scale, activations.data(), k, x, n, 1.0,
                  grad_filters, n);
  }
  value.sparsity = scale * sparsity;

  // Reconstruction: ½·tr(M C M) with M = WᵀW − I; ∂/∂W = W·(P + Pᵀ), P = C·M.
  std::vector<double> gram(size_t(n) * n);  // (n, n): M
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, k, 1.0, filters.data(), n, filters.data(), n, 0.0,
              gram.data(), n);
  for (int i = 0; i < n; ++i) gram[size_t(i) * n + i] -= 1.0;
  std::vector<double> product(size_t(n) * n);  // (n, n): P = C·M
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, moment.data(), n, gram.data(), n, 0.0,
              product.data(), n);
  double trace = 0.0;  // tr(M·C·M) = ⟨M, C·M⟩ (M symmetric)
  for (size_t e = 0; e < gram.size(); ++e) trace += gram[e] * product[e];
  value.reconstruction = 0.5 * trace;
  if (grad_filters != nullptr) {
    std::vector<double> sym(size_t(n) * n);  // (n, n): P + Pᵀ
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) sym[size_t(i) * n + j] = product[size_t(i) * n + j] + product[size_t(j) * n + i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, n, n, 1.0, filters.data(), n, sym.data(), n, 1.0,
                grad_filters, n);
  }
  value.total = value.sparsity + value.reconstruction;
  return value;
}

ObjectiveValue model_objective(const RicaModel& model, const double* learned, const PatchSet& patches,
                               const std::vector<double>& moment, const RicaParams& params,
                               double* grad_params) {
  const std::vector<double> w = model.filters(learned);
  if (grad_params == nullptr) return rica_objective(w, model.features, patches, moment, params, nullptr);
  std::vector<double> grad_w(w.size());
  const ObjectiveValue value = rica_objective(w, model.features, patches, moment, params, grad_w.data());
  model.filter_gradient_to_params(grad_w.data(), grad_params);
  return value;
}

// ---- training -----------------------------------------------------------------------------------------------

namespace {

struct LbfgsContext {
  const RicaModel* model;
  const PatchSet* patches;
  const std::vector<double>* moment;
  const RicaParams* params;
  TrainResult* result;
};

lbfgsfloatval_t lbfgs_evaluate(void* instance, const lbfgsfloatval_t* x, lbfgsfloatval_t* g, const int n,
                               const lbfgsfloatval_t step) {
  auto* context = static_cast<LbfgsContext*>(instance);
  ++context->result->evaluations;
  return model_objective(*context->model, x, *context->patches, *context->moment, *context->params, g).total;
}

int lbfgs_progress(void* instance, const lbfgsfloatval_t* x, const lbfgsfloatval_t* g, const lbfgsfloatval_t fx,
                   const lbfgsfloatval_t xnorm, const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n,
                   int k, int ls) {
  auto* context = static_cast<LbfgsContext*>(instance);
  context->result->history.push_back(fx);
  context->result->iterations = k;
  return 0;
}

}  // namespace

TrainResult train_rica(const RicaModel& model, const PatchSet& patches, const RicaParams& params,
                       const TrainSettings& settings) {
  UV_REQUIRE(settings.max_iterations >= 1, "max iterations " << settings.max_iterations << " must be at least 1");
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<double> moment = second_moment(patches);
  const int64_t count = model.learned_count();
  TrainResult result;
  lbfgsfloatval_t* x = lbfgs_malloc(static_cast<int>(count));
  UV_CHECK(x != nullptr, "lbfgs_malloc of " << count << " values failed");
  for (int64_t i = 0; i < count; ++i)
    x[i] = settings.init_scale * (2.0 * philox_uniform(settings.seed, settings.stream, static_cast<uint64_t>(i)) - 1.0);
  result.initial = model_objective(model, x, patches, moment, params, nullptr);

  lbfgs_parameter_t parameters;
  lbfgs_parameter_init(&parameters);
  parameters.max_iterations = settings.max_iterations;
  parameters.epsilon = 1e-6;  // ‖g‖ / max(1, ‖x‖)
  parameters.past = 10;       // stop when J improved by less than delta·J over 10 iterations
  parameters.delta = 1e-7;
  parameters.linesearch = LBFGS_LINESEARCH_MORETHUENTE;
  LbfgsContext context{&model, &patches, &moment, &params, &result};
  lbfgsfloatval_t fx = 0.0;
  const int code = lbfgs(static_cast<int>(count), x, &fx, lbfgs_evaluate, lbfgs_progress, &context, &parameters);
  result.status = lbfgs_status_name(code);
  result.learned.assign(x, x + count);
  lbfgs_free(x);
  // A line-search failure still leaves x at the best point found; anything else is a bug.
  UV_CHECK(code >= 0 || code == LBFGSERR_MAXIMUMITERATION || code == LBFGSERR_ROUNDING_ERROR ||
               code == LBFGSERR_MINIMUMSTEP || code == LBFGSERR_MAXIMUMLINESEARCH ||
               code == LBFGSERR_WIDTHTOOSMALL || code == LBFGSERR_INCREASEGRADIENT,
           "liblbfgs failed with code " << code);
  result.final = model_objective(model, result.learned.data(), patches, moment, params, nullptr);
  UV_REQUIRE(std::isfinite(result.final.total), "RICA objective is not finite after training (" << result.final.total << ")");
  result.seconds = seconds_since(t0);
  return result;
}

// ---- evaluation -------------------------------------------------------------------------------------------------

Evaluation evaluate(const std::vector<double>& filters, int features, const PatchSet& patches,
                    const RicaParams& params) {
  const int n = patches.dims(), k = features;
  const int64_t m = patches.count;
  Evaluation evaluation;
  evaluation.objective = rica_objective(filters, features, patches, second_moment(patches), params, nullptr);
  std::vector<double> activations(size_t(std::min(m, kChunkRows)) * k);       // (chunk, k)
  std::vector<double> reconstruction(size_t(std::min(m, kChunkRows)) * n);  // (chunk, n)
  double error = 0.0, energy = 0.0, abs_sum = 0.0, hoyer = 0.0;
  const double root_k = std::sqrt(static_cast<double>(k));
  for (int64_t begin = 0; begin < m; begin += kChunkRows) {
    const int rows = static_cast<int>(std::min(kChunkRows, m - begin));
    const double* x = patches.patch(begin);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, n, 1.0, x, n, filters.data(), n, 0.0,
                activations.data(), k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1.0, activations.data(), k, filters.data(), n,
                0.0, reconstruction.data(), n);
    for (int r = 0; r < rows; ++r) {
      for (int d = 0; d < n; ++d) {
        const double diff = reconstruction[size_t(r) * n + d] - x[size_t(r) * n + d];
        error += diff * diff;
        energy += x[size_t(r) * n + d] * x[size_t(r) * n + d];
      }
      double l1 = 0.0, l2 = 0.0;
      for (int j = 0; j < k; ++j) {
        const double a = activations[size_t(r) * k + j];
        l1 += std::abs(a);
        l2 += a * a;
      }
      abs_sum += l1;
      if (k > 1 && l2 > 0.0) hoyer += (root_k - l1 / std::sqrt(l2)) / (root_k - 1.0);
    }
  }
  evaluation.relative_reconstruction = energy > 0.0 ? error / energy : 0.0;
  evaluation.mean_abs_activation = abs_sum / (static_cast<double>(m) * k);
  evaluation.hoyer_sparsity = hoyer / static_cast<double>(m);
  return evaluation;
}

// ---- the experiment ------------------------------------------------------------------------------------------------

void validate_options(const ExperimentOptions& options) {
  UV_REQUIRE(data::is_dataset_name(options.dataset),
             "unknown dataset '" << options.dataset << "' (expected one of " << data::kDatasetNames << ")");
  UV_REQUIRE(options.patch >= 2, "--patch " << options.patch << " must be at least 2");
  UV_REQUIRE(options.features >= 1, "--features " << options.features << " must be at least 1");
  UV_REQUIRE(!options.fractions.empty(), "--fractions is empty");
  for (double f : options.fractions)
    UV_REQUIRE(std::isfinite(f) && f > 0.0 && f <= 1.0, "--fractions: " << f << " is outside (0, 1]");
  UV_REQUIRE(options.columns >= 1 && options.features % options.columns == 0,
             "--columns " << options.columns << " must be at least 1 and divide --features " << options.features);
  UV_REQUIRE(options.train_patches >= 2, "--train-patches " << options.train_patches << " must be at least 2");
  UV_REQUIRE(options.test_patches >= 1, "--test-patches " << options.test_patches << " must be at least 1");
  UV_REQUIRE(options.min_patch_std >= 0.0, "--min-patch-std " << options.min_patch_std << " must be >= 0");
  UV_REQUIRE(std::isfinite(options.zca_epsilon) && options.zca_epsilon >= 0.0,
             "--zca-epsilon " << options.zca_epsilon << " must be >= 0");
  UV_REQUIRE(std::isfinite(options.rica.lambda) && options.rica.lambda >= 0.0,
             "--lambda " << options.rica.lambda << " must be >= 0");
  UV_REQUIRE(std::isfinite(options.rica.l1_epsilon) && options.rica.l1_epsilon > 0.0,
             "--l1-epsilon " << options.rica.l1_epsilon << " must be > 0");
  UV_REQUIRE(std::isfinite(options.length_scale) && options.length_scale > 0.0,
             "--length-scale " << options.length_scale << " must be > 0");
  UV_REQUIRE(std::isfinite(options.ridge) && options.ridge > 0.0, "--ridge " << options.ridge << " must be > 0");
  UV_REQUIRE(options.max_iterations >= 1, "--max-iterations " << options.max_iterations << " must be at least 1");
}

namespace {

struct Setting {
  int features;
  double fraction;
  std::string id;  // k<features>_f<fraction>
};

// The requested (features, fraction) pairs, then for each fraction f < 1 the setting that learns as
// many numbers as `features` dense filters: features/f filters at fraction f (rounded to a multiple
// of the columns).
std::vector<Setting> experiment_settings(const ExperimentOptions& options, int dims) {
  std::vector<Setting> settings;
  auto add = [&](int features, double fraction) {
    for (const Setting& s : settings)
      if (s.features == features && s.fraction == fraction) return;
    settings.push_back({features, fraction, "k" + std::to_string(features) + "_f" + fraction_label(fraction)});
  };
  for (double f : options.fractions) add(options.features, f);
  if (options.equal_learned) {
    const int64_t budget = int64_t{options.features} * dims;
    for (double f : options.fractions) {
      if (f >= 1.0) continue;
      const int n_alpha = static_cast<int>(dims * f);
      if (n_alpha < 1) continue;
      int features = static_cast<int>(std::llround(static_cast<double>(budget) / n_alpha));
      features = std::max(options.columns, features / options.columns * options.columns);
      add(features, f);
    }
  }
  return settings;
}

}  // namespace

std::string run_experiment(const ExperimentOptions& options) {
  validate_options(options);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out_dir = options.out_dir.empty() ? "runs/rica-" + timestamp() : options.out_dir;
  UV_REQUIRE(!fs::exists(fs::path(out_dir) / "results.csv") && !fs::exists(fs::path(out_dir) / "rica.json"),
             "--out " << out_dir << " already holds a RICA run; uvtrain never overwrites results");

  const std::string dir = options.data_dir.empty() ? data::default_data_dir(options.dataset) : options.data_dir;
  const data::DataSplit split = data::load_dataset(options.dataset, dir);
  UV_REQUIRE(options.patch <= split.train.rows && options.patch <= split.train.cols,
             "--patch " << options.patch << " is larger than the " << options.dataset << " images ("
                        << split.train.rows << "x" << split.train.cols << ")");

  // Training patches from the training images, held-out ones from the test images; both get their
  // own means removed, then the training patches' ZCA.
  PatchSampling sampling;
  sampling.side = options.patch;
  sampling.min_std = options.min_patch_std;
  sampling.seed = options.seed;
  sampling.count = options.train_patches;
  sampling.stream = rng_stream(RngStream::kShuffle, 1000);
  PatchSet train = sample_patches(split.train, sampling);
  sampling.count = options.test_patches;
  sampling.stream = rng_stream(RngStream::kShuffle, 1001);
  PatchSet test = sample_patches(split.test, sampling);
  remove_patch_means(train);
  remove_patch_means(test);
  const Whitening whitening = fit_zca(train, options.zca_epsilon);
  apply_whitening(whitening, train);
  apply_whitening(whitening, test);
  const int dims = train.dims();
  std::printf("rica: %s, %lld training and %lld held-out %dx%dx%d patches, ZCA eigenvalues %.3g .. %.3g (epsilon %g)\n",
              options.dataset.c_str(), static_cast<long long>(train.count), static_cast<long long>(test.count),
              options.patch, options.patch, train.channels, whitening.eigenvalues.front(),
              whitening.eigenvalues.back(), options.zca_epsilon);
  std::fflush(stdout);

  fs::create_directories(out_dir);
  write_matrix_csv(fs::path(out_dir) / "zca.csv", whitening.zca, dims, dims);

  json run;
  run["dataset"] = options.dataset;
  run["data_dir"] = dir;
  run["patch"] = options.patch;
  run["channels"] = train.channels;
  run["dims"] = dims;
  run["train_patches"] = train.count;
  run["test_patches"] = test.count;
  run["min_patch_std"] = options.min_patch_std;
  run["zca_epsilon"] = options.zca_epsilon;
  run["zca_eigenvalues"] = whitening.eigenvalues;
  run["lambda"] = options.rica.lambda;
  run["l1_epsilon"] = options.rica.l1_epsilon;
  run["length_scale"] = options.length_scale;
  run["ridge"] = options.ridge;
  run["columns"] = options.columns;
  run["max_iterations"] = options.max_iterations;
  run["seed"] = options.seed;
  run["optimizer"] = "L-BFGS (liblbfgs, More-Thuente line search)";
  run["filters"] = "filters.csv: rows of W in whitened space (patch pixels HWC); filters_raw.csv: W·zca, "
                   "the same filters applied to mean-removed raw patches";
  json rows = json::array();

  std::ofstream csv(fs::path(out_dir) / "results.csv", std::ios::trunc);
  UV_REQUIRE(csv.good(), "cannot write " << (fs::path(out_dir) / "results.csv").string());
  csv << "setting,features,fraction,columns,n_alpha,learned_params,predicted_params,train_objective,"
         "train_sparsity,train_reconstruction,test_objective,test_sparsity,test_reconstruction,"
         "test_relative_reconstruction,test_mean_abs_activation,test_hoyer_sparsity,iterations,evaluations,status,seconds\n";
  std::printf("%-14s %8s %8s %12s %12s %12s %10s %8s %6s %8s\n", "setting", "learned", "n_alpha", "train J",
              "test J", "test recon", "rel recon", "hoyer", "iters", "seconds");

  const std::vector<Setting> settings = experiment_settings(options, dims);
  for (size_t index = 0; index < settings.size(); ++index) {
    const Setting& setting = settings[index];
    ModelSpec spec;
    spec.side = options.patch;
    spec.channels = train.channels;
    spec.features = setting.features;
    spec.fraction = setting.fraction;
    spec.columns = options.columns;
    spec.length_scale = options.length_scale;
    spec.ridge = options.ridge;
    spec.seed = options.seed;
    const RicaModel model = make_model(spec);
    TrainSettings train_settings;
    train_settings.max_iterations = options.max_iterations;
    train_settings.seed = options.seed;
    train_settings.stream = rng_stream(RngStream::kInit, 1000 + index);
    const TrainResult result = train_rica(model, train, options.rica, train_settings);
    const std::vector<double> w = model.filters(result.learned.data());  // (k, n)
    const Evaluation held_out = evaluate(w, model.features, test, options.rica);

    const fs::path setting_dir = fs::path(out_dir) / setting.id;
    fs::create_directories(setting_dir);
    write_matrix_csv(setting_dir / "filters.csv", w, model.features, dims);
    std::vector<double> raw(w.size());  // (k, n): W·zca
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, model.features, dims, dims, 1.0, w.data(), dims,
                whitening.zca.data(), dims, 0.0, raw.data(), dims);
    write_matrix_csv(setting_dir / "filters_raw.csv", raw, model.features, dims);
    {
      std::ofstream history(setting_dir / "objective.csv", std::ios::trunc);
      history << "iteration,objective\n" << std::setprecision(12) << 0 << "," << result.initial.total << "\n";
      for (size_t i = 0; i < result.history.size(); ++i) history << i + 1 << "," << result.history[i] << "\n";
    }

    const int64_t learned = model.learned_count();
    const int64_t predicted = int64_t{model.features} * dims - learned;
    json row;
    row["setting"] = setting.id;
    row["features"] = model.features;
    row["fraction"] = setting.fraction;
    row["columns"] = model.columns;
    row["n_alpha"] = model.n_alpha;
    row["learned_params"] = learned;
    row["predicted_params"] = predicted;
    row["train"] = {{"objective", result.final.total}, {"sparsity", result.final.sparsity},
                    {"reconstruction", result.final.reconstruction}, {"initial_objective", result.initial.total}};
    row["test"] = {{"objective", held_out.objective.total}, {"sparsity", held_out.objective.sparsity},
                   {"reconstruction", held_out.objective.reconstruction},
                   {"relative_reconstruction", held_out.relative_reconstruction},
                   {"mean_abs_activation", held_out.mean_abs_activation},
                   {"hoyer_sparsity", held_out.hoyer_sparsity}};
    row["iterations"] = result.iterations;
    row["evaluations"] = result.evaluations;
    row["status"] = result.status;
    row["seconds"] = result.seconds;
    rows.push_back(row);

    csv << std::setprecision(9) << setting.id << "," << model.features << "," << setting.fraction << ","
        << model.columns << "," << model.n_alpha << "," << learned << "," << predicted << "," << result.final.total
        << "," << result.final.sparsity << "," << result.final.reconstruction << "," << held_out.objective.total
        << "," << held_out.objective.sparsity << "," << held_out.objective.reconstruction << ","
        << held_out.relative_reconstruction << "," << held_out.mean_abs_activation << "," << held_out.hoyer_sparsity
        << "," << result.iterations << "," << result.evaluations << ",\"" << result.status << "\","
        << result.seconds << "\n";
    csv.flush();
    std::printf("%-14s %8lld %8d %12.5g %12.5g %12.5g %10.4f %8.4f %6d %8.1f  %s\n", setting.id.c_str(),
                static_cast<long long>(learned), model.n_alpha, result.final.total, held_out.objective.total,
                held_out.objective.reconstruction, held_out.relative_reconstruction, held_out.hoyer_sparsity,
                result.iterations, result.seconds, result.status.c_str());
    std::fflush(stdout);
  }
  UV_REQUIRE(csv.good(), "writing " << (fs::path(out_dir) / "results.csv").string() << " failed");
  run["settings"] = rows;
  run["seconds"] = seconds_since(t0);
  std::ofstream out(fs::path(out_dir) / "rica.json", std::ios::trunc);
  out << run.dump(2) << "\n";
  UV_REQUIRE(out.good(), "writing " << (fs::path(out_dir) / "rica.json").string() << " failed");
  std::printf("rica: wrote %s (%.1f s)\n", out_dir.c_str(), seconds_since(t0));
  return out_dir;
}

}  // namespace uv::rica
