#include "engine/graph/parameters.h"

#include "engine/core/error.h"

#include <algorithm>

namespace uv {

namespace {
constexpr int64_t kArenaAlignFloats = 16;  // 64-byte aligned tensors inside each arena
int64_t align_up(int64_t n) { return (n + kArenaAlignFloats - 1) / kArenaAlignFloats * kArenaAlignFloats; }
}  // namespace

int ParameterStore::add(ParamSpec spec) {
  UV_CHECK(!allocated_, "parameter " << spec.name << " added after allocation");
  UV_CHECK(find(spec.name) < 0, "duplicate parameter " << spec.name);
  Parameter p;
  p.spec = std::move(spec);
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size() - 1);
}

int ParameterStore::find(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].spec.name == name) return static_cast<int>(i);
  return -1;
}

void ParameterStore::allocate(Backend& backend) {
  UV_CHECK(!allocated_, "parameter store allocated twice");
  learned_floats_ = fixed_floats_ = learned_tensors_ = 0;
  // Learned tensors with weight decay first, then those without, each group in the order added.
  for (const bool decayed : {true, false})
    for (Parameter& p : params_) {
      if (p.spec.kind != ParamKind::Learned || p.spec.weight_decay != decayed) continue;
      p.offset = learned_floats_;
      learned_floats_ += align_up(p.numel());
      ++learned_tensors_;
    }
  decayed_floats_ = 0;
  for (const Parameter& p : params_)
    if (p.spec.kind == ParamKind::Learned && p.spec.weight_decay)
      decayed_floats_ = std::max(decayed_floats_, p.offset + align_up(p.numel()));
  for (Parameter& p : params_) {
    if (p.spec.kind != ParamKind::Fixed) continue;
    p.offset = fixed_floats_;
    fixed_floats_ += align_up(p.numel());
  }
  auto bytes = [](int64_t floats) { return static_cast<size_t>(floats) * sizeof(float); };
  learned_ = backend.allocate(bytes(learned_floats_));
  grads_ = backend.allocate(bytes(learned_floats_));
  momentum_ = backend.allocate(bytes(learned_floats_));
  fixed_ = backend.allocate(bytes(fixed_floats_));
  // Zero everything once so alignment padding never holds garbage that a whole-arena op could read.
  for (const Buffer* b : {&learned_, &grads_, &momentum_, &fixed_})
    if (b->bytes()) backend.fill(b->floats(), static_cast<int64_t>(b->bytes() / sizeof(float)), 0.f);
  for (Parameter& p : params_) {
    if (p.spec.kind == ParamKind::Learned) {
      p.value = learned_.floats() + p.offset;
      p.grad = grads_.floats() + p.offset;
      p.momentum = momentum_.floats() + p.offset;
    } else {
      p.value = fixed_.floats() + p.offset;
    }
  }
  allocated_ = true;
}

}  // namespace uv
