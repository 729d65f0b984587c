// In-memory image classification data sets (MNIST, Fashion-MNIST) and seeded epoch shuffles.
// Pixels are stored as float in [0, 1] once, at load time, so a batch is a row gather
// (Backend::gather_rows) from wherever the set is resident.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace uv::data {

struct Dataset {
  std::string name;
  int64_t count = 0;
  int rows = 0, cols = 0, channels = 1;
  int num_classes = 10;
  std::vector<float> images;    // (count, rows * cols * channels), row-major, pixel / 255
  std::vector<int32_t> labels;  // (count), each in [0, num_classes)

  int64_t features() const { return int64_t{rows} * cols * channels; }
  const float* image(int64_t i) const;  // (features) row of example i; checked
};

// Loads an images file (ndim 3: count, rows, cols) and its labels file (ndim 1: count), raw or gzip.
// Throws uv::UserError naming the file for a bad shape, a count mismatch or a label outside
// [0, num_classes). An empty name means the images path.
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      int num_classes = 10, const std::string& name = "");

struct DataSplit {
  Dataset train, test;
};

// Loads a named data set from dir: "mnist" (raw files, or FILE.gz where the raw one is missing) or
// "fashion_mnist" (FILE.gz, or the raw one). The caller picks the default dir; Fashion-MNIST's
// standard one is /usr/share/datasets/fashion-mnist. Missing files point the user at `make data`.
DataSplit load_dataset(const std::string& name, const std::string& dir);

// Copy of examples [begin, begin + count); throws uv::UserError when the range is outside `data`.
Dataset take_slice(const Dataset& data, int64_t begin, int64_t count);

// The permutation of 0..n-1 used in epoch `epoch`: a pure function of (seed, epoch), identical on
// every machine. Fisher-Yates from the last position down (i = n-1 .. 1 swaps i with j in [0, i]);
// the k-th draw is uv::philox_bits64(seed, rng_stream(kShuffle, epoch), k), reduced to [0, i] without
// bias by rejection (draws below 2^64 mod (i+1) are redrawn with the next k).
std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch);

}  // namespace uv::data
