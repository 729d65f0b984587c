// Tensors are non-owning float32 views (pointer, shape, device); memory is owned by Buffers that a
// Backend allocates, so a view into the parameter arena and a standalone activation look the same.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace uv {

enum class Device { CPU, CUDA };

const char* device_name(Device device);

struct Tensor {
  float* data = nullptr;
  std::vector<int64_t> shape;
  Device device = Device::CPU;

  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(static_cast<size_t>(i)); }
  int64_t rows() const { return shape.at(0); }                 // ASSUMPTION: 2-D, row-major
  int64_t cols() const { return shape.size() > 1 ? shape.at(1) : 1; }
  size_t bytes() const { return static_cast<size_t>(numel()) * sizeof(float); }
  bool defined() const { return data != nullptr; }
};

std::string shape_string(const std::vector<int64_t>& shape);
int64_t shape_numel(const std::vector<int64_t>& shape);

// Owned device or host memory with the backend's deleter.
class Buffer {
 public:
  Buffer() = default;
  Buffer(void* data, size_t bytes, Device device, std::function<void(void*)> release)
      : data_(data, std::move(release)), bytes_(bytes), device_(device) {}
  float* floats() const { return static_cast<float*>(data_.get()); }
  void* data() const { return data_.get(); }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  std::shared_ptr<void> data_;
  size_t bytes_ = 0;
  Device device_ = Device::CPU;
};

}  // namespace uv
