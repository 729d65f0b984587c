// Reconstruction ICA (RICA; Le, Karpenko, Ngiam, Ng, NIPS 2011) with a predicted filter matrix
// (paper.md section 5, "RICA"). Everything here is float64 on the host: the problem is small (8×8
// patches, a few hundred filters) and L-BFGS wants exact gradients.
//
// The objective, over m whitened patches x_i ∈ R^n and k filters W (k × n), one filter per row:
//   J(W) = (λ/m)·Σ_i Σ_j g(W_j·x_i) + (1/m)·Σ_i ½‖WᵀW x_i − x_i‖²,   g(u) = sqrt(u² + ε)
// (Le et al.'s eq. 3 with both terms averaged over patches, so λ does not depend on m). W's rows are
// NOT normalised: the RICA paper's point is that the reconstruction term replaces ICA's hard
// orthonormality constraint, so W is unconstrained. (The UFLDL exercise's code rescales each row to
// unit norm inside the cost; with more filters than dimensions that makes WᵀW ≈ I impossible, since
// trace(WᵀW) would be k > n.)
//
// The reconstruction term depends on the data only through C = (1/m)·Σ_i x_i x_iᵀ (n × n):
//   (1/m)·Σ_i ½‖(WᵀW − I) x_i‖² = ½·tr(M C M),  M = WᵀW − I (symmetric),
//   ∂/∂W = W·(C M + M C),
// so only the sparsity term passes over the patches (two GEMMs of k·n·m each).
//
// Predicted filters (paper.md sections 1-3): Wᵀ (n × k) = U·V with U an SE kernel-ridge dictionary over
// the patch's (row, col, channel) coordinates (channels independent) and V (n_α × k) learned. With J
// columns the k filters are split into J equal groups; group j has its own α_j and U_j (n × n_α):
//   Wᵀ[:, group j] = U_j · V_j,   V_j (n_α × k/J).
// Learned numbers: n_α·k, whatever J is. Fraction learned = n_α / n; 1.0 means ordinary RICA, where W
// itself is learned (no dictionary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace uv::rica {

// ---- patches ---------------------------------------------------------------------------------------

// m patches of side × side × channels pixels, each flattened HWC (i = (r·side + c)·channels + ch), the
// order of dict::image_coordinates(side, side, channels).
struct PatchSet {
  int side = 0;
  int channels = 1;
  int64_t count = 0;           // m
  std::vector<double> values;  // (count, dims()) row-major
  int dims() const { return side * side * channels; }
  const double* patch(int64_t i) const { return values.data() + i * dims(); }
};

struct PatchSampling {
  int side = 8;
  int64_t count = 50000;
  uint64_t seed = 1;
  uint64_t stream = 0;     // separates the training draw from the held-out one
  double min_std = 0.02;   // a drawn patch whose pixels' standard deviation is below this (flat
                           // background, most of an MNIST image) is drawn again; 0 keeps every patch
};

// Patches at uniformly drawn (image, row, col) positions of `images` (all channels of the image).
// Draw k of the stream picks the image, the row and the column from philox_bits64(seed, stream, 3k..3k+2).
// Throws UserError when the patch is larger than the images, and when flat patches are so common that
// 100·count draws do not yield count patches.
PatchSet sample_patches(const data::Dataset& images, const PatchSampling& sampling);

// Subtracts each patch's own mean over all its pixels and channels (removes its brightness).
void remove_patch_means(PatchSet& patches);

// ---- ZCA whitening ----------------------------------------------------------------------------------

// x_white = zca · (x − mean), zca = E·diag(1/sqrt(d + ε))·Eᵀ from the eigen-decomposition C = E·diag(d)·Eᵀ
// (LAPACKE_dsyevd) of the patches' covariance C (divided by m). ZCA keeps the pixel layout (zca is
// symmetric and the closest whitening matrix to I), so whitened patches and filters are still images.
// With ε = 0 the whitened covariance is I; ε > 0 damps the directions of variance below ε, and
// a direction of variance 0 (the per-patch mean, once remove_patch_means has run) stays 0.
struct Whitening {
  int dims = 0;
  double epsilon = 0.0;
  std::vector<double> mean;         // (dims)
  std::vector<double> zca;          // (dims, dims) symmetric
  std::vector<double> eigenvalues;  // (dims) of the covariance, ascending
};

Whitening fit_zca(const PatchSet& patches, double epsilon);
void apply_whitening(const Whitening& whitening, PatchSet& patches);  // in place

// (1/m)·Σ_i x_i x_iᵀ (dims × dims): the second moment, about 0 (not the mean).
std::vector<double> second_moment(const PatchSet& patches);

// ---- the model ---------------------------------------------------------------------------------------

struct RicaParams {
  double lambda = 0.1;       // weight of the sparsity term
  double l1_epsilon = 0.01;  // ε of g(u) = sqrt(u² + ε)
};

// A RICA filter bank: dense (n_alpha == 0, W learned) or predicted (W = (U·V)ᵀ).
struct RicaModel {
  int dims = 0;       // n
  int features = 0;   // k
  int n_alpha = 0;    // 0: dense
  int columns = 1;    // J; divides features
  std::vector<double> dictionary;  // (dims, columns·n_alpha): column block j is U_j; empty when dense

  bool predicted() const { return n_alpha > 0; }
  int64_t learned_count() const;  // dense: k·n; predicted: n_α·k
  // The learned parameters: W (k, n) row-major when dense; else V_0, ..., V_{J−1} one after the
  // other, V_j (n_α, k/J) row-major.
  std::vector<double> filters(const double* params) const;  // W (features, dims)
  // ∂J/∂params from ∂J/∂W (features × dims): ∂J/∂V_j = U_jᵀ · (∂J/∂W)[group j]ᵀ.
  void filter_gradient_to_params(const double* grad_filters, double* grad_params) const;
};

// A dense model, or a predicted one with the SE dictionary over `coords` (side × side × channels),
// n_alpha = int(dims·fraction) (the paper's rounding), α per column drawn as dict::dictionary_alphas
// does (layer index 0). fraction == 1 gives the dense model.
struct ModelSpec {
  int side = 8;
  int channels = 1;
  int features = 100;
  double fraction = 1.0;  // in (0, 1]
  int columns = 1;
  double length_scale = 1.0;  // SE ℓ in pixels (paper: 1 for RICA)
  double ridge = 0.1;         // kernel-ridge λ
  uint64_t seed = 1;
};
RicaModel make_model(const ModelSpec& spec);

// The objective's two terms and their sum, for filters W on whitened patches.
struct ObjectiveValue {
  double total = 0.0;
  double sparsity = 0.0;        // (λ/m)·Σ g(W x)
  double reconstruction = 0.0;  // (1/m)·Σ ½‖WᵀW x − x‖²
};

// J(W) for W (features × dims) on `patches`, whose second moment is `moment` (second_moment(patches)).
// When grad_filters is not null it receives ∂J/∂W (features × dims), overwritten.
ObjectiveValue rica_objective(const std::vector<double>& filters, int features, const PatchSet& patches,
                              const std::vector<double>& moment, const RicaParams& params,
                              double* grad_filters);

// J as a function of the model's learned parameters; grad_params (learned_count) overwritten when
// not null.
ObjectiveValue model_objective(const RicaModel& model, const double* learned, const PatchSet& patches,
                               const std::vector<double>& moment, const RicaParams& params,
                               double* grad_params);

// ---- training: L-BFGS (liblbfgs) ---------------------------------------------------------------------

struct TrainSettings {
  int max_iterations = 500;
  double init_scale = 0.1;  // learned parameters start Uniform(±init_scale)
  uint64_t seed = 1;
  uint64_t stream = 0;
};

struct TrainResult {
  std::vector<double> learned;  // (model.learned_count())
  ObjectiveValue initial, final;
  int iterations = 0;
  int evaluations = 0;
  std::string status;              // liblbfgs's return code, in words
  std::vector<double> history;     // objective after each iteration
  double seconds = 0.0;
};

TrainResult train_rica(const RicaModel& model, const PatchSet& patches, const RicaParams& params,
                       const TrainSettings& settings);

// ---- held-out measures ---------------------------------------------------------------------------------

struct Evaluation {
  ObjectiveValue objective;            // J on the held-out patches
  double relative_reconstruction = 0;  // Σ‖WᵀW x − x‖² / Σ‖x‖²
  double mean_abs_activation = 0;      // (1/(m·k))·Σ |W_j x_i|
  double hoyer_sparsity = 0;           // mean over patches of (√k − ‖a‖₁/‖a‖₂)/(√k − 1), a = W x; in
                                       // [0, 1], 1 = one active filter; scale-free, so comparable
                                       // across k
};

Evaluation evaluate(const std::vector<double>& filters, int features, const PatchSet& patches,
                    const RicaParams& params);

// ---- the experiment (`uvtrain rica`) -------------------------------------------------------------------

struct ExperimentOptions {
  std::string dataset = "fashion_mnist";
  std::string data_dir;  // empty: the dataset's default directory
  std::string out_dir;   // empty: runs/rica-<date>-<time>
  int patch = 8;
  int features = 100;
  std::vector<double> fractions = {1.0, 0.5, 0.25};
  bool equal_learned = true;  // also run features/f filters at each fraction f < 1
  int columns = 1;
  int64_t train_patches = 50000;
  int64_t test_patches = 10000;
  double min_patch_std = 0.02;
  double zca_epsilon = 0.01;
  RicaParams rica;
  double length_scale = 1.0;
  double ridge = 0.1;
  int max_iterations = 500;
  uint64_t seed = 1;
};

// Throws UserError for bad options (before any data is read, where possible).
void validate_options(const ExperimentOptions& options);

// Loads the data, samples and whitens the patches, trains every setting, writes out_dir (see
// README.md, "RICA"). Returns out_dir.
std::string run_experiment(const ExperimentOptions& options);

}  // namespace uv::rica
