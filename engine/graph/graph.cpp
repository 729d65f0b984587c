#include "engine/graph/graph.h"

#include <algorithm>
#include <numeric>

#include "engine/core/error.h"
#include "engine/core/nvtx.h"

namespace uv {

Graph::Graph(Backend& backend, ParameterStore& store, int64_t max_batch)
    : backend_(backend), store_(store), max_batch_(max_batch) {}

void Graph::add(Op* op) {
  UV_CHECK(!finalized_, "graph already finalized");
  if (!ops_.empty())
    UV_CHECK(ops_.back()->out_features() == op->in_features(),
             "op " << op->name() << " takes " << op->in_features() << " features but "
                   << ops_.back()->name() << " gives " << ops_.back()->out_features());
  ops_.push_back(op);
}

int64_t plan_offsets(std::vector<PlannedBuffer>& buffers, int64_t align_floats) {
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first; among equal sizes, earliest first: first-fit over intervals taken in order of
  // their start needs no more slots than buffers alive at once (an MLP's same-sized activations
  // and gradients), where creation order had left a third 100×4096 slot for the wide MLP.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].floats != buffers[b].floats) return buffers[a].floats > buffers[b].floats;
    return buffers[a].first < buffers[b].first;
  });
  std::vector<size_t> placed;
  int64_t arena = 0;
  for (size_t i : order) {
    PlannedBuffer& buf = buffers[i];
    const int64_t size = (buf.floats + align_floats - 1) / align_floats * align_floats;
    // Collect the address ranges of placed buffers alive at the same time, then take the lowest gap.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const PlannedBuffer& other = buffers[j];
      if (other.first <= buf.last && buf.first <= other.last)
        busy.emplace_back(other.offset, other.offset + other.floats);
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + size <= begin) break;
      offset = std::max(offset, (end + align_floats - 1) / align_floats * align_floats);
    }
    buf.offset = offset;
    arena = std::max(arena, offset + size);
    placed.push_back(i);
  }
  return arena;
}

ActivationPlan Graph::replan() const {
  const int n = static_cast<int>(ops_.size());
  const int fb = static_cast<int>(trainable_from_);
  // Timeline: forward of op i at t = i, the loss at t = n, backward of op i at t = 2n − i.
  auto bw = [n](int i) { return 2 * n - i; };
  ActivationPlan plan;
  std::vector<PlannedBuffer>& bufs = plan.buffers;
  plan.value_buffer.assign(n, -1);
  plan.grad_buffer.assign(n, -1);
  plan.op_buffers.assign(n, {});
  for (int i = 0; i < n; ++i) {
    const Op& op = *ops_[i];
    const bool trains = i >= fb;
    int last = (i + 1 < n) ? i + 1 : n;  // read by the next op, or by the loss
    if (trains && op.backward_reads_output()) last = std::max(last, bw(i));
    if (i + 1 < n && i + 1 >= fb && ops_[i + 1]->backward_reads_input()) last = std::max(last, bw(i + 1));
    if (loss_reads_value_ == i + 1) last = std::max(last, n);
    plan.value_buffer[i] = static_cast<int>(bufs.size());
    bufs.push_back({op.name() + ".out", max_batch_ * op.out_features(), 0, i, last, BufferCategory::Activation});
    if (trains) {
      // dL/d(out of op i): written by op i+1's backward (or the loss), read by op i's backward.
      plan.grad_buffer[i] = static_cast<int>(bufs.size());
      const int first = (i + 1 < n) ? bw(i + 1) : n;
      bufs.push_back({op.name() + ".dout", max_batch_ * op.out_features(), 0, first, bw(i), BufferCategory::Activation});
    }
    for (const BufferRequest& req : op.buffers(max_batch_)) {
      int first = i, end = i;
      if (req.life == BufferLife::Saved && trains) end = bw(i);
      if (req.life == BufferLife::BackwardScratch) {
        if (!trains) continue;
        first = end = bw(i);
      }
      plan.op_buffers[i].push_back(static_cast<int>(bufs.size()));
      bufs.push_back({op.name() + "." + req.name, req.floats, 0, first, end, req.category});
    }
  }
  for (const PlannedBuffer& b : bufs) {
    plan.unplanned_floats += b.floats;
    if (b.category == BufferCategory::MaterialisedWeight) plan.materialised_weight_floats += b.floats;
  }
  plan.arena_floats = plan_offsets(bufs, 16);
  return plan;
}

void Graph::finalize() {
  UV_CHECK(!finalized_ && !ops_.empty(), "finalize on an empty or finalized graph");
  UV_CHECK(store_.allocated(), "allocate parameters before finalizing a graph");
  const int n = static_cast<int>(ops_.size());
  const int fb = static_cast<int>(trainable_from_);
  plan_ = replan();
  const std::vector<PlannedBuffer>& bufs = plan_.buffers;
  const std::vector<int>& value_buf = plan_.value_buffer;
  const std::vector<int>& grad_buf = plan_.grad_buffer;
  const std::vector<std::vector<int>>& op_buf = plan_.op_buffers;
  arena_ = backend_.allocate(static_cast<size_t>(std::max<int64_t>(plan_.arena_floats, 1)) * sizeof(float));
  float* base = arena_.floats();
  values_.assign(n, nullptr);
  grads_.assign(n, nullptr);
  op_buffers_.assign(n, {});
  for (int i = 0; i < n; ++i) {
    values_[i] = base + bufs[value_buf[i]].offset;
    if (grad_buf[i] >= 0) grads_[i] = base + bufs[grad_buf[i]].offset;
    for (int b : op_buf[i]) op_buffers_[i].push_back(base + bufs[b].offset);
    // Frozen ops skip backward; keep the vector sized so forward can index the saved buffers.
    if (i < fb) {
      std::vector<BufferRequest> reqs = ops_[i]->buffers(max_batch_);
      std::vector<float*> full;
      size_t k = 0;
      for (const BufferRequest& req : reqs)
        full.push_back(req.life == BufferLife::BackwardScratch ? nullptr : op_buffers_[i][k++]);
      op_buffers_[i] = std::move(full);
    }
  }
  for (Op* op : ops_) {
    forward_names_.push_back(op->name() + " forward (" + op->type() + ")");
    backward_names_.push_back(op->name() + " backward (" + op->type() + ")");
  }
  // Gradient modes: walking backward, the first op to write a parameter's gradient overwrites it
  // and later ones accumulate (a tied autoencoder's V is written by decoder then encoder).
  // The modes are kept per graph and set on the ops again before each backward: the ops are shared,
  // and a pretraining graph finalized after the supervised one sets its encoder's V to accumulate,
  // which the supervised graph's single writer must not inherit (it would add up stale gradients).
  std::vector<bool> written(store_.all().size(), false);
  gradient_modes_.assign(n, {});
  for (int i = n - 1; i >= fb; --i)
    for (int p : ops_[i]->gradient_params()) {
      gradient_modes_[i].push_back(written[p] ? GradientMode::Accumulate : GradientMode::Overwrite);
      ops_[i]->set_gradient_mode(p, gradient_modes_[i].back());
      written[p] = true;
    }
  finalized_ = true;
}

std::vector<int> Graph::trainable_params() const {
  std::vector<int> out;
  for (size_t i = trainable_from_; i < ops_.size(); ++i)
    for (int p : ops_[i]->gradient_params())
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  return out;
}

const float* Graph::forward(const float* x, int64_t m) {
  UV_CHECK(finalized_, "forward before finalize");
  UV_CHECK(m >= 1 && m <= max_batch_, "batch " << m << " outside [1, " << max_batch_ << "]");
  input_ = x;
  OpContext ctx;
  ctx.backend = &backend_;
  ctx.params = &store_;
  ctx.m = m;
  for (size_t i = 0; i < ops_.size(); ++i) {
    ctx.x = value(i);
    ctx.y = values_[i];
    ctx.buffers = {op_buffers_[i].data(), op_buffers_[i].size()};
    NvtxRange range(forward_names_[i]);
    ops_[i]->forward(ctx);
  }
  return values_.back();
}

void Graph::backward(int64_t m) {
  OpContext ctx;
  ctx.backend = &backend_;
  ctx.params = &store_;
  ctx.m = m;
  for (size_t i = ops_.size(); i-- > trainable_from_;) {
    ctx.x = value(i);
    ctx.y = values_[i];
    ctx.dy = grads_[i];
    ctx.dx = (i > trainable_from_) ? grads_[i - 1] : nullptr;
    ctx.buffers = {op_buffers_[i].data(), op_buffers_[i].size()};
    const std::vector<int>& params = ops_[i]->gradient_params();
    for (size_t k = 0; k < params.size(); ++k) ops_[i]->set_gradient_mode(params[k], gradient_modes_[i][k]);
    NvtxRange range(backward_names_[i]);
    ops_[i]->backward(ctx);
  }
}

}  // namespace uv
