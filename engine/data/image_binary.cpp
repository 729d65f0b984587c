#include "engine/data/image_binary.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"

namespace uv::data {

namespace fs = std::filesystem;

namespace {

constexpr int kChannels = 3;
constexpr int kClasses = 10;
constexpr int64_t kReadChunkBytes = int64_t{16} << 20;  // whole files would double the peak memory

// Number of `record_bytes`-byte records in `path`; the size must be a positive whole multiple.
int64_t count_records(const char* what, const std::string& path, int64_t record_bytes,
                      const char* record_layout) {
  std::error_code error;
  UV_REQUIRE(fs::is_regular_file(path, error), "cannot open " << what << " file '" << path << "': "
                                                              << (fs::exists(path, error) ? "not a regular file"
                                                                                          : "no such file"));
  const uintmax_t size = fs::file_size(path, error);
  UV_REQUIRE(!error, "cannot read the size of " << what << " file '" << path << "': " << error.message());
  UV_REQUIRE(size > 0, what << " file '" << path << "' is empty");
  UV_REQUIRE(size % static_cast<uintmax_t>(record_bytes) == 0,
             what << " file '" << path << "' is " << size << " bytes, not a whole number of "
                  << record_bytes << "-byte records (" << record_layout << "); truncated or not a "
                  << what << " file?");
  return static_cast<int64_t>(size / static_cast<uintmax_t>(record_bytes));
}

// Reads `count` records of `record_bytes` bytes from `path` in chunks and hands each to
// consume(index, bytes).
template <typename Consume>
void read_records(const char* what, const std::string& path, int64_t count, int64_t record_bytes,
                  Consume consume) {
  std::ifstream in(path, std::ios::binary);
  UV_REQUIRE(in.is_open(), "cannot open " << what << " file '" << path << "': " << std::strerror(errno));
  const int64_t chunk = std::max<int64_t>(1, kReadChunkBytes / record_bytes);
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min(chunk, count) * record_bytes));
  for (int64_t first = 0; first < count; first += chunk) {
    const int64_t n = std::min(chunk, count - first);
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(n * record_bytes));
    UV_REQUIRE(in.gcount() == n * record_bytes,
               "read error in " << what << " file '" << path << "' at record " << first
                                << " (file shrank while being read?)");
    for (int64_t i = 0; i < n; ++i) consume(first + i, buffer.data() + i * record_bytes);
  }
}

Dataset empty_rgb_set(const std::string& name, int side, int64_t count) {
  Dataset data;
  data.name = name;
  data.count = count;
  data.rows = data.cols = side;
  data.channels = kChannels;
  data.num_classes = kClasses;
  data.images.resize(static_cast<size_t>(count * data.features()));
  data.labels.resize(static_cast<size_t>(count));
  return data;
}

}  // namespace

void planes_to_hwc(const uint8_t* planes, int rows, int cols, int channels, PlaneOrder order,
                   float* hwc) {
  const int64_t plane = int64_t{rows} * cols;
  for (int ch = 0; ch < channels; ++ch) {
    const uint8_t* src = planes + ch * plane;
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const int64_t at = order == PlaneOrder::kRowMajor ? int64_t{r} * cols + c : int64_t{c} * rows + r;
        hwc[(int64_t{r} * cols + c) * channels + ch] = static_cast<float>(src[at]) / 255.0f;
      }
    }
  }
}

Dataset load_cifar10_files(const std::vector<std::string>& paths, const std::string& name) {
  UV_CHECK(!paths.empty(), "load_cifar10_files needs at least one file");
  constexpr const char* kWhat = "CIFAR-10";
  constexpr const char* kLayout = "1 label byte + 3072 pixel bytes";
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const std::string& path : paths) {
    counts.push_back(count_records(kWhat, path, kCifarRecordBytes, kLayout));
    total += counts.back();
  }
  Dataset data = empty_rgb_set(name, kCifarSide, total);
  const int64_t features = data.features();
  int64_t base = 0;  // index in `data` of the current file's first record
  for (size_t f = 0; f < paths.size(); ++f) {
    read_records(kWhat, paths[f], counts[f], kCifarRecordBytes, [&](int64_t record, const uint8_t* bytes) {
      UV_REQUIRE(bytes[0] < kClasses, "label " << int{bytes[0]} << " at record " << record << " of "
                                               << kWhat << " file '" << paths[f] << "' is outside [0, "
                                               << kClasses << ")");
      data.labels[base + record] = bytes[0];
      planes_to_hwc(bytes + 1, kCifarSide, kCifarSide, kChannels, PlaneOrder::kRowMajor,
                    data.images.data() + (base + record) * features);
    });
    base += counts[f];
  }
  return data;
}

Dataset load_stl10_pair(const std::string& images_path, const std::string& labels_path,
                        const std::string& name) {
  constexpr const char* kWhat = "STL-10";
  const int64_t count = count_records(kWhat, images_path, kStlImageBytes, "3x96x96 pixel bytes");
  const int64_t label_count = count_records(kWhat, labels_path, 1, "1 label byte");
  UV_REQUIRE(label_count == count, "STL-10 images file '" << images_path << "' holds " << count
                                                          << " images but labels file '" << labels_path
                                                          << "' holds " << label_count << " labels");
  Dataset data = empty_rgb_set(name, kStlSide, count);
  read_records(kWhat, labels_path, count, 1, [&](int64_t index, const uint8_t* label) {
    UV_REQUIRE(*label >= 1 && *label <= kClasses, "label " << int{*label} << " at index " << index
                                                           << " of STL-10 labels file '" << labels_path
                                                           << "' is outside [1, " << kClasses << "]");
    data.labels[index] = *label - 1;
  });
  const int64_t features = data.features();
  read_records(kWhat, images_path, count, kStlImageBytes, [&](int64_t index, const uint8_t* planes) {
    planes_to_hwc(planes, kStlSide, kStlSide, kChannels, PlaneOrder::kColumnMajor,
                  data.images.data() + index * features);
  });
  return data;
}

}  // namespace uv::data
