#include "engine/core/tensor.h"

#include <sstream>

namespace uv {

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Tensor::numel() const { return shape_numel(shape); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ")";
  return out.str();
}

}  // namespace uv
