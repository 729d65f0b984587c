// Dictionaries: how the fixed matrix U of a predicted layer W = U·V is built (paper.md section 2).
// All maths is float64 on the host; only build_dictionary's result is narrowed to float for the layer.
// Matrices are row-major std::vector<double>; each declaration carries its shape in a comment.
//
// Kernel-ridge dictionaries (SE, Emp, Emp2, RandKernel) share one solve:
//   U = k_αᵀ (K_α + λI)⁻¹            (n_v × n_α)
// so that the weights at α, w_α, predict the whole feature: ŵ = U·w_α. Row i ∈ α of U tends to the
// unit vector of i as λ → 0. The solve is a Cholesky factorisation, never an explicit inverse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace uv::dict {

// ---- coordinates of the layer's input indices ----------------------------------------------------

// Where input index i sits: pixel (row, col) in pixel units, and its channel. Doubles so kernels take
// distances without casts.
struct Point {
  double row = 0.0;
  double col = 0.0;
  double channel = 0.0;
};

struct Coordinates {
  std::vector<Point> points;  // (n_v): points[i] is input index i
};

// A rows × cols × channels image or filter flattened HWC: i = (r*cols + c)*channels + ch. For
// channels = 1 this is MNIST's row-major pixel order.
Coordinates image_coordinates(int rows, int cols, int channels);

// Inputs with no geometry (hidden units): index i at (row 0, col i, channel 0), i.e. a line.
Coordinates flat_coordinates(int n);

// ---- α: which weights of a feature are learned ---------------------------------------------------

// n_alpha distinct indices of [0, n_inputs), uniform without replacement, sorted ascending. A pure
// function of (seed, stream): a partial Fisher–Yates shuffle on philox_bits64 draws.
std::vector<int> draw_alpha(int n_inputs, int n_alpha, uint64_t seed, uint64_t stream);

// ---- kernels and kernel ridge regression ---------------------------------------------------------

// Squared exponential over (row, col): exp(-|Δ|² / (2ℓ²)); 0 across channels (channels independent).
double se_kernel(const Point& a, const Point& b, double length_scale);

// U = k_αᵀ (K_α + λI)⁻¹ (n_v × n_alpha), where k_alpha_all (n_alpha × n_v) holds k(alpha[a], j) and
// K_α (n_alpha × n_alpha) is its columns at alpha. Throws UserError naming λ when K_α + λI is not
// positive definite.
std::vector<double> kernel_ridge_dictionary(const std::vector<double>& k_alpha_all,
                                            const std::vector<int>& alpha, int n_v, double ridge);

// Kernel ridge with the SE kernel on the given coordinates; returns U (n_v × alpha.size()).
std::vector<double> se_kernel_dictionary(const Coordinates& coords, const std::vector<int>& alpha,
                                         double length_scale, double ridge);

// Covariance (d × d) of inputs (n_samples × d), mean-centred and divided by n_samples - 1; with
// squared = true, of the element-wise squared inputs (the Emp2 kernel).
std::vector<double> empirical_covariance(const float* inputs, int64_t n_samples, int d, bool squared);

// Kernel ridge with a precomputed kernel matrix cov (d × d): the covariance for Emp/Emp2, rand_kernel's
// matrix for RandKernel. Returns U (d × alpha.size()).
std::vector<double> covariance_dictionary(const std::vector<double>& cov,
                                          const std::vector<int>& alpha, double ridge);

// A random positive semi-definite kernel (d × d): S = (G + Gᵀ)/2 with G standard Gaussian, then
// S = Q·diag(μ)·Qᵀ (LAPACKE_dsyev) is replaced by Q·diag(|μ|)·Qᵀ. Taking |μ| keeps S's eigenvectors
// and spectrum shape, where S·Sᵀ would square the eigenvalues and worsen the conditioning.
std::vector<double> rand_kernel(int d, uint64_t seed, uint64_t stream);

// ---- dictionaries that are not kernel ridge ------------------------------------------------------

// U (n_v × n_alpha) with entries uniform on [-0.1, 0.1] (RandFixU; the range is the authors' code
// default).
std::vector<double> rand_fix_u(int n_v, int n_alpha, uint64_t seed, uint64_t stream);

// U (n_v × alpha.size()) = the identity's columns at alpha: U[alpha[j], j] = 1, zero elsewhere
// (RandCon: each feature sees only its α inputs).
std::vector<double> rand_con(int n_v, const std::vector<int>& alpha);

// DCT: U (n_v × n_alpha) = the n_alpha lowest-frequency atoms of the orthonormal DCT-II on the grid
// the coordinates span (rows × cols × channels, as image_coordinates lays them out; flat
// coordinates are a 1 × n line, so the atoms are the 1-D DCT's). Atom (u, v, ch) is
//   U[i, ·] = c_u·cos(π(2·row_i + 1)u / (2·rows)) · c_v·cos(π(2·col_i + 1)v / (2·cols)) · [channel_i = ch]
// with c_0 = √(1/n), c_k = √(2/n): separable in (row, col), zero off its channel (channels
// independent, as for SE). Atoms are ordered by u + v, then u, then ch: column 0 is channel 0's
// constant atom, the first `channels` columns are the constants of every channel, then for each
// channel the lowest horizontal (u = 0, v = 1) and vertical (u = 1, v = 0) cosines, and so on.
// The columns are orthonormal (UᵀU = I). Throws UserError when n_alpha exceeds the n_v atoms.
//
// This is a basis, not kernel ridge: V holds each feature's coefficients on the atoms, not its
// weights at some α (ŵ = U·v). There is no α; every column of a J-column layer gets the same atoms
// (see build_dictionary).
std::vector<double> dct_dictionary(const Coordinates& coords, int n_alpha);

// AE: U (n_v × alpha.size()) = the columns of an autoencoder's encoder weights at alpha:
// U[i, a] = encoder[i, alpha[a]], with encoder (n_v × atom_count) row-major, one column per atom
// (hidden unit). engine/dict/autoencoder.h trains the autoencoder.
std::vector<double> autoencoder_dictionary(const float* encoder, int n_v, int atom_count,
                                           const std::vector<int>& alpha);

// ---- the engine's entry point --------------------------------------------------------------------

enum class DictionaryKind { SE, Emp, Emp2, RandKernel, RandFixU, RandCon, DCT, AE };

// "se", "emp", "emp2", "randkernel", "randfixu", "randcon", "dct", "ae"; UserError listing them
// otherwise.
DictionaryKind parse_dictionary_kind(const std::string& name);
const char* dictionary_kind_name(DictionaryKind kind);

struct DictionarySpec {
  DictionaryKind kind = DictionaryKind::SE;
  int n_inputs = 0;            // n_v
  int n_alpha = 0;             // per column
  int columns = 1;             // J, at most kMaxColumns
  double length_scale = 2.0;   // SE only (code: 2 for 28×28 inputs, 3 for 5×5 filters)
  double ridge = 0.1;          // λ for the kernel-ridge kinds (code: 0.1 for SE, 1e-3 for Emp)
  uint64_t seed = 0;
  uint64_t layer_index = 0;    // separates the RNG streams of the layers of one model
  Coordinates coords;          // SE and DCT: (n_inputs) points
  const float* data = nullptr; // Emp/Emp2 only: the layer's inputs (data_rows × n_inputs), borrowed
  int64_t data_rows = 0;
  const float* atoms = nullptr;  // AE only: trained encoder weights (n_inputs × atom_count), borrowed
  int atom_count = 0;            // AE only: the autoencoder's hidden units; α is drawn from them
};

// Column streams are layer_index*kMaxColumns + j, so more columns would collide with the next layer.
inline constexpr int kMaxColumns = 1024;

// The α of each column (columns × n_alpha). Column j draws from
// rng_stream(kDictionary, layer_index*kMaxColumns + j). α indexes the inputs [0, n_inputs), except
// for AE, where it indexes the autoencoder's atoms [0, atom_count). RandFixU draws them too but U
// ignores them; DCT has no α and gets an empty vector per column.
std::vector<std::vector<int>> dictionary_alphas(const DictionarySpec& spec);

// U of every column as one row-major float matrix (n_inputs × columns·n_alpha): column block j,
// i.e. entries [:, j*n_alpha, (j+1)*n_alpha), is U_j. Kernels shared by the columns (covariance,
// random kernel) are computed once.
//
// Columns of a DCT layer all get the same n_alpha lowest-frequency atoms. The paper's columns
// differ by α because each α is a different, imperfect approximation of one kernel-ridge
// predictor and the columns' errors differ; a DCT basis has no such approximation to vary: its
// prior ("features are smooth") ranks the atoms, and any other set (a frequency offset per column,
// or random atoms as in the authors' DCTDictionary) would hand column j a worse subspace under that
// prior. So a J-column DCT layer spans the same functions as a one-column one and J only groups V
// (and stores J copies of U).
std::vector<float> build_dictionary(const DictionarySpec& spec);

}  // namespace uv::dict
