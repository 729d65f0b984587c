// Parameters live in one contiguous arena per kind (learned values, their gradients, optimiser
// momentum, fixed dictionaries), so a later all-reduce or optimiser launch covers each kind at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend/backend.h"

namespace uv {

enum class ParamKind {
  Learned,  // has a gradient and optimiser state (V, biases, dense W, LowRank's U)
  Fixed,    // built before training and never updated (a dictionary U)
};

enum class ParamInit { Zero, Uniform, External /* written by the model builder (dictionaries) */ };

struct ParamSpec {
  std::string name;             // "layer1.V"
  std::vector<int64_t> shape;   // logical shape, row-major
  ParamKind kind = ParamKind::Learned;
  ParamInit init = ParamInit::Zero;
  float init_scale = 0.f;       // Uniform(±init_scale)
  bool weight_decay = false;    // L2 applies to weights, not biases
  // Max column norm (the spec's pipeline constrains the columns of V): the tensor is `norm_count`
  // row-major (norm_rows × norm_cols) matrices whose columns are each kept at norm ≤ the limit.
  bool max_col_norm = false;
  int64_t norm_count = 1, norm_rows = 0, norm_cols = 0;
};

struct Parameter {
  ParamSpec spec;
  int64_t offset = 0;          // floats into its kind's arena
  float* value = nullptr;      // (numel)
  float* grad = nullptr;       // (numel), Learned only
  float* momentum = nullptr;   // (numel), Learned only
  int64_t numel() const { return shape_numel(spec.shape); }
};

class ParameterStore {
 public:
  int add(ParamSpec spec);  // returns the index; only before allocate()
  void allocate(Backend& backend);
  bool allocated() const { return allocated_; }

  Parameter& at(int index) { return params_.at(static_cast<size_t>(index)); }
  const Parameter& at(int index) const { return params_.at(static_cast<size_t>(index)); }
  int find(const std::string& name) const;  // −1 when absent
  const std::vector<Parameter>& all() const { return params_; }
  std::vector<Parameter>& all() { return params_; }

  int64_t learned_floats() const { return learned_floats_; }
  int64_t learned_tensors() const { return learned_tensors_; }  // set by allocate()
  // The learned arena holds the weight-decayed tensors first: [0, decayed_floats()) (padding
  // included), then the rest (biases), so one optimiser call covers it all (SgdArgs::decay_end).
  int64_t decayed_floats() const { return decayed_floats_; }
  int64_t fixed_floats() const { return fixed_floats_; }
  float* learned_arena() const { return learned_.floats(); }   // (learned_floats)
  float* grad_arena() const { return grads_.floats(); }        // (learned_floats)
  float* momentum_arena() const { return momentum_.floats(); } // (learned_floats)

 private:
  std::vector<Parameter> params_;
  bool allocated_ = false;
  int64_t learned_floats_ = 0, fixed_floats_ = 0, decayed_floats_ = 0, learned_tensors_ = 0;
  Buffer learned_, grads_, momentum_, fixed_;
};

}  // namespace uv
