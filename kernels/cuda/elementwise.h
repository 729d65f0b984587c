// CUDA elementwise kernels, losses, optimiser and initialisation: launchers (stream last). Each is
// the twin of a function in kernels/cpu/elementwise.h and is tested against it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/core/host_device.h"
#include "kernels/predicted_linear_args.h"
#include "kernels/step_state.h"

namespace uv {
enum class Activation;
}

namespace uv::cuda {

void fill(float* x, int64_t n, float value, cudaStream_t stream);
void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t stream);
void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode, cudaStream_t stream);
void activation_forward(Activation act, const float* x, float* y, int64_t n, cudaStream_t stream);
void activation_backward(Activation act, const float* y, const float* dy, float* dx, int64_t n,
                         cudaStream_t stream);
// ReLU with a bit mask for backward (cpu::relu_forward_mask's layout).
void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n, cudaStream_t stream);
void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n, cudaStream_t stream);
// Backend::bias_activation_forward and activation_backward_bias: one kernel each.
void bias_activation_forward(Activation act, float* y, const float* bias, int64_t m, int64_t n, uint32_t* relu_mask,
                             cudaStream_t stream);
void activation_backward_bias(Activation act, const float* y, const uint32_t* relu_mask, float* dy, int64_t m,
                              int64_t n, float* dbias, GradientMode mode, cudaStream_t stream);
// Per-row loss (m) and hit flags (m) for the host to sum in double; dlogits = (softmax − onehot)/M.
void softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                           float* dlogits, float* row_loss, int32_t* row_correct, cudaStream_t stream);
// Per-row ½‖y − t‖² (m); dy = (y − t)/M.
void mean_squared_error(const float* y, const float* target, int64_t m, int64_t n, float* dy,
                        float* row_loss, cudaStream_t stream);
void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features, float* dst,
                 cudaStream_t stream);
void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst, cudaStream_t stream);
// Rows and labels of examples order[state->begin, state->begin + m), begin read on the device.
void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                  int64_t m, int64_t features, float* dst, int32_t* dst_labels, cudaStream_t stream);
// softmax_cross_entropy then accumulate_rows, in one launch for batches up to kFusedLossRows.
void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                      float* dlogits, float* row_loss, int32_t* row_correct, StepState* state,
                                      cudaStream_t stream);
// state->loss_sum += Σ row_loss (in double, rows in order: the host's sum of the per-row losses);
// state->correct += Σ row_correct.
void accumulate_rows(const float* row_loss, const int32_t* row_correct, int64_t m, StepState* state,
                     cudaStream_t stream);
// state->begin += batch; state->lr /= lr_decay (IEEE double division, as on the host).
void advance_step(StepState* state, int64_t batch, double lr_decay, cudaStream_t stream);
// Weight decay on elements [0, decay_end) (decay_end = n: all). lr_from set: the rate is
// static_cast<float>(*lr_from), read on the device, and `lr` is ignored.
void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n, float lr,
              const double* lr_from, float momentum, float weight_decay, int64_t decay_end, cudaStream_t stream);
void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm,
                     cudaStream_t stream);
struct ColumnNormTargets;
// max_column_norm over up to kMaxColumnNormTargets tensors in one launch, and targets.advance's
// advance_step with them.
void max_column_norms(const ColumnNormTargets& targets, float max_norm, cudaStream_t stream);
struct FusedSgd;
// sgd_step over the arena and the bounds of `targets` (inside the arena) in one launch: each
// target's blocks update their columns, then bound them; the blocks after them update the rest of
// the arena (sgd.rest). Bit for bit what sgd_step then max_column_norms give.
void sgd_step_bounded(const ColumnNormTargets& targets, float max_norm, const FusedSgd& sgd, cudaStream_t stream);
void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream_id,
                  cudaStream_t stream);

// Launch geometry, shared with the CPU tests: a grid-stride loop over n elements.
constexpr int kThreadsPerBlock = 256;
constexpr int kMaxBlocks = 4096;
inline int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}
// One warp per row for the row reductions (softmax, MSE): rows per block and blocks.
constexpr int kWarpSize = 32;
constexpr int kRowsPerBlock = kThreadsPerBlock / kWarpSize;
static_assert(kThreadsPerBlock % kWarpSize == 0, "blocks hold whole warps");
inline int row_blocks_for(int64_t rows) {
  return static_cast<int>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}
// accumulate_rows: one block stages this many per-row values in shared memory at a time.
constexpr int kAccumulateChunk = 1024;
// softmax_cross_entropy_accumulate: batches up to this many rows take one block of
// kFusedLossThreads (a warp per row in turn, so at most 8 rows a warp, each a few dependent global
// loads); larger ones the two launches, whose row kernel spreads over many blocks.
constexpr int kFusedLossThreads = 1024;
constexpr int64_t kFusedLossRows = 256;
// Column reductions (column_sums, max_column_norm): a block owns kColumnTile adjacent columns, one
// per lane, and splits the rows among column_row_groups(rows) warps; the warps' partial sums meet
// in shared memory in a fixed order, so the result is the same on every run.
constexpr int kColumnTile = kWarpSize;
constexpr int kMaxColumnRowGroups = 32;
// Loads in flight per lane (independent accumulators): a pass over kColumnLoadsInFlight rows costs
// one memory latency, not kColumnLoadsInFlight.
constexpr int kColumnLoadsInFlight = 4;
UV_HOST_DEVICE inline int column_tiles_for(int64_t cols) {
  return static_cast<int>((cols + kColumnTile - 1) / kColumnTile);
}
// Enough warps that each walks one pass of kColumnLoadsInFlight rows where it can (a batch of 100
// rows: 25 warps, one latency each), up to 32: these kernels have a block per 32 columns, so a
// 10-column output layer is one block and only its warps hide latency.
inline int column_row_groups(int64_t rows) {
  const int64_t groups = (rows + kColumnLoadsInFlight - 1) / kColumnLoadsInFlight;
  return static_cast<int>(groups < 1 ? 1 : groups > kMaxColumnRowGroups ? kMaxColumnRowGroups : groups);
}

// The tensors of one grouped norm-bound launch, passed by value (a kernel parameter, so a captured
// CUDA graph keeps it): target k is `count` (rows × cols) matrices at v[k], and its blocks (a block
// per matrix and column tile) are [block_begin[k], block_begin[k + 1]).
constexpr int kMaxColumnNormTargets = 8;
struct ColumnNormTargets {
  float* v[kMaxColumnNormTargets] = {};
  int64_t rows[kMaxColumnNormTargets] = {}, cols[kMaxColumnNormTargets] = {};
  int64_t block_begin[kMaxColumnNormTargets + 1] = {};
  int n = 0;
  // Set: the launch's last block to finish also advances the step state (advance_step), once
  // every block has read the rate from it; `done` (device, zero between launches) counts blocks.
  StepState* advance = nullptr;
  int64_t advance_batch = 0;
  double advance_lr_decay = 1.0;
  unsigned* done = nullptr;
  bool full() const { return n == kMaxColumnNormTargets; }
  void add(float* matrices, int64_t count, int64_t r, int64_t c) {
    v[n] = matrices;
    rows[n] = r;
    cols[n] = c;
    block_begin[n + 1] = block_begin[n] + (r > 0 ? count * column_tiles_for(c) : 0);
    ++n;
  }
};

// The SGD update sgd_step makes, for sgd_step_bounded: the arena, the rate (lr_from set: read on
// the device), and the arena's ranges outside the bounded targets, which blocks of their own update.
constexpr int kMaxFusedSgdRest = kMaxColumnNormTargets + 1;
struct FusedSgd {
  float* params = nullptr;
  const float* grads = nullptr;
  float* momentum_buffer = nullptr;
  float lr = 0.f;
  const double* lr_from = nullptr;
  float momentum = 0.f, weight_decay = 0.f;
  int64_t decay_end = 0;  // weight decay on arena elements [0, decay_end)
  int n_rest = 0;
  int64_t rest_begin[kMaxFusedSgdRest] = {}, rest_end[kMaxFusedSgdRest] = {};
  UV_HOST_DEVICE int64_t rest_total() const {
    int64_t total = 0;
    for (int r = 0; r < n_rest; ++r) total += rest_end[r] - rest_begin[r];
    return total;
  }
};

}  // namespace uv::cuda
