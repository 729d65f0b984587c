// The op interface of the graph executor: an op declares its parameters and buffers once, then
// runs forward and backward on raw device pointers through the Backend.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/graph/parameters.h"

namespace uv {

enum class BufferLife {
  Saved,            // written in forward, read in backward (T of the chain strategy)
  ForwardScratch,   // only during this op's forward
  BackwardScratch,  // only during this op's backward (dT)
};

// What a buffer holds, for the memory account.
enum class BufferCategory { Activation, MaterialisedWeight };

struct BufferRequest {
  std::string name;
  int64_t floats = 0;
  BufferLife life = BufferLife::Saved;
  BufferCategory category = BufferCategory::Activation;
};

// One op's planned buffers: a view into the graph's plan, so handing them to an op copies nothing
// (a training step allocates nothing, tests/test_step_allocations.cpp).
struct OpBuffers {
  float* const* data = nullptr;
  size_t count = 0;
  float* at(size_t i) const {
    UV_CHECK(i < count, "op buffer " << i << " of " << count);
    return data[i];
  }
  size_t size() const { return count; }
};

struct OpContext {
  Backend* backend = nullptr;
  ParameterStore* params = nullptr;
  int64_t m = 0;                  // rows in this batch (≤ the planned maximum)
  const float* x = nullptr;       // (m, in_features)
  float* y = nullptr;             // (m, out_features)
  // (m, out_features), backward only. An op that folded its activation in turns it into dY·act'
  // in place: it is this op's output gradient, which nothing reads after this op's backward.
  float* dy = nullptr;
  float* dx = nullptr;            // (m, in_features), null when the input needs no gradient
  OpBuffers buffers;              // one per BufferRequest, in order
};

class Op {
 public:
  virtual ~Op() = default;
  virtual std::string type() const = 0;
  virtual std::vector<BufferRequest> buffers(int64_t max_batch) const { return {}; }
  virtual bool backward_reads_input() const { return false; }
  virtual bool backward_reads_output() const { return false; }
  virtual void forward(OpContext& ctx) = 0;
  virtual void backward(OpContext& ctx) = 0;
  // Takes over the activation that follows this op in every graph it is in, before any graph is
  // finalized: the bias and the activation then run as one pass after the op's products, and
  // act' with the bias gradient as one before them. False where the op cannot.
  virtual bool fold_activation(Activation) { return false; }

  const std::string& name() const { return name_; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  // Learned parameters whose gradients this op writes, and how (set by the graph).
  const std::vector<int>& gradient_params() const { return gradient_params_; }
  void set_gradient_mode(int param, GradientMode mode);
  GradientMode gradient_mode(int param) const;

 protected:
  Op(std::string name, int64_t in, int64_t out) : name_(std::move(name)), in_features_(in), out_features_(out) {}
  std::string name_;
  int64_t in_features_ = 0, out_features_ = 0;
  std::vector<int> gradient_params_;
  std::vector<GradientMode> gradient_modes_;
};

}  // namespace uv
