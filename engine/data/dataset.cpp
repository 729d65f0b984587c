#include "engine/data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <numeric>
#include <utility>

#include "engine/core/error.h"
#include "engine/core/key_order.h"
#include "engine/core/philox.h"
#include "engine/data/idx.h"
#include "engine/data/image_binary.h"

namespace uv::data {

namespace fs = std::filesystem;

const float* Dataset::image(int64_t i) const {
  UV_CHECK(i >= 0 && i < count, "example " << i << " is outside data set '" << name << "' of "
                                           << count << " examples");
  return images.data() + i * features();
}

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, int num_classes,
                      const std::string& name) {
  UV_REQUIRE(num_classes >= 1, "num_classes must be at least 1, got " << num_classes);
  const IdxArray images = read_idx(images_path);
  UV_REQUIRE(images.dims.size() == 3, "images file '" << images_path << "' has " << images.dims.size()
                                                      << " dimensions; expected 3 (count, rows, cols)");
  const IdxArray labels = read_idx(labels_path);
  UV_REQUIRE(labels.dims.size() == 1, "labels file '" << labels_path << "' has " << labels.dims.size()
                                                      << " dimensions; expected 1 (count)");
  UV_REQUIRE(images.dims[0] == labels.dims[0],
             "images file '" << images_path << "' holds " << images.dims[0] << " images but labels file '"
                             << labels_path << "' holds " << labels.dims[0] << " labels");
  UV_REQUIRE(images.dims[0] > 0, "images file '" << images_path << "' holds no examples");
  constexpr uint32_t kMaxSide = std::numeric_limits<int>::max();
  UV_REQUIRE(images.dims[1] > 0 && images.dims[2] > 0 && images.dims[1] <= kMaxSide &&
                 images.dims[2] <= kMaxSide,
             "images file '" << images_path << "' has unusable image size " << images.dims[1] << "x"
                             << images.dims[2]);

  Dataset data;
  data.name = name.empty() ? images_path : name;
  data.count = images.dims[0];
  data.rows = static_cast<int>(images.dims[1]);
  data.cols = static_cast<int>(images.dims[2]);
  data.num_classes = num_classes;

  data.labels.resize(data.count);
  for (int64_t i = 0; i < data.count; ++i) {
    const int32_t label = labels.values[i];
    UV_REQUIRE(label < num_classes, "label " << label << " at index " << i << " of '" << labels_path
                                             << "' is outside [0, " << num_classes << ")");
    data.labels[i] = label;
  }
  data.images.resize(images.values.size());
  std::transform(images.values.begin(), images.values.end(), data.images.begin(),
                 [](uint8_t pixel) { return static_cast<float>(pixel) / 255.0f; });
  return data;
}

namespace {

// The four files of an MNIST-layout data set, without the .gz suffix.
constexpr const char* kTrainImages = "train-images-idx3-ubyte";
constexpr const char* kTrainLabels = "train-labels-idx1-ubyte";
constexpr const char* kTestImages = "t10k-images-idx3-ubyte";
constexpr const char* kTestLabels = "t10k-labels-idx1-ubyte";

// Picks dir/base in the preferred encoding, else in the other one.
std::string find_data_file(const std::string& dataset, const fs::path& dir, const std::string& base,
                           IdxCompression preferred) {
  const fs::path raw = dir / base, gzip = dir / (base + ".gz");
  const bool gzip_first = preferred == IdxCompression::kGzip;
  const fs::path& first = gzip_first ? gzip : raw;
  const fs::path& second = gzip_first ? raw : gzip;
  std::error_code ignored;
  if (fs::is_regular_file(first, ignored)) return first.string();
  UV_REQUIRE(fs::is_regular_file(second, ignored),
             dataset << " file '" << first.string() << "' not found (nor '" << second.string()
                     << "'); run `make data` to fetch the data sets");
  return second.string();
}

// MNIST and Fashion-MNIST: four IDX files.
DataSplit load_idx_dataset(const std::string& name, const std::string& dir) {
  const IdxCompression preferred = name == "mnist" ? IdxCompression::kRaw : IdxCompression::kGzip;
  std::error_code ignored;
  UV_REQUIRE(fs::is_directory(dir, ignored), name << " data directory '" << dir
                                                  << "' does not exist; run `make data` to fetch the data sets");

  const std::string train_images = find_data_file(name, dir, kTrainImages, preferred);
  const std::string train_labels = find_data_file(name, dir, kTrainLabels, preferred);
  const std::string test_images = find_data_file(name, dir, kTestImages, preferred);
  const std::string test_labels = find_data_file(name, dir, kTestLabels, preferred);
  DataSplit split;
  split.train = load_idx_pair(train_images, train_labels, 10, name + "/train");
  split.test = load_idx_pair(test_images, test_labels, 10, name + "/test");
  UV_REQUIRE(split.train.rows == split.test.rows && split.train.cols == split.test.cols,
             "images in '" << train_images << "' are " << split.train.rows << "x" << split.train.cols
                           << " but images in '" << test_images << "' are " << split.test.rows << "x"
                           << split.test.cols);
  return split;
}

// A data set distributed as a binary tarball that uvtrain cannot fetch (this project's machines
// have no route to its host): where its files are expected and where to get them.
struct BinaryRelease {
  const char* title;    // "CIFAR-10"
  const char* folder;   // what the tarball extracts to, accepted inside the data directory
  const char* source;   // download page
};

constexpr BinaryRelease kCifar10{"CIFAR-10", "cifar-10-batches-bin", "https://www.cs.toronto.edu/~kriz/cifar.html"};
constexpr BinaryRelease kStl10{"STL-10", "stl10_binary", "https://cs.stanford.edu/~acoates/stl10/"};

std::string not_bundled(const BinaryRelease& release, const fs::path& dir) {
  return std::string(release.title) + " is not bundled with uvtrain and `make data` does not fetch it: " +
         "download the binary version from " + release.source + " and put its files in '" + dir.string() +
         "' (or its " + release.folder + "/ folder there)";
}

// The folder holding the release's files: dir itself, or dir/<folder> when `probe` is only there.
fs::path release_dir(const BinaryRelease& release, const std::string& name, const fs::path& dir,
                     const char* probe) {
  std::error_code ignored;
  UV_REQUIRE(fs::is_directory(dir, ignored),
             name << " data directory '" << dir.string() << "' does not exist; " << not_bundled(release, dir));
  const fs::path nested = dir / release.folder;
  if (!fs::is_regular_file(dir / probe, ignored) && fs::is_regular_file(nested / probe, ignored)) return nested;
  return dir;
}

std::string release_file(const BinaryRelease& release, const fs::path& dir, const fs::path& files,
                         const char* base) {
  const fs::path path = files / base;
  std::error_code ignored;
  UV_REQUIRE(fs::is_regular_file(path, ignored),
             release.title << " file '" << path.string() << "' not found; " << not_bundled(release, dir));
  return path.string();
}

DataSplit load_cifar10_dir(const std::string& dir) {
  const fs::path files = release_dir(kCifar10, "cifar10", dir, "test_batch.bin");
  std::vector<std::string> train_paths;
  for (int batch = 1; batch <= 5; ++batch) {
    const std::string base = "data_batch_" + std::to_string(batch) + ".bin";
    train_paths.push_back(release_file(kCifar10, dir, files, base.c_str()));
  }
  const std::string test_path = release_file(kCifar10, dir, files, "test_batch.bin");
  DataSplit split;
  split.train = load_cifar10_files(train_paths, "cifar10/train");
  split.test = load_cifar10_files({test_path}, "cifar10/test");
  return split;
}

DataSplit load_stl10_dir(const std::string& dir) {
  const fs::path files = release_dir(kStl10, "stl10", dir, "test_X.bin");
  const std::string train_x = release_file(kStl10, dir, files, "train_X.bin");
  const std::string train_y = release_file(kStl10, dir, files, "train_y.bin");
  const std::string test_x = release_file(kStl10, dir, files, "test_X.bin");
  const std::string test_y = release_file(kStl10, dir, files, "test_y.bin");
  DataSplit split;
  split.train = load_stl10_pair(train_x, train_y, "stl10/train");
  split.test = load_stl10_pair(test_x, test_y, "stl10/test");
  return split;
}

}  // namespace

bool is_dataset_name(const std::string& name) {
  return name == "mnist" || name == "fashion_mnist" || name == "cifar10" || name == "stl10";
}

std::string default_data_dir(const std::string& name) {
  return name == "fashion_mnist" ? "/usr/share/datasets/fashion-mnist" : "data/" + name;
}

DataSplit load_dataset(const std::string& name, const std::string& dir) {
  if (name == "mnist" || name == "fashion_mnist") return load_idx_dataset(name, dir);
  if (name == "cifar10") return load_cifar10_dir(dir);
  if (name == "stl10") return load_stl10_dir(dir);
  UV_FAIL("unknown data set '" << name << "'; accepted names: " << kDatasetNames);
}

Dataset take_slice(const Dataset& data, int64_t begin, int64_t count) {
  UV_REQUIRE(begin >= 0 && count >= 0 && begin <= data.count - count,
             "slice [" << begin << ", " << begin + count << ") is outside data set '" << data.name
                       << "' of " << data.count << " examples");
  Dataset slice;
  slice.name = data.name;
  slice.count = count;
  slice.rows = data.rows;
  slice.cols = data.cols;
  slice.channels = data.channels;
  slice.num_classes = data.num_classes;
  const int64_t features = data.features();
  slice.images.assign(data.images.begin() + begin * features,
                      data.images.begin() + (begin + count) * features);
  slice.labels.assign(data.labels.begin() + begin, data.labels.begin() + begin + count);
  return slice;
}

std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  UV_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(),
           "cannot permute " << n << " examples with int32 indices");
  std::vector<int32_t> perm(n);  // (n)
  std::iota(perm.begin(), perm.end(), 0);
  const uint64_t stream = rng_stream(RngStream::kShuffle, epoch);
  uint64_t draw = 0;
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t range = static_cast<uint64_t>(i) + 1;
    // 2^64 mod range: the draws left after removing it are a whole number of copies of [0, range).
    const uint64_t reject_below = (0 - range) % range;
    uint64_t bits;
    do {
      bits = philox_bits64(seed, stream, draw++);
    } while (bits < reject_below);
    std::swap(perm[i], perm[bits % range]);
  }
  return perm;
}

std::vector<int32_t> sorted_key_permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  UV_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(),
           "cannot permute " << n << " examples with int32 indices");
  std::vector<int32_t> perm(n);  // (n)
  philox_key_order(perm.data(), n, seed, rng_stream(RngStream::kShuffle, epoch));
  return perm;
}

}  // namespace uv::data
