// Arguments shared by every backend's predicted-linear kernels (one layer, J columns).
//
//   X (M×K) · U (K×J·r) → T (M×J·r);   Y[:, block j] = T[:, block j] · V_j + b
//
// Layouts (row-major):
//   X  (M, K)            U  (K, J·r): column block j is U_j (K×r), fixed
//   V  (J, r, N/J)       V_j is the j-th (r × N/J) slab, learned
//   b  (N)               T  (M, J·r), row stride t_ld(): saved by the chain strategies
//   Y  (M, N)            column block j (N/J wide) belongs to column j
//
// T's rows (and dT's in the backward scratch) are J·r floats padded to a multiple of 4 (t_ld), so
// each row starts 16-byte aligned: the tensor-core products then copy T and dT in 16-byte chunks at
// every r (at r = 409, 819, 1638 they took 4-byte copies), and cuBLAS sees aligned operands too. The
// padding is never read or written: every product runs over the J·r real columns.
#pragma once

#include <cstdint>
#include <string>

#include "engine/core/host_device.h"

namespace uv {

// Whether a backward pass overwrites or adds into a gradient (tiny-cuda-nn's GradientMode): a
// parameter read by two ops (a tied autoencoder) gets Overwrite from the first, Accumulate after.
enum class GradientMode { Overwrite, Accumulate };

enum class PredictedStrategy {
  Materialise,  // W = U·V into a K×N buffer, then ordinary GEMMs (what a framework user writes)
  Chain,        // (X·U)·V through the M×J·r intermediate T; W never exists
  ChainFused,   // chain with each row tile of T kept on chip (CUDA kernels/cuda/chain_fused.cu);
                // past that kernel's limit the chain on 3xTF32 tensor-core products
                // (kernels/cuda/tf32x3_gemm.cu); on the CPU it is the chain
  OnTheFlyW,    // a tiled GEMM whose W tiles are rebuilt in shared memory from U and V tiles
                // (CUDA kernels/cuda/onthefly_w.cu); W tiles are a GPU idea, so on the CPU it runs
                // materialise's products with W formed a panel of rows at a time
};
PredictedStrategy parse_predicted_strategy(const std::string& name);
const char* predicted_strategy_name(PredictedStrategy strategy);

struct PredictedLinearShape {
  int64_t m = 0;        // batch rows
  int64_t k = 0;        // inputs
  int64_t n = 0;        // outputs, all columns together
  int64_t rank = 0;     // r = n_α per column
  int64_t columns = 1;  // J; n % J == 0
  UV_HOST_DEVICE int64_t n_per_column() const { return n / columns; }
  UV_HOST_DEVICE int64_t t_cols() const { return columns * rank; }
  // Row stride of a linear layer's T and dT (the layout note above); a convolution's T, written by
  // cuDNN or the implicit-GEMM kernel, is packed (stride t_cols) and says so where it is read.
  UV_HOST_DEVICE int64_t t_ld() const { return (t_cols() + 3) / 4 * 4; }
};

// Floats the strategy keeps from forward to backward (T for Chain and ChainFused, M·t_ld; W for
// Materialise; none for OnTheFlyW).
int64_t predicted_linear_saved_floats(const PredictedLinearShape& s, PredictedStrategy strategy);
// Floats of scratch the backward pass needs (dT for Chain, dW for Materialise, T = X·U recomputed
// for dV for OnTheFlyW; T and dT with rows of t_ld).
int64_t predicted_linear_backward_scratch_floats(const PredictedLinearShape& s,
                                                 PredictedStrategy strategy);

// Templated on the scalar so the CPU kernels also run in float64 for finite-difference checks.
template <typename Scalar>
struct PredictedLinearForwardArgsT {
  PredictedLinearShape shape;
  PredictedStrategy strategy = PredictedStrategy::Chain;
  const Scalar* x = nullptr;     // (M, K)
  const Scalar* u = nullptr;     // (K, J·r)
  const Scalar* v = nullptr;     // (J, r, N/J)
  const Scalar* bias = nullptr;  // (N) or null
  Scalar* saved = nullptr;       // predicted_linear_saved_floats
  Scalar* y = nullptr;           // (M, N)
};

template <typename Scalar>
struct PredictedLinearBackwardArgsT {
  PredictedLinearShape shape;
  PredictedStrategy strategy = PredictedStrategy::Chain;
  const Scalar* x = nullptr;      // (M, K)
  const Scalar* u = nullptr;      // (K, J·r)
  const Scalar* v = nullptr;      // (J, r, N/J)
  const Scalar* saved = nullptr;  // what forward left (T, W, or nothing for OnTheFlyW)
  const Scalar* dy = nullptr;     // (M, N)
  Scalar* scratch = nullptr;      // predicted_linear_backward_scratch_floats
  Scalar* dx = nullptr;           // (M, K) or null when the input needs no gradient
  Scalar* dv = nullptr;           // (J, r, N/J)
  Scalar* dbias = nullptr;        // (N) or null
  Scalar* du = nullptr;           // (K, J·r) or null: only LowRank learns U
  GradientMode dv_mode = GradientMode::Overwrite;
  GradientMode dbias_mode = GradientMode::Overwrite;
  GradientMode du_mode = GradientMode::Overwrite;
};

using PredictedLinearForwardArgs = PredictedLinearForwardArgsT<float>;
using PredictedLinearBackwardArgs = PredictedLinearBackwardArgsT<float>;

}  // namespace uv
