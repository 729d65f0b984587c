// IDX reader and writer (the MNIST container format, raw or gzip-compressed).
//   header: 0x00 0x00 <type> <ndim>, then ndim big-endian u32 sizes, then the data, row-major.
// Only type 0x08 (unsigned byte) is supported: it is what MNIST-style data sets use. Every defect in a
// file is a uv::UserError whose message names the file and the defect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace uv::data {

constexpr uint8_t kIdxTypeU8 = 0x08;
constexpr int kIdxMaxDims = 4;

struct IdxArray {
  uint8_t type = kIdxTypeU8;
  std::vector<uint32_t> dims;   // (ndim), outermost first
  std::vector<uint8_t> values;  // (dims[0], ..., dims[ndim-1]), row-major
  size_t count() const;         // product of dims
};

enum class IdxCompression { kRaw, kGzip };

// Reads a raw or gzip IDX file; gzip is detected by its magic bytes 0x1f 0x8b, not by the name.
IdxArray read_idx(const std::string& path);

// Writes `array` (for tests and tools); throws uv::UserError when the file cannot be written.
void write_idx(const std::string& path, const IdxArray& array, IdxCompression compression);

}  // namespace uv::data
