// In-memory image classification data sets (MNIST, Fashion-MNIST, CIFAR-10, STL-10) and seeded
// epoch shuffles. Pixels are stored as float in [0, 1] once, at load time, so a batch is a row
// gather (Backend::gather_rows) from wherever the set is resident.
//
// Image layout: every image is stored HWC, i.e. feature (r * cols + c) * channels + ch holds
// pixel (row r, col c, channel ch), channel fastest; a batch of them is NHWC. This is the column
// order of the conv layers' NHWC im2col and of dict::image_coordinates. Readers of formats that
// store channel planes (CIFAR-10, STL-10: engine/data/image_binary.h) transpose at load time;
// for one channel (MNIST) HWC is plain row-major.
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
  std::vector<float> images;    // (count, rows, cols, channels) = NHWC, row-major, pixel / 255
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

// Loads a named data set from dir:
//   "mnist"          raw IDX files, or FILE.gz where the raw one is missing;
//   "fashion_mnist"  FILE.gz, or the raw one (standard dir /usr/share/datasets/fashion-mnist);
//   "cifar10"        data_batch_1.bin .. data_batch_5.bin (train, in that order) and test_batch.bin,
//                    in dir or in dir/cifar-10-batches-bin (the binary tarball's folder);
//   "stl10"          train_X.bin, train_y.bin, test_X.bin, test_y.bin, in dir or in
//                    dir/stl10_binary (unlabeled_X.bin is not read).
// The caller picks the default dir. Missing MNIST files point the user at `make data`; missing
// CIFAR-10 or STL-10 files say that those sets are not bundled and where to put them.
DataSplit load_dataset(const std::string& name, const std::string& dir);

// Where a run looks when its data dir is empty: the Debian package's folder for Fashion-MNIST, else
// data/<name> (MNIST is fetched there by `make data`; CIFAR-10 and STL-10 are placed there by hand).
std::string default_data_dir(const std::string& name);

// The names load_dataset accepts, for messages and config validation.
constexpr const char* kDatasetNames = "mnist, fashion_mnist, cifar10, stl10";
bool is_dataset_name(const std::string& name);

// Copy of examples [begin, begin + count); throws uv::UserError when the range is outside `data`.
Dataset take_slice(const Dataset& data, int64_t begin, int64_t count);

// The permutation of 0..n-1 used in epoch `epoch`: a pure function of (seed, epoch), identical on
// every machine. Fisher-Yates from the last position down (i = n-1 .. 1 swaps i with j in [0, i]);
// the k-th draw is uv::philox_bits64(seed, rng_stream(kShuffle, epoch), k), reduced to [0, i] without
// bias by rejection (draws below 2^64 mod (i+1) are redrawn with the next k).
std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch);

// data.shuffle = device: 0..n-1 sorted by the key philox_bits64(seed, rng_stream(kShuffle, epoch), i),
// ties by index. Sorting keys is parallel (Backend::shuffled_order computes it on the device), so
// this is a different permutation from epoch_permutation's. The reference the backends match.
std::vector<int32_t> sorted_key_permutation(int64_t n, uint64_t seed, uint64_t epoch);

}  // namespace uv::data
