// CUDA elementwise kernels (forward and backward side by side), then their launchers.
#include <algorithm>
#include <cmath>

#include "engine/backend/backend.h"
#include "engine/core/philox.h"
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/relu_mask.h"

namespace uv::cuda {

// ------------------------------------------------------------------------------------------------
// kernels
// ------------------------------------------------------------------------------------------------

#define UV_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

__global__ void fill_kernel(float* x, int64_t n, float value) {
  UV_GRID_STRIDE(i, n) x[i] = value;
}

__global__ void bias_add_rows_kernel(float* y, const float* bias, int64_t m, int64_t n) {
  UV_GRID_STRIDE(i, m * n) y[i] += bias[i % n];
}

// This thread's rows of its column, for a block of (kColumnTile, groups): warp y takes rows y,
// y + groups, ..., kColumnLoadsInFlight at a time, each pass's loads issued before their uses, so a
// pass costs one memory latency instead of one a row (ncu on an H200: a 500×10 norm bound took
// 32 µs walking 63 rows a warp one dependent load at a time). Calls use(k, row, load(row)), k the
// row's place in its pass (a compile-time constant once unrolled).
template <typename Load, typename Use>
__device__ __forceinline__ void column_passes(int64_t rows, Load load, Use use) {
  const int64_t step = blockDim.y;
  int64_t i = threadIdx.y;
  for (; i + (kColumnLoadsInFlight - 1) * step < rows; i += kColumnLoadsInFlight * step) {
    decltype(load(i)) a[kColumnLoadsInFlight];
#pragma unroll
    for (int k = 0; k < kColumnLoadsInFlight; ++k) a[k] = load(i + k * step);
#pragma unroll
    for (int k = 0; k < kColumnLoadsInFlight; ++k) use(k, i + k * step, a[k]);
  }
#pragma unroll
  for (int k = 0; k < kColumnLoadsInFlight - 1; ++k)  // the last, partial pass
    if (i + k * step < rows) use(k, i + k * step, load(i + k * step));
}

// Σ over `rows` rows of this thread's column of use(row, load(row)) (column_passes), and the
// result, returned to warp 0 (threadIdx.y == 0), adds the groups' partial sums in order. `load`
// reads a row's operands and `use` turns them into the term (it may also store); valid is false past
// the last column. Every thread must call it.
template <typename Load, typename Use>
__device__ float column_total(int64_t rows, bool valid, Load load, Use use) {
  __shared__ float partial[kMaxColumnRowGroups][kColumnTile + 1];
  // An accumulator per place in a pass, combined in a fixed order: deterministic.
  float acc[kColumnLoadsInFlight] = {};
  if (valid) column_passes(rows, load, [&](int k, int64_t i, auto a) { acc[k] += use(i, a); });
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < kColumnLoadsInFlight; ++k) sum += acc[k];
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  float total = 0.f;
  if (threadIdx.y == 0)
    for (unsigned g = 0; g < blockDim.y; ++g) total += partial[g][threadIdx.x];
  return total;
}

// Σ over the rows of column j of `mat` (rows × cols), of the value or (kSquares) its square.
template <bool kSquares>
__device__ float column_total(const float* mat, int64_t rows, int64_t cols, int64_t j) {
  return column_total(
      rows, j < cols, [=](int64_t i) { return mat[i * cols + j]; },
      [](int64_t, float a) { return kSquares ? a * a : a; });
}

// Lane x owns column blockIdx.x·kColumnTile + x (a warp reads 32 adjacent floats of a row:
// coalesced). It had been one thread per column walking all m rows: 16 blocks for a 500-wide
// layer, and one block of 32 threads for a conv's 100k-row bias gradient.
__global__ void __launch_bounds__(kColumnTile * kMaxColumnRowGroups) column_sums_kernel(const float* x, int64_t m, int64_t n, float* out, bool accumulate) {
  const int64_t j = blockIdx.x * int64_t{kColumnTile} + threadIdx.x;
  const float total = column_total<false>(x, m, n, j);
  if (threadIdx.y == 0 && j < n) out[j] = accumulate ? out[j] + total : total;
}

// dy·act'(x) from the output y = act(x), multiplied in the CPU twin's order (dy·y·(1−y) for σ).
__device__ __forceinline__ float activation_grad(Activation act, float dy, float y) {
  switch (act) {
    case Activation::Identity: return dy;
    case Activation::Sigmoid: return dy * y * (1.f - y);
    case Activation::Tanh: return dy * (1.f - y * y);
    case Activation::ReLU: return y > 0.f ? dy : 0.f;
  }
  return dy;
}

__global__ void activation_forward_kernel(Activation act, const float* x, float* y, int64_t n) {
  UV_GRID_STRIDE(i, n) y[i] = activate(act, x[i]);
}

__global__ void activation_backward_kernel(Activation act, const float* y, const float* dy, float* dx,
                                           int64_t n) {
  UV_GRID_STRIDE(i, n) dx[i] = activation_grad(act, dy[i], y[i]);
}

static_assert(kWarpSize == 32, "a warp's ballot is one word of the ReLU mask (kernels/relu_mask.h)");

// y = act(x + bias) (x may be y; bias may be null), a warp per 32 elements so that a ReLU's mask
// word is the warp's ballot (mask null: no mask; the same for the whole warp, so every lane votes;
// lanes past the end vote 0).
__global__ void bias_activation_forward_kernel(Activation act, const float* x, float* y, const float* bias,
                                               int64_t m, int64_t n, uint32_t* mask) {
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int64_t total = m * n, words = (total + kWarpSize - 1) / kWarpSize;
  const int64_t warps = int64_t{gridDim.x} * blockDim.x / kWarpSize;
  for (int64_t w = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / kWarpSize; w < words; w += warps) {
    const int64_t i = w * kWarpSize + lane;
    float v = 0.f;
    if (i < total) {
      v = x[i];
      if (bias) v += bias[i % n];
      y[i] = activate(act, v);
    }
    if (mask) {
      const uint32_t bits = __ballot_sync(0xffffffffu, i < total && v > 0.f);
      if (lane == 0) mask[w] = bits;
    }
  }
}

// The activation's backward in place and the bias gradient (its column sums) in one pass, laid out
// as column_sums: lane per column, warps over rows, the sums in column_total's fixed order.
__global__ void __launch_bounds__(kColumnTile * kMaxColumnRowGroups) activation_backward_bias_kernel(Activation act, const float* y, const uint32_t* mask, float* dy,
                                                int64_t m, int64_t n, float* dbias, bool accumulate) {
  const int64_t j = blockIdx.x * int64_t{kColumnTile} + threadIdx.x;
  const float total = column_total(
      m, j < n,
      [=](int64_t i) {
        const int64_t e = i * n + j;
        // (dy, y), or (dy, the mask bit as 0/1) for a ReLU: its grad is then dy where the bit is set.
        return make_float2(dy[e], mask ? static_cast<float>(relu_mask_bit(mask, e)) : y[e]);
      },
      [=](int64_t i, float2 a) {
        const float g = activation_grad(act, a.x, a.y);
        dy[i * n + j] = g;
        return g;
      });
  if (dbias && threadIdx.y == 0 && j < n) dbias[j] = accumulate ? dbias[j] + total : total;
}

__global__ void relu_backward_mask_kernel(const uint32_t* mask, const float* dy, float* dx, int64_t n) {
  UV_GRID_STRIDE(i, n) dx[i] = relu_mask_bit(mask, i) ? dy[i] : 0.f;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// One row's softmax cross-entropy by one warp (every lane calls it for the same row).
__device__ void softmax_cross_entropy_row(const float* logits, const int32_t* labels, int64_t row, int64_t m,
                                          int64_t c, float* dlogits, float* row_loss, int32_t* row_correct) {
  const int lane = threadIdx.x % kWarpSize;
  const float* z = logits + row * c;
  float top = -INFINITY;
  for (int64_t j = lane; j < c; j += kWarpSize) top = fmaxf(top, z[j]);
  top = warp_max(top);
  float sum = 0.f;
  for (int64_t j = lane; j < c; j += kWarpSize) sum += expf(z[j] - top);
  sum = warp_sum(sum);
  const int32_t label = labels[row];
  const float inv_m = 1.f / static_cast<float>(m);
  for (int64_t j = lane; j < c; j += kWarpSize)
    dlogits[row * c + j] = (expf(z[j] - top) / sum - (j == label ? 1.f : 0.f)) * inv_m;
  if (lane == 0) {
    row_loss[row] = logf(sum) - (z[label] - top);
    // The first maximal logit wins, as in the CPU twin's argmax.
    int64_t argmax = 0;
    for (int64_t j = 1; j < c; ++j)
      if (z[j] > z[argmax]) argmax = j;
    row_correct[row] = argmax == label;
  }
}

__global__ void softmax_cross_entropy_kernel(const float* logits, const int32_t* labels, int64_t m,
                                             int64_t c, float* dlogits, float* row_loss,
                                             int32_t* row_correct) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / kWarpSize;
  if (row >= m) return;  // whole warps leave together: `row` is uniform across a warp
  softmax_cross_entropy_row(logits, labels, row, m, c, dlogits, row_loss, row_correct);
}

__global__ void mean_squared_error_kernel(const float* y, const float* target, int64_t m, int64_t n,
                                          float* dy, float* row_loss) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= m) return;
  const float inv_m = 1.f / static_cast<float>(m);
  float sum = 0.f;
  for (int64_t j = lane; j < n; j += kWarpSize) {
    const float diff = y[row * n + j] - target[row * n + j];
    sum += 0.5f * diff * diff;
    dy[row * n + j] = diff * inv_m;
  }
  sum = warp_sum(sum);
  if (lane == 0) row_loss[row] = sum;
}

// Consecutive threads copy consecutive floats of a row: coalesced reads and writes.
__global__ void gather_rows_kernel(const float* src, const int32_t* index, int64_t m, int64_t features,
                                   float* dst) {
  UV_GRID_STRIDE(i, m * features) dst[i] = src[int64_t{index[i / features]} * features + i % features];
}

__global__ void gather_labels_kernel(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst) {
  UV_GRID_STRIDE(i, m) dst[i] = src[index[i]];
}

// Consecutive threads copy consecutive floats of a row; the first m threads also copy the labels.
__global__ void gather_batch_kernel(const float* src, const int32_t* src_labels, const int32_t* order,
                                    const StepState* state, int64_t m, int64_t features, float* dst,
                                    int32_t* dst_labels) {
  const int32_t* index = order + state->begin;
  UV_GRID_STRIDE(i, m * features) {
    dst[i] = src[int64_t{index[i / features]} * features + i % features];
    if (i < m) dst_labels[i] = src_labels[index[i]];
  }
}

// One block: the per-row values go through shared memory a chunk at a time (coalesced loads),
// then thread 0 adds them in row order in double, the exact sum the host made of the same floats.
// A tree reduction would be faster but would round differently from every earlier run; a batch is
// at most a few thousand rows, so the serial sum costs microseconds. Every thread of the block
// calls it.
__device__ void accumulate_rows_in_block(const float* row_loss, const int32_t* row_correct, int64_t m,
                                         StepState* state) {
  __shared__ float loss[kAccumulateChunk];
  __shared__ int32_t hits[kAccumulateChunk];
  double sum = 0.0;
  int64_t correct = 0;
  for (int64_t c0 = 0; c0 < m; c0 += kAccumulateChunk) {
    const int64_t count = m - c0 < kAccumulateChunk ? m - c0 : kAccumulateChunk;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      loss[i] = row_loss[c0 + i];
      hits[i] = row_correct[c0 + i];
    }
    __syncthreads();
    if (threadIdx.x == 0)
      for (int64_t i = 0; i < count; ++i) {
        sum += static_cast<double>(loss[i]);
        correct += hits[i];
      }
    __syncthreads();  // before the next chunk overwrites the shared arrays
  }
  if (threadIdx.x == 0) {
    state->loss_sum += sum;
    state->correct += correct;
  }
}

__global__ void accumulate_rows_kernel(const float* row_loss, const int32_t* row_correct, int64_t m,
                                       StepState* state) {
  accumulate_rows_in_block(row_loss, row_correct, m, state);
}

// A training batch's loss and its accumulation in one launch: one block, a warp per row in turn,
// then the rows' sum as accumulate_rows makes it. The same numbers as the two launches, one fewer
// kernel in the step; for batches up to kFusedLossRows, where a block's 32 warps take ≤ 8 rows each.
__global__ void __launch_bounds__(kFusedLossThreads) softmax_cross_entropy_accumulate_kernel(const float* logits, const int32_t* labels, int64_t m,
                                                        int64_t c, float* dlogits, float* row_loss,
                                                        int32_t* row_correct, StepState* state) {
  const int warps = blockDim.x / kWarpSize;
  for (int64_t row = threadIdx.x / kWarpSize; row < m; row += warps)
    softmax_cross_entropy_row(logits, labels, row, m, c, dlogits, row_loss, row_correct);
  __syncthreads();  // every row's loss and hit written (and visible to the block)
  accumulate_rows_in_block(row_loss, row_correct, m, state);
}

// The CPU twin is cpu::advance_step: the same double division, bit for bit.
__device__ void advance(StepState* state, int64_t batch, double lr_decay) {
  state->begin += batch;
  state->lr /= lr_decay;
}

__global__ void advance_step_kernel(StepState* state, int64_t batch, double lr_decay) { advance(state, batch, lr_decay); }

// One element's update: m = momentum·m − lr·(g + wd·p); p += m. Each product and sum rounded on
// its own (no FMA contraction), as the CPU twin computes it under -ffp-contract=off: CPU and GPU
// runs then update the weights bit for bit alike.
__device__ __forceinline__ void sgd_update(float& p, float g, float& m, float lr, float momentum, float wd) {
  const float gd = __fadd_rn(g, __fmul_rn(wd, p));
  m = __fsub_rn(__fmul_rn(momentum, m), __fmul_rn(lr, gd));
  p = __fadd_rn(p, m);
}

// Arena element i's update in place, weight decay on [0, decay_end).
__device__ __forceinline__ void sgd_element(float* params, const float* grads, float* momentum_buffer, int64_t i,
                                            float lr, float momentum, float weight_decay, int64_t decay_end) {
  float p = params[i], m = momentum_buffer[i];
  sgd_update(p, grads[i], m, lr, momentum, i < decay_end ? weight_decay : 0.f);
  momentum_buffer[i] = m;
  params[i] = p;
}

__global__ void sgd_kernel(float* params, const float* grads, float* momentum_buffer, int64_t n,
                           float lr_value, const double* lr_from, float momentum, float weight_decay,
                           int64_t decay_end) {
  const float lr = lr_from ? static_cast<float>(*lr_from) : lr_value;
  UV_GRID_STRIDE(i, n) sgd_element(params, grads, momentum_buffer, i, lr, momentum, weight_decay, decay_end);
}

// A norm block of max_column_norm_kernel: its matrix's column tile, updated first with sgd.params.
__device__ void bound_columns(const ColumnNormTargets& targets, float max_norm, const FusedSgd& sgd, float lr,
                              float* scale) {
  int k = 0;
  while (blockIdx.x >= targets.block_begin[k + 1]) ++k;  // the same k for the whole block
  const int64_t rows = targets.rows[k], cols = targets.cols[k];
  const int64_t tiles = column_tiles_for(cols), local = blockIdx.x - targets.block_begin[k];
  float* mat = targets.v[k] + (local / tiles) * rows * cols;
  const int64_t j = (local % tiles) * kColumnTile + threadIdx.x;
  float norm2;
  if (sgd.params) {
    const int64_t base = mat - sgd.params;  // the matrix's place in the arena
    const float* grads = sgd.grads;
    float* momentum_buffer = sgd.momentum_buffer;
    const float momentum = sgd.momentum, weight_decay = sgd.weight_decay;
    const int64_t decay_end = sgd.decay_end;
    norm2 = column_total(
        rows, j < cols,
        [=](int64_t i) {
          const int64_t o = base + i * cols + j;
          return make_float3(mat[i * cols + j], grads[o], momentum_buffer[o]);
        },
        [=](int64_t i, float3 a) {
          const int64_t o = base + i * cols + j;
          float p = a.x, m = a.z;
          sgd_update(p, a.y, m, lr, momentum, o < decay_end ? weight_decay : 0.f);
          momentum_buffer[o] = m;
          mat[i * cols + j] = p;
          return p * p;
        });
  } else {
    norm2 = column_total<true>(mat, rows, cols, j);
  }
  if (threadIdx.y == 0) {
    const float norm = sqrtf(norm2);
    scale[threadIdx.x] = norm > max_norm ? max_norm / norm : 1.f;
  }
  __syncthreads();
  const float s = scale[threadIdx.x];
  // Loads of a pass before its stores (column_passes): the compiler cannot tell they touch
  // different rows.
  if (j < cols && s != 1.f)
    column_passes(
        rows, [=](int64_t i) { return mat[i * cols + j]; }, [=](int, int64_t i, float a) { mat[i * cols + j] = a * s; });
}

// One thread per (matrix, column); adjacent threads walk adjacent columns of each row. Block b
// belongs to the target whose [block_begin[k], block_begin[k+1]) holds it, then to matrix
// (b − begin) / tiles of that target and its column tile (b − begin) % tiles; the rows split among
// warps as in column_sums. Several parameter tensors, one launch: the step's norm bounds had been
// one launch each.
// With sgd.params set (sgd_step_bounded) the kernel is the whole optimizer step: a target's blocks
// first update their columns (the update's stores in column_total's own pass, so each thread reads
// back only what it wrote), and the blocks past the targets' update the arena's other ranges, a
// grid-stride loop of their own. With targets.advance set, the last block to finish advances the
// step state.
__global__ void __launch_bounds__(kColumnTile * kMaxColumnRowGroups) max_column_norm_kernel(ColumnNormTargets targets, float max_norm, FusedSgd sgd) {
  __shared__ float scale[kColumnTile];
  const float lr = sgd.lr_from ? static_cast<float>(*sgd.lr_from) : sgd.lr;
  const int64_t norm_blocks = targets.block_begin[targets.n];
  if (blockIdx.x < norm_blocks) {
    bound_columns(targets, max_norm, sgd, lr, scale);
  } else {  // the rest of the arena (only with sgd.params)
    const int64_t threads = int64_t{blockDim.x} * blockDim.y, total = sgd.rest_total();
    const int64_t first = (blockIdx.x - norm_blocks) * threads + threadIdx.y * blockDim.x + threadIdx.x;
    for (int64_t f = first; f < total; f += (gridDim.x - norm_blocks) * threads) {
      int r = 0;
      int64_t o = f;  // f's place in the ranges laid end to end → the arena
      while (o >= sgd.rest_end[r] - sgd.rest_begin[r]) {
        o -= sgd.rest_end[r] - sgd.rest_begin[r];
        ++r;
      }
      o += sgd.rest_begin[r];
      sgd_element(sgd.params, sgd.grads, sgd.momentum_buffer, o, lr, sgd.momentum, sgd.weight_decay, sgd.decay_end);
    }
  }
  // The advance, by the last block to finish: every block has read the rate (above) by then. Block
  // 0 at the start would race the other blocks' reads of state->lr (lr_from is the same state).
  if (targets.advance) {
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
      __threadfence();
      if (atomicAdd(targets.done, 1u) == gridDim.x - 1) {
        advance(targets.advance, targets.advance_batch, targets.advance_lr_decay);
        *targets.done = 0;  // ready for the next launch (or graph replay)
      }
    }
  }
}

__global__ void uniform_init_kernel(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream_id) {
  // Unfused multiply and add, as on the CPU: initial weights are bit-identical across devices.
  UV_GRID_STRIDE(i, n) x[i] = __fadd_rn(lo, __fmul_rn(hi - lo, philox_uniform(seed, stream_id, static_cast<uint64_t>(i))));
}

// ------------------------------------------------------------------------------------------------
// launchers
// ------------------------------------------------------------------------------------------------

void fill(float* x, int64_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(x, n, value);
  CUDA_CHECK_LAUNCH();
}

void bias_add_rows(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t stream) {
  bias_add_rows_kernel<<<blocks_for(m * n), kThreadsPerBlock, 0, stream>>>(y, bias, m, n);
  CUDA_CHECK_LAUNCH();
}

void column_sums(const float* x, int64_t m, int64_t n, float* out, GradientMode mode, cudaStream_t stream) {
  if (n == 0) return;
  const dim3 block(kColumnTile, static_cast<unsigned>(column_row_groups(m)));
  column_sums_kernel<<<column_tiles_for(n), block, 0, stream>>>(x, m, n, out, mode == GradientMode::Accumulate);
  CUDA_CHECK_LAUNCH();
}

void activation_forward(Activation act, const float* x, float* y, int64_t n, cudaStream_t stream) {
  activation_forward_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(act, x, y, n);
  CUDA_CHECK_LAUNCH();
}

void activation_backward(Activation act, const float* y, const float* dy, float* dx, int64_t n,
                         cudaStream_t stream) {
  activation_backward_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(act, y, dy, dx, n);
  CUDA_CHECK_LAUNCH();
}

void relu_forward_mask(const float* x, float* y, uint32_t* mask, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  static_assert(kThreadsPerBlock % kWarpSize == 0, "whole warps vote");
  bias_activation_forward_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(Activation::ReLU, x, y, nullptr, 1,
                                                                                   n, mask);
  CUDA_CHECK_LAUNCH();
}

void relu_backward_mask(const uint32_t* mask, const float* dy, float* dx, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_backward_mask_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(mask, dy, dx, n);
  CUDA_CHECK_LAUNCH();
}

void bias_activation_forward(Activation act, float* y, const float* bias, int64_t m, int64_t n, uint32_t* relu_mask,
                             cudaStream_t stream) {
  if (m * n == 0) return;
  bias_activation_forward_kernel<<<blocks_for(m * n), kThreadsPerBlock, 0, stream>>>(
      act, y, y, bias, m, n, act == Activation::ReLU ? relu_mask : nullptr);
  CUDA_CHECK_LAUNCH();
}

void activation_backward_bias(Activation act, const float* y, const uint32_t* relu_mask, float* dy, int64_t m,
                              int64_t n, float* dbias, GradientMode mode, cudaStream_t stream) {
  if (n == 0) return;
  const dim3 block(kColumnTile, static_cast<unsigned>(column_row_groups(m)));
  activation_backward_bias_kernel<<<column_tiles_for(n), block, 0, stream>>>(
      act, y, act == Activation::ReLU ? relu_mask : nullptr, dy, m, n, dbias, mode == GradientMode::Accumulate);
  CUDA_CHECK_LAUNCH();
}

void softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                           float* dlogits, float* row_loss, int32_t* row_correct, cudaStream_t stream) {
  softmax_cross_entropy_kernel<<<row_blocks_for(m), kThreadsPerBlock, 0, stream>>>(
      logits, labels, m, c, dlogits, row_loss, row_correct);
  CUDA_CHECK_LAUNCH();
}

void mean_squared_error(const float* y, const float* target, int64_t m, int64_t n, float* dy,
                        float* row_loss, cudaStream_t stream) {
  mean_squared_error_kernel<<<row_blocks_for(m), kThreadsPerBlock, 0, stream>>>(y, target, m, n, dy, row_loss);
  CUDA_CHECK_LAUNCH();
}

void gather_rows(const float* src, const int32_t* index, int64_t m, int64_t features, float* dst,
                 cudaStream_t stream) {
  gather_rows_kernel<<<blocks_for(m * features), kThreadsPerBlock, 0, stream>>>(src, index, m, features, dst);
  CUDA_CHECK_LAUNCH();
}

void gather_labels(const int32_t* src, const int32_t* index, int64_t m, int32_t* dst, cudaStream_t stream) {
  gather_labels_kernel<<<blocks_for(m), kThreadsPerBlock, 0, stream>>>(src, index, m, dst);
  CUDA_CHECK_LAUNCH();
}

void gather_batch(const float* src, const int32_t* src_labels, const int32_t* order, const StepState* state,
                  int64_t m, int64_t features, float* dst, int32_t* dst_labels, cudaStream_t stream) {
  // features ≥ 1, so the m·features threads include the m that copy labels.
  gather_batch_kernel<<<blocks_for(m * features), kThreadsPerBlock, 0, stream>>>(src, src_labels, order, state, m,
                                                                                features, dst, dst_labels);
  CUDA_CHECK_LAUNCH();
}

void softmax_cross_entropy_accumulate(const float* logits, const int32_t* labels, int64_t m, int64_t c,
                                      float* dlogits, float* row_loss, int32_t* row_correct, StepState* state,
                                      cudaStream_t stream) {
  if (m > kFusedLossRows) {
    softmax_cross_entropy(logits, labels, m, c, dlogits, row_loss, row_correct, stream);
    accumulate_rows(row_loss, row_correct, m, state, stream);
    return;
  }
  softmax_cross_entropy_accumulate_kernel<<<1, kFusedLossThreads, 0, stream>>>(logits, labels, m, c, dlogits,
                                                                               row_loss, row_correct, state);
  CUDA_CHECK_LAUNCH();
}

void accumulate_rows(const float* row_loss, const int32_t* row_correct, int64_t m, StepState* state,
                     cudaStream_t stream) {
  accumulate_rows_kernel<<<1, kThreadsPerBlock, 0, stream>>>(row_loss, row_correct, m, state);
  CUDA_CHECK_LAUNCH();
}

void advance_step(StepState* state, int64_t batch, double lr_decay, cudaStream_t stream) {
  advance_step_kernel<<<1, 1, 0, stream>>>(state, batch, lr_decay);
  CUDA_CHECK_LAUNCH();
}

void sgd_step(float* params, const float* grads, float* momentum_buffer, int64_t n, float lr,
              const double* lr_from, float momentum, float weight_decay, int64_t decay_end, cudaStream_t stream) {
  sgd_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(params, grads, momentum_buffer, n, lr, lr_from,
                                                             momentum, weight_decay, decay_end);
  CUDA_CHECK_LAUNCH();
}

namespace {
// Warps a block of the grouped bound has: its tallest target's row groups.
int column_norm_groups(const ColumnNormTargets& targets) {
  int groups = 1;
  for (int k = 0; k < targets.n; ++k) groups = std::max(groups, column_row_groups(targets.rows[k]));
  return groups;
}

// The targets' blocks and `rest_blocks` more; with no block at all, the advance alone.
void launch_column_norms(const ColumnNormTargets& targets, float max_norm, const FusedSgd& sgd, int groups,
                         int64_t rest_blocks, cudaStream_t stream) {
  if (targets.block_begin[targets.n] + rest_blocks == 0) {
    if (targets.advance) advance_step(targets.advance, targets.advance_batch, targets.advance_lr_decay, stream);
    return;
  }
  UV_CHECK(!targets.advance || targets.done, "the grouped norm bound's advance needs its block counter");
  const dim3 block(kColumnTile, static_cast<unsigned>(groups));
  max_column_norm_kernel<<<static_cast<unsigned>(targets.block_begin[targets.n] + rest_blocks), block, 0, stream>>>(
      targets, max_norm, sgd);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

void max_column_norms(const ColumnNormTargets& targets, float max_norm, cudaStream_t stream) {
  launch_column_norms(targets, max_norm, FusedSgd{}, column_norm_groups(targets), 0, stream);
}

void sgd_step_bounded(const ColumnNormTargets& targets, float max_norm, const FusedSgd& sgd, cudaStream_t stream) {
  // The rest's blocks have as many threads as a norm block, whose shape (the targets' tallest)
  // fixes the norms' summation order; with no target, 256-thread blocks.
  const int groups = targets.n > 0 ? column_norm_groups(targets) : kThreadsPerBlock / kColumnTile;
  const int64_t threads = int64_t{kColumnTile} * groups;
  const int64_t rest_blocks = std::min<int64_t>((sgd.rest_total() + threads - 1) / threads, kMaxBlocks);
  launch_column_norms(targets, max_norm, sgd, groups, rest_blocks, stream);
}

void max_column_norm(float* v, int64_t count, int64_t rows, int64_t cols, float max_norm,
                     cudaStream_t stream) {
  ColumnNormTargets targets;
  targets.add(v, count, rows, cols);
  max_column_norms(targets, max_norm, stream);
}

void uniform_init(float* x, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream_id,
                  cudaStream_t stream) {
  uniform_init_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(x, n, lo, hi, seed, stream_id);
  CUDA_CHECK_LAUNCH();
}

}  // namespace uv::cuda
