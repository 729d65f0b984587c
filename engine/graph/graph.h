// A static graph: a chain of ops built once, forward in order, backward in reverse. Every
// activation, gradient and op buffer is placed once in a single arena by a liveness planner, so a
// training step allocates nothing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/graph/op.h"

namespace uv {

struct PlannedBuffer {
  std::string name;            // "layer1.out", "layer1.dout", "layer1.T"
  int64_t floats = 0;
  int64_t offset = 0;          // floats into the arena
  int first = 0, last = 0;     // live interval on the step timeline (inclusive)
  BufferCategory category = BufferCategory::Activation;
};

struct ActivationPlan {
  std::vector<PlannedBuffer> buffers;
  int64_t arena_floats = 0;      // what the planner allocated
  int64_t unplanned_floats = 0;  // what one buffer per request would have needed
  int64_t materialised_weight_floats = 0;  // part of the requests that hold W = U·V
  // Per op, indices into `buffers`: its output, dL/d(output) (−1 when frozen), its own requests.
  std::vector<int> value_buffer, grad_buffer;
  std::vector<std::vector<int>> op_buffers;
};

class Graph {
 public:
  Graph(Backend& backend, ParameterStore& store, int64_t max_batch);
  void add(Op* op);  // not owned: several graphs (supervised, pretraining) share one model's ops
  Op& op(size_t i) { return *ops_.at(i); }
  size_t size() const { return ops_.size(); }
  // Ops [0, index) are frozen; keep a forward value (0 = input) alive until the loss reads it.
  void set_trainable_from(size_t index) { trainable_from_ = index; }
  void keep_value_for_loss(size_t value) { loss_reads_value_ = static_cast<int>(value); }
  // Plans buffers and assigns gradient modes; params must be allocated. The modes are this graph's:
  // ops shared with another graph (a layer in the supervised and its pretraining graph) get them
  // again at the start of every backward().
  void finalize();

  // Runs all ops on `x` (m × in_features); returns the output (m × out_features).
  const float* forward(const float* x, int64_t m);
  // dL/d(output): the loss writes it before each backward, which may overwrite it (a last op with a
  // folded activation turns it into dL/d(pre-activation) in place).
  float* output_grad() const { return grads_.back(); }
  void backward(int64_t m);
  const float* value(size_t i) const { return i == 0 ? input_ : values_.at(i - 1); }

  int64_t in_features() const { return ops_.front()->in_features(); }
  int64_t out_features() const { return ops_.back()->out_features(); }
  int64_t max_batch() const { return max_batch_; }
  const ActivationPlan& plan() const { return plan_; }  // what finalize() allocated
  // The plan the ops' current buffer requests would get (no allocation): lets a caller price an
  // alternative, e.g. every predicted layer materialised.
  ActivationPlan replan() const;
  // Learned parameters whose gradient this graph writes (what the optimiser updates).
  std::vector<int> trainable_params() const;

 private:
  Backend& backend_;
  ParameterStore& store_;
  int64_t max_batch_;
  size_t trainable_from_ = 0;
  int loss_reads_value_ = -1;
  bool finalized_ = false;
  std::vector<Op*> ops_;
  ActivationPlan plan_;
  Buffer arena_;
  const float* input_ = nullptr;
  std::vector<float*> values_;               // output of op i: (max_batch, out_features)
  std::vector<float*> grads_;                // dL/d(output of op i), null when frozen
  std::vector<std::vector<float*>> op_buffers_;
  // Per op, aligned with its gradient_params(): overwrite or accumulate, as this graph writes them.
  std::vector<std::vector<GradientMode>> gradient_modes_;
  std::vector<std::string> forward_names_, backward_names_;  // NVTX range names, built once
};

// Greedy-by-size offset assignment: buffers whose live intervals overlap never share memory.
int64_t plan_offsets(std::vector<PlannedBuffer>& buffers, int64_t align_floats);

}  // namespace uv
