// CIFAR-10 and STL-10 binary readers (engine/data/image_binary.h) and their load_dataset entries.
// Neither data set is on this project's machines, so every file here is written by the test with
// pixels at the byte offsets the formats define, and decoding is checked exactly: channel order,
// HWC placement, STL-10's column-major planes, labels (STL-10's 1..10 → 0..9), counts and every
// defect the readers reject. The real sets are checked only where someone has placed them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "engine/core/error.h"
#include "engine/data/dataset.h"
#include "engine/data/image_binary.h"

namespace {

namespace fs = std::filesystem;
using uv::data::DataSplit;
using uv::data::Dataset;
using uv::data::PlaneOrder;

using Bytes = std::vector<uint8_t>;

constexpr int kCifarPlane = 32 * 32;
constexpr int kStlPlane = 96 * 96;

std::string source_dir() {
#ifdef UV_SOURCE_DIR
  return UV_SOURCE_DIR;
#else
  return ".";
#endif
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Runs `action` and insists it throws uv::UserError containing every piece of `expected`.
void expect_user_error(const std::function<void()>& action, const std::vector<std::string>& expected) {
  try {
    action();
    ADD_FAILURE() << "no uv::UserError thrown; expected one with '" << expected.front() << "'";
  } catch (const uv::UserError& e) {
    const std::string message = e.what();
    for (const std::string& piece : expected)
      EXPECT_NE(message.find(piece), std::string::npos) << "message lacks '" << piece << "': " << message;
  }
}

// One synthetic image: random channel planes (3, side, side) and a label; the file bytes are built
// from these by the format's own rules, independently of the reader.
struct Image {
  Bytes planes;  // (3, side * side): plane ch holds pixel (r, c) at r*side + c (row-major here)
  int label;     // 0..9
};

std::vector<Image> random_images(int count, int side, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> byte(0, 255), label(0, 9);
  std::vector<Image> images(count);
  for (Image& image : images) {
    image.planes.resize(static_cast<size_t>(3) * side * side);
    for (uint8_t& p : image.planes) p = static_cast<uint8_t>(byte(rng));
    image.label = label(rng);
  }
  return images;
}

// CIFAR-10 records: label byte, then R, G, B planes, each row-major.
Bytes cifar_bytes(const std::vector<Image>& images) {
  Bytes bytes;
  for (const Image& image : images) {
    bytes.push_back(static_cast<uint8_t>(image.label));
    bytes.insert(bytes.end(), image.planes.begin(), image.planes.end());
  }
  return bytes;
}

// STL-10 X bytes: R, G, B planes, each COLUMN-major (pixel (r, c) at c*96 + r); y bytes: label + 1.
Bytes stl_x_bytes(const std::vector<Image>& images) {
  Bytes bytes;
  for (const Image& image : images)
    for (int ch = 0; ch < 3; ++ch)
      for (int c = 0; c < 96; ++c)
        for (int r = 0; r < 96; ++r) bytes.push_back(image.planes[ch * kStlPlane + r * 96 + c]);
  return bytes;
}

Bytes stl_y_bytes(const std::vector<Image>& images) {
  Bytes bytes;
  for (const Image& image : images) bytes.push_back(static_cast<uint8_t>(image.label + 1));
  return bytes;
}

// Every pixel of every example equals the source plane value / 255 at its HWC position.
void expect_decoded(const Dataset& data, const std::vector<Image>& images, int side) {
  ASSERT_EQ(data.count, static_cast<int64_t>(images.size()));
  ASSERT_EQ(data.rows, side);
  ASSERT_EQ(data.cols, side);
  ASSERT_EQ(data.channels, 3);
  ASSERT_EQ(data.features(), int64_t{3} * side * side);
  ASSERT_EQ(data.images.size(), images.size() * static_cast<size_t>(data.features()));
  EXPECT_EQ(data.num_classes, 10);
  for (int64_t i = 0; i < data.count; ++i) {
    EXPECT_EQ(data.labels[i], images[i].label) << "example " << i;
    const float* hwc = data.image(i);
    int64_t mismatches = 0;
    for (int r = 0; r < side; ++r)
      for (int c = 0; c < side; ++c)
        for (int ch = 0; ch < 3; ++ch) {
          const float expected = static_cast<float>(images[i].planes[(ch * side + r) * side + c]) / 255.0f;
          if (hwc[(r * side + c) * 3 + ch] != expected && mismatches++ < 5)
            ADD_FAILURE() << "example " << i << " pixel (" << r << ", " << c << ", " << ch << "): "
                          << hwc[(r * side + c) * 3 + ch] << " vs " << expected;
        }
    EXPECT_EQ(mismatches, 0) << "example " << i;
  }
}

class ImageBinary : public uv::test::TempDirTest {
 protected:
  // A CIFAR-10 folder at dir_/sub: five train batches of `train_counts` records and a test batch.
  void write_cifar(const std::string& sub, const std::vector<int>& train_counts, int test_count) {
    fs::create_directories(dir_ / sub);
    std::mt19937_64 rng(uv::test::fresh_seed());
    cifar_train_.clear();
    for (size_t b = 0; b < train_counts.size(); ++b) {
      const std::vector<Image> batch = random_images(train_counts[b], 32, rng);
      write_bytes(dir_ / sub / ("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_bytes(batch));
      cifar_train_.insert(cifar_train_.end(), batch.begin(), batch.end());
    }
    cifar_test_ = random_images(test_count, 32, rng);
    write_bytes(dir_ / sub / "test_batch.bin", cifar_bytes(cifar_test_));
  }

  // An STL-10 folder at dir_/sub with `train` and `test` labelled images (and an unlabeled file
  // that must be ignored).
  void write_stl(const std::string& sub, int train, int test) {
    fs::create_directories(dir_ / sub);
    std::mt19937_64 rng(uv::test::fresh_seed() + 1);
    stl_train_ = random_images(train, 96, rng);
    stl_test_ = random_images(test, 96, rng);
    write_bytes(dir_ / sub / "train_X.bin", stl_x_bytes(stl_train_));
    write_bytes(dir_ / sub / "train_y.bin", stl_y_bytes(stl_train_));
    write_bytes(dir_ / sub / "test_X.bin", stl_x_bytes(stl_test_));
    write_bytes(dir_ / sub / "test_y.bin", stl_y_bytes(stl_test_));
    write_bytes(dir_ / sub / "unlabeled_X.bin", Bytes(100, 7));  // not a whole image: must not be read
  }

  std::vector<Image> cifar_train_, cifar_test_, stl_train_, stl_test_;
};

// ---------------------------------------------------------------------------------------------------
// Plane → HWC conversion, by hand

TEST(ImageBinaryPlanes, RowMajorPlanesToHwc) {
  // 2 rows x 3 cols x 2 channels; plane 0 = 0..5, plane 1 = 10..15, row-major.
  const Bytes planes = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
  std::vector<float> hwc(12, std::nanf(""));
  uv::data::planes_to_hwc(planes.data(), 2, 3, 2, PlaneOrder::kRowMajor, hwc.data());
  const Bytes expected = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
  for (size_t i = 0; i < hwc.size(); ++i) EXPECT_EQ(hwc[i], expected[i] / 255.0f) << i;
}

TEST(ImageBinaryPlanes, ColumnMajorPlanesToHwc) {
  // The same image with each plane stored column by column: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2).
  const Bytes planes = {0, 3, 1, 4, 2, 5, 10, 13, 11, 14, 12, 15};
  std::vector<float> hwc(12, std::nanf(""));
  uv::data::planes_to_hwc(planes.data(), 2, 3, 2, PlaneOrder::kColumnMajor, hwc.data());
  const Bytes expected = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
  for (size_t i = 0; i < hwc.size(); ++i) EXPECT_EQ(hwc[i], expected[i] / 255.0f) << i;
}

// ---------------------------------------------------------------------------------------------------
// CIFAR-10

TEST_F(ImageBinary, CifarBytesLandWhereTheFormatSays) {
  // One record, pinned offsets: byte 1 is red (0,0), 2 red (0,1), 1+32 red (1,0), 1+1024 green (0,0),
  // 1+2048 blue (0,0), the last byte blue (31,31).
  Bytes record(uv::data::kCifarRecordBytes, 0);
  record[0] = 7;
  record[1] = 11;
  record[2] = 22;
  record[1 + 32] = 33;
  record[1 + kCifarPlane] = 44;
  record[1 + 2 * kCifarPlane] = 55;
  record.back() = 255;
  write_bytes(dir_ / "one.bin", record);
  const Dataset data = uv::data::load_cifar10_files({path("one.bin")}, "one");
  ASSERT_EQ(data.count, 1);
  EXPECT_EQ(data.labels[0], 7);
  const float* hwc = data.image(0);
  EXPECT_EQ(hwc[0], 11 / 255.0f);                  // (0, 0, R)
  EXPECT_EQ(hwc[1], 44 / 255.0f);                  // (0, 0, G)
  EXPECT_EQ(hwc[2], 55 / 255.0f);                  // (0, 0, B)
  EXPECT_EQ(hwc[3], 22 / 255.0f);                  // (0, 1, R)
  EXPECT_EQ(hwc[32 * 3], 33 / 255.0f);             // (1, 0, R)
  EXPECT_EQ(hwc[(31 * 32 + 31) * 3 + 2], 1.0f);    // (31, 31, B)
  EXPECT_EQ(std::count(data.images.begin(), data.images.end(), 0.0f), 3072 - 6);
}

TEST_F(ImageBinary, CifarDirectoryDecodesEveryPixel) {
  write_cifar("cifar", {2, 1, 3, 1, 2}, 4);
  const DataSplit split = uv::data::load_dataset("cifar10", path("cifar"));
  EXPECT_EQ(split.train.name, "cifar10/train");
  EXPECT_EQ(split.test.name, "cifar10/test");
  expect_decoded(split.train, cifar_train_, 32);  // batches 1..5 in order
  expect_decoded(split.test, cifar_test_, 32);
}

TEST_F(ImageBinary, CifarAcceptsTheTarballFolder) {
  write_cifar("cifar/cifar-10-batches-bin", {1, 1, 1, 1, 1}, 2);
  const DataSplit split = uv::data::load_dataset("cifar10", path("cifar"));
  EXPECT_EQ(split.train.count, 5);
  EXPECT_EQ(split.test.count, 2);
}

TEST_F(ImageBinary, CifarTruncatedFile) {
  write_cifar("cifar", {2, 2, 2, 2, 2}, 2);
  const fs::path batch = dir_ / "cifar" / "data_batch_3.bin";
  fs::resize_file(batch, 2 * 3073 - 5);
  expect_user_error([&] { uv::data::load_dataset("cifar10", path("cifar")); },
                    {batch.string(), "6141 bytes", "3073-byte records"});
}

TEST_F(ImageBinary, CifarEmptyFile) {
  write_cifar("cifar", {2, 2, 2, 2, 2}, 2);
  const fs::path test = dir_ / "cifar" / "test_batch.bin";
  fs::resize_file(test, 0);
  expect_user_error([&] { uv::data::load_dataset("cifar10", path("cifar")); }, {test.string(), "is empty"});
}

TEST_F(ImageBinary, CifarLabelOutOfRangeNamesFileAndRecord) {
  std::mt19937_64 rng(uv::test::fresh_seed());
  std::vector<Image> images = random_images(3, 32, rng);
  images[2].label = 10;
  write_bytes(dir_ / "bad.bin", cifar_bytes(images));
  expect_user_error([&] { uv::data::load_cifar10_files({path("bad.bin")}, "bad"); },
                    {path("bad.bin"), "label 10 at record 2", "outside [0, 10)"});
}

TEST_F(ImageBinary, CifarMissingFileSaysNotBundled) {
  write_cifar("cifar", {1, 1, 1, 1, 1}, 1);
  const fs::path batch = dir_ / "cifar" / "data_batch_4.bin";
  fs::remove(batch);
  expect_user_error([&] { uv::data::load_dataset("cifar10", path("cifar")); },
                    {batch.string(), "not found", "not bundled"});
}

TEST_F(ImageBinary, CifarMissingDirectorySaysNotBundled) {
  expect_user_error([&] { uv::data::load_dataset("cifar10", path("nowhere")); },
                    {path("nowhere"), "does not exist", "not bundled"});
}

// ---------------------------------------------------------------------------------------------------
// STL-10

TEST_F(ImageBinary, StlBytesAreColumnMajor) {
  // One image, pinned offsets: byte 1 is red (row 1, col 0), byte 96 red (row 0, col 1), byte 9216
  // green (0, 0), the last byte blue (95, 95).
  Bytes x(uv::data::kStlImageBytes, 0);
  x[1] = 11;
  x[96] = 22;
  x[kStlPlane] = 33;
  x.back() = 255;
  write_bytes(dir_ / "x.bin", x);
  write_bytes(dir_ / "y.bin", {10});
  const Dataset data = uv::data::load_stl10_pair(path("x.bin"), path("y.bin"), "one");
  ASSERT_EQ(data.count, 1);
  EXPECT_EQ(data.labels[0], 9);  // 10 → 9
  const float* hwc = data.image(0);
  EXPECT_EQ(hwc[96 * 3], 11 / 255.0f);              // (1, 0, R)
  EXPECT_EQ(hwc[3], 22 / 255.0f);                   // (0, 1, R)
  EXPECT_EQ(hwc[1], 33 / 255.0f);                   // (0, 0, G)
  EXPECT_EQ(hwc[(95 * 96 + 95) * 3 + 2], 1.0f);     // (95, 95, B)
  EXPECT_EQ(std::count(data.images.begin(), data.images.end(), 0.0f), 27648 - 4);
}

TEST_F(ImageBinary, StlDirectoryDecodesEveryPixelAndShiftsLabels) {
  write_stl("stl", 3, 2);
  const DataSplit split = uv::data::load_dataset("stl10", path("stl"));
  EXPECT_EQ(split.train.name, "stl10/train");
  EXPECT_EQ(split.test.name, "stl10/test");
  expect_decoded(split.train, stl_train_, 96);
  expect_decoded(split.test, stl_test_, 96);
}

TEST_F(ImageBinary, StlAcceptsTheTarballFolder) {
  write_stl("stl/stl10_binary", 2, 1);
  const DataSplit split = uv::data::load_dataset("stl10", path("stl"));
  EXPECT_EQ(split.train.count, 2);
  EXPECT_EQ(split.test.count, 1);
}

TEST_F(ImageBinary, StlImagesFileNotWholeImages) {
  write_stl("stl", 2, 1);
  const fs::path x = dir_ / "stl" / "train_X.bin";
  fs::resize_file(x, 27648 + 100);
  expect_user_error([&] { uv::data::load_dataset("stl10", path("stl")); },
                    {x.string(), "27748 bytes", "27648-byte records"});
}

TEST_F(ImageBinary, StlLabelCountDiffersFromImageCount) {
  write_stl("stl", 3, 1);
  const fs::path y = dir_ / "stl" / "train_y.bin";
  write_bytes(y, {1, 2});
  expect_user_error([&] { uv::data::load_dataset("stl10", path("stl")); },
                    {(dir_ / "stl" / "train_X.bin").string(), y.string(), "3 images", "2 labels"});
}

TEST_F(ImageBinary, StlLabelsOutsideOneToTen) {
  write_stl("stl", 3, 1);
  const fs::path y = dir_ / "stl" / "test_y.bin";
  for (const uint8_t bad : {uint8_t{0}, uint8_t{11}}) {
    write_bytes(y, {bad});
    expect_user_error([&] { uv::data::load_dataset("stl10", path("stl")); },
                      {y.string(), "label " + std::to_string(bad) + " at index 0", "outside [1, 10]"});
  }
}

TEST_F(ImageBinary, StlMissingFileSaysNotBundled) {
  write_stl("stl", 1, 1);
  const fs::path y = dir_ / "stl" / "test_y.bin";
  fs::remove(y);
  expect_user_error([&] { uv::data::load_dataset("stl10", path("stl")); },
                    {y.string(), "not found", "not bundled"});
}

TEST_F(ImageBinary, UnknownNameListsTheNewSets) {
  expect_user_error([&] { uv::data::load_dataset("cifar100", path("x")); },
                    {"'cifar100'", "mnist, fashion_mnist, cifar10, stl10"});
}

// ---------------------------------------------------------------------------------------------------
// The real sets, where someone has placed them (never on this project's machines so far)

void check_real(const DataSplit& split, int64_t train, int64_t test, int side) {
  EXPECT_EQ(split.train.count, train);
  EXPECT_EQ(split.test.count, test);
  EXPECT_EQ(split.train.features(), int64_t{3} * side * side);
  std::vector<int> per_class(10, 0);
  for (int32_t label : split.train.labels) ++per_class[label];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], train / 10) << "class " << c;  // both are balanced
}

TEST(ImageBinaryReal, Cifar10) {
  const std::string dir = source_dir() + "/data/cifar10";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " absent (CIFAR-10 is not bundled)";
  check_real(uv::data::load_dataset("cifar10", dir), 50000, 10000, 32);
}

TEST(ImageBinaryReal, Stl10) {
  const std::string dir = source_dir() + "/data/stl10";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " absent (STL-10 is not bundled)";
  check_real(uv::data::load_dataset("stl10", dir), 5000, 8000, 96);
}

}  // namespace
