// Data layer: IDX reading (raw, gzip, every kind of defect), data set loading, seeded shuffles and
// batch gathering. Every file is generated into a fresh temporary directory; the real data sets are
// checked only where they are installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "engine/data/dataset.h"
#include "engine/data/idx.h"

namespace {

namespace fs = std::filesystem;
using uv::data::IdxArray;
using uv::data::IdxCompression;

using Bytes = std::vector<uint8_t>;

std::string source_dir() {
#ifdef UV_SOURCE_DIR
  return UV_SOURCE_DIR;
#else
  return ".";  // direct g++ builds run from the repository root
#endif
}

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

// IDX bytes written by hand, independent of write_idx: magic, big-endian dims, data.
Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& values) {
  Bytes bytes = {0x00, 0x00, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(d >> shift));
  }
  bytes.insert(bytes.end(), values.begin(), values.end());
  return bytes;
}

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  Bytes values(n);
  for (uint8_t& v : values) v = static_cast<uint8_t>(byte(gen));
  return values;
}

IdxArray make_array(std::vector<uint32_t> dims, uint32_t seed) {
  IdxArray array;
  array.dims = std::move(dims);
  array.values = random_bytes(array.count(), seed);
  return array;
}

// Runs `action` and insists it throws uv::UserError naming `path` and containing `phrase`.
void expect_user_error(const std::function<void()>& action, const std::string& path,
                       const std::string& phrase) {
  try {
    action();
    ADD_FAILURE() << "no uv::UserError thrown; expected one naming '" << path << "' with '" << phrase
                  << "'";
  } catch (const uv::UserError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << "message lacks the path: " << message;
    EXPECT_NE(message.find(phrase), std::string::npos) << "message lacks '" << phrase << "': " << message;
  }
}

// Each test gets its own empty directory (test_util.h).
class DataFiles : public uv::test::TempDirTest {
 protected:
  std::string dir() const { return dir_.string(); }

  // A tiny MNIST-layout directory: `train` and `test` examples of 4x3 images, labels cycling 0..9.
  void write_split(const std::string& subdir, IdxCompression compression, uint32_t train,
                   uint32_t test) const {
    fs::create_directory(dir_ / subdir);
    const std::string suffix = compression == IdxCompression::kGzip ? ".gz" : "";
    const auto write_pair = [&](const std::string& prefix, uint32_t count, uint32_t seed) {
      IdxArray labels;
      labels.dims = {count};
      for (uint32_t i = 0; i < count; ++i) labels.values.push_back(static_cast<uint8_t>(i % 10));
      uv::data::write_idx(path(subdir + "/" + prefix + "-images-idx3-ubyte" + suffix),
                          make_array({count, 4, 3}, seed), compression);
      uv::data::write_idx(path(subdir + "/" + prefix + "-labels-idx1-ubyte" + suffix), labels,
                          compression);
    };
    write_pair("train", train, 1);
    write_pair("t10k", test, 2);
  }

 private:
};

using DataIdx = DataFiles;
using DataIdxErrors = DataFiles;
using DataDataset = DataFiles;
using DataLoad = DataFiles;

// ---------------------------------------------------------------------------------------------------
// IDX round trips

TEST_F(DataIdx, RoundTripRaw) {
  const IdxArray array = make_array({3, 5, 7}, 11);  // odd sizes so no dim is confused with another
  uv::data::write_idx(path("a.idx"), array, IdxCompression::kRaw);

  const Bytes on_disk = read_bytes(path("a.idx"));
  EXPECT_EQ(on_disk, idx_bytes(0x08, {3, 5, 7}, array.values));

  const IdxArray back = uv::data::read_idx(path("a.idx"));
  EXPECT_EQ(back.type, uv::data::kIdxTypeU8);
  EXPECT_EQ(back.dims, array.dims);
  EXPECT_EQ(back.values, array.values);
  EXPECT_EQ(back.count(), 105u);
}

TEST_F(DataIdx, RoundTripGzip) {
  for (const std::vector<uint32_t>& dims : std::vector<std::vector<uint32_t>>{{17}, {2, 3, 4, 5}}) {
    const IdxArray array = make_array(dims, 12);
    uv::data::write_idx(path("a.idx.gz"), array, IdxCompression::kGzip);

    const Bytes on_disk = read_bytes(path("a.idx.gz"));
    ASSERT_GE(on_disk.size(), 2u);
    EXPECT_EQ(on_disk[0], 0x1f);
    EXPECT_EQ(on_disk[1], 0x8b);

    const IdxArray back = uv::data::read_idx(path("a.idx.gz"));
    EXPECT_EQ(back.dims, array.dims);
    EXPECT_EQ(back.values, array.values);
  }
}

TEST_F(DataIdx, GzipDetectedByMagicNotName) {
  const Bytes bytes = idx_bytes(0x08, {2, 2}, {1, 2, 3, 4});
  write_gzip(path("compressed.idx"), bytes);
  write_bytes(path("raw.gz"), bytes);
  for (const char* name : {"compressed.idx", "raw.gz"}) {
    const IdxArray back = uv::data::read_idx(path(name));
    EXPECT_EQ(back.dims, (std::vector<uint32_t>{2, 2})) << name;
    EXPECT_EQ(back.values, (Bytes{1, 2, 3, 4})) << name;
  }
}

TEST_F(DataIdx, DimsAreBigEndian) {
  const Bytes values = random_bytes(258, 13);  // 258 = 0x0102: byte order matters
  write_bytes(path("a.idx"), idx_bytes(0x08, {258}, values));
  const IdxArray back = uv::data::read_idx(path("a.idx"));
  EXPECT_EQ(back.dims, std::vector<uint32_t>{258});
  EXPECT_EQ(back.values, values);
}

// ---------------------------------------------------------------------------------------------------
// IDX defects: each names the file and the defect

TEST_F(DataIdxErrors, MissingFile) {
  expect_user_error([&] { uv::data::read_idx(path("absent.idx")); }, path("absent.idx"), "cannot open");
}

TEST_F(DataIdxErrors, Directory) {
  expect_user_error([&] { uv::data::read_idx(dir()); }, dir(), "cannot open");
}

TEST_F(DataIdxErrors, EmptyFile) {
  write_bytes(path("empty.idx"), {});
  expect_user_error([&] { uv::data::read_idx(path("empty.idx")); }, path("empty.idx"),
                    "truncated header: expected 4 magic bytes, found 0");
}

TEST_F(DataIdxErrors, WrongMagic) {
  write_bytes(path("zip.idx"), {0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 1, 7});
  expect_user_error([&] { uv::data::read_idx(path("zip.idx")); }, path("zip.idx"), "wrong magic");
  expect_user_error([&] { uv::data::read_idx(path("zip.idx")); }, path("zip.idx"), "50 4b 03 04");
}

TEST_F(DataIdxErrors, UnsupportedType) {
  write_bytes(path("float.idx"), idx_bytes(0x0D, {1}, {0, 0, 0, 0}));
  expect_user_error([&] { uv::data::read_idx(path("float.idx")); }, path("float.idx"),
                    "unsupported IDX data type 0x0d (float32)");
}

TEST_F(DataIdxErrors, NoDimensions) {
  write_bytes(path("scalar.idx"), idx_bytes(0x08, {}, {5}));
  expect_user_error([&] { uv::data::read_idx(path("scalar.idx")); }, path("scalar.idx"),
                    "unsupported number of dimensions 0");
}

TEST_F(DataIdxErrors, TooManyDimensions) {
  write_bytes(path("five.idx"), idx_bytes(0x08, {1, 1, 1, 1, 1}, {5}));
  expect_user_error([&] { uv::data::read_idx(path("five.idx")); }, path("five.idx"),
                    "unsupported number of dimensions 5");
}

TEST_F(DataIdxErrors, TruncatedDimensionSizes) {
  Bytes bytes = idx_bytes(0x08, {2, 3, 4}, {});
  bytes.resize(4 + 6);  // the second size cut in half
  write_bytes(path("dims.idx"), bytes);
  expect_user_error([&] { uv::data::read_idx(path("dims.idx")); }, path("dims.idx"),
                    "truncated header: expected 12 bytes of dimension sizes, found 6");
}

TEST_F(DataIdxErrors, TruncatedData) {
  const Bytes bytes = idx_bytes(0x08, {3, 4}, random_bytes(10, 14));  // header promises 12
  write_bytes(path("short.idx"), bytes);
  write_gzip(path("short.idx.gz"), bytes);
  for (const char* name : {"short.idx", "short.idx.gz"}) {
    expect_user_error([&] { uv::data::read_idx(path(name)); }, path(name),
                      "truncated data: the header promises 12 data bytes, found 10");
  }
}

TEST_F(DataIdxErrors, HugeHeaderOnSmallFile) {
  // 2^32-1 x 2^32-1 bytes promised: must be reported as truncated, not allocated up front.
  write_bytes(path("huge.idx"), idx_bytes(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu}, {1, 2, 3}));
  expect_user_error([&] { uv::data::read_idx(path("huge.idx")); }, path("huge.idx"), "found 3");
}

TEST_F(DataIdxErrors, TrailingGarbage) {
  const Bytes bytes = idx_bytes(0x08, {2, 2}, {1, 2, 3, 4, 9, 9, 9});
  write_bytes(path("long.idx"), bytes);
  write_gzip(path("long.idx.gz"), bytes);
  for (const char* name : {"long.idx", "long.idx.gz"}) {
    expect_user_error([&] { uv::data::read_idx(path(name)); }, path(name),
                      "trailing garbage: 3 extra bytes after the 4 data bytes");
  }
}

TEST_F(DataIdxErrors, GzipChecksumMismatch) {
  uv::data::write_idx(path("crc.idx.gz"), make_array({64, 64}, 15), IdxCompression::kGzip);
  Bytes bytes = read_bytes(path("crc.idx.gz"));
  bytes[bytes.size() - 8] ^= 0xFF;  // first byte of the CRC-32 in the gzip trailer
  write_bytes(path("crc.idx.gz"), bytes);
  expect_user_error([&] { uv::data::read_idx(path("crc.idx.gz")); }, path("crc.idx.gz"),
                    "corrupt gzip stream");
}

TEST_F(DataIdxErrors, GzipStreamCutShort) {
  uv::data::write_idx(path("cut.idx.gz"), make_array({64, 64}, 16), IdxCompression::kGzip);
  Bytes bytes = read_bytes(path("cut.idx.gz"));
  bytes.resize(bytes.size() / 2);
  write_bytes(path("cut.idx.gz"), bytes);
  expect_user_error([&] { uv::data::read_idx(path("cut.idx.gz")); }, path("cut.idx.gz"),
                    "corrupt gzip stream");
}

TEST_F(DataIdxErrors, GzipMagicThenGarbage) {
  Bytes bytes = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};  // a plausible gzip header...
  const Bytes junk(64, 0xFF);                                         // ...then invalid deflate data
  bytes.insert(bytes.end(), junk.begin(), junk.end());
  write_bytes(path("junk.idx.gz"), bytes);
  expect_user_error([&] { uv::data::read_idx(path("junk.idx.gz")); }, path("junk.idx.gz"),
                    "corrupt gzip stream");
}

// ---------------------------------------------------------------------------------------------------
// Image/label pairs

TEST_F(DataDataset, LoadsPairAndScalesPixels) {
  const IdxArray images = make_array({5, 4, 3}, 21);
  IdxArray labels;
  labels.dims = {5};
  labels.values = {3, 0, 9, 1, 1};
  uv::data::write_idx(path("images"), images, IdxCompression::kRaw);
  uv::data::write_idx(path("labels.gz"), labels, IdxCompression::kGzip);

  const uv::data::Dataset data = uv::data::load_idx_pair(path("images"), path("labels.gz"), 10, "tiny");
  EXPECT_EQ(data.name, "tiny");
  EXPECT_EQ(data.count, 5);
  EXPECT_EQ(data.rows, 4);
  EXPECT_EQ(data.cols, 3);
  EXPECT_EQ(data.channels, 1);
  EXPECT_EQ(data.num_classes, 10);
  EXPECT_EQ(data.features(), 12);
  ASSERT_EQ(data.images.size(), 60u);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{3, 0, 9, 1, 1}));
  for (int64_t i = 0; i < data.count; ++i) {
    for (int64_t f = 0; f < data.features(); ++f) {
      const float expected = static_cast<float>(images.values[i * 12 + f]) / 255.0f;
      EXPECT_EQ(data.image(i)[f], expected) << "example " << i << " feature " << f;
    }
  }
  EXPECT_EQ(uv::data::load_idx_pair(path("images"), path("labels.gz")).name, path("images"));
}

TEST_F(DataDataset, LabelOutOfRange) {
  IdxArray labels;
  labels.dims = {4};
  labels.values = {0, 9, 11, 2};
  uv::data::write_idx(path("images"), make_array({4, 2, 2}, 22), IdxCompression::kRaw);
  uv::data::write_idx(path("labels"), labels, IdxCompression::kRaw);
  expect_user_error([&] { uv::data::load_idx_pair(path("images"), path("labels")); }, path("labels"),
                    "label 11 at index 2 of");
  expect_user_error([&] { uv::data::load_idx_pair(path("images"), path("labels")); }, path("labels"),
                    "is outside [0, 10)");
  EXPECT_NO_THROW(uv::data::load_idx_pair(path("images"), path("labels"), 12));
}

TEST_F(DataDataset, CountMismatch) {
  uv::data::write_idx(path("images"), make_array({4, 2, 2}, 23), IdxCompression::kRaw);
  IdxArray labels;
  labels.dims = {3};
  labels.values = {0, 1, 2};
  uv::data::write_idx(path("labels"), labels, IdxCompression::kRaw);
  for (const std::string& phrase : {path("images"), path("labels"), std::string("holds 4 images"),
                                    std::string("holds 3 labels")}) {
    expect_user_error([&] { uv::data::load_idx_pair(path("images"), path("labels")); }, path("images"),
                      phrase);
  }
}

TEST_F(DataDataset, WrongRanks) {
  uv::data::write_idx(path("flat"), make_array({4}, 24), IdxCompression::kRaw);
  uv::data::write_idx(path("images"), make_array({4, 2, 2}, 25), IdxCompression::kRaw);
  expect_user_error([&] { uv::data::load_idx_pair(path("flat"), path("flat")); }, path("flat"),
                    "expected 3 (count, rows, cols)");
  expect_user_error([&] { uv::data::load_idx_pair(path("images"), path("images")); }, path("images"),
                    "expected 1 (count)");
}

TEST_F(DataDataset, TakeSlice) {
  uv::data::write_idx(path("images"), make_array({6, 2, 3}, 26), IdxCompression::kRaw);
  IdxArray labels;
  labels.dims = {6};
  labels.values = {0, 1, 2, 3, 4, 5};
  uv::data::write_idx(path("labels"), labels, IdxCompression::kRaw);
  const uv::data::Dataset data = uv::data::load_idx_pair(path("images"), path("labels"), 10, "six");

  const uv::data::Dataset slice = uv::data::take_slice(data, 2, 3);
  EXPECT_EQ(slice.count, 3);
  EXPECT_EQ(slice.features(), data.features());
  EXPECT_EQ(slice.labels, (std::vector<int32_t>{2, 3, 4}));
  EXPECT_EQ(slice.images, std::vector<float>(data.image(2), data.image(2) + 3 * data.features()));
  EXPECT_EQ(uv::data::take_slice(data, 6, 0).count, 0);

  expect_user_error([&] { uv::data::take_slice(data, 4, 3); }, "six", "slice [4, 7) is outside");
  expect_user_error([&] { uv::data::take_slice(data, -1, 2); }, "six", "is outside");
}

// ---------------------------------------------------------------------------------------------------
// Seeded shuffles

TEST(DataShuffle, IsAPermutation) {
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<int32_t> perm = uv::data::epoch_permutation(n, 1234, 3);
    ASSERT_EQ(static_cast<int64_t>(perm.size()), n);
    std::sort(perm.begin(), perm.end());
    std::vector<int32_t> identity(n);
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_EQ(perm, identity) << "n = " << n;
  }
}

TEST(DataShuffle, PureFunctionOfSeedAndEpoch) {
  const std::vector<int32_t> first = uv::data::epoch_permutation(1000, 42, 5);
  EXPECT_EQ(uv::data::epoch_permutation(1000, 42, 5), first);
  EXPECT_NE(uv::data::epoch_permutation(1000, 42, 6), first);
  EXPECT_NE(uv::data::epoch_permutation(1000, 43, 5), first);
  std::vector<int32_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(first, identity);
}

TEST(DataShuffle, PinnedOrder) {
  // Resumed runs and other backends rely on this exact order; a change here breaks reproducibility.
  EXPECT_EQ(uv::data::epoch_permutation(10, 7, 0),
            (std::vector<int32_t>{6, 2, 1, 0, 7, 8, 9, 5, 4, 3}));
}

TEST(DataShuffle, RoughlyUniform) {
  // All 6 orders of 3 items over 6000 epochs: each expected 1000 times, sd ~ 29; the bound is 5 sd.
  std::map<std::vector<int32_t>, int> seen;
  for (uint64_t epoch = 0; epoch < 6000; ++epoch) ++seen[uv::data::epoch_permutation(3, 99, epoch)];
  EXPECT_EQ(seen.size(), 6u);
  for (const auto& [order, times] : seen) {
    EXPECT_NEAR(times, 1000, 145) << order[0] << order[1] << order[2];
  }
}

// data.shuffle = device: Philox keys sorted, ties by index. A permutation, a pure function of (seed,
// epoch), not Fisher-Yates's order, and the CPU backend's shuffled_order gives it exactly.
TEST(DataShuffle, SortedKeyPermutationIsAPureFunctionAndTheCpuBackendsOrder) {
  for (int64_t n : {0, 1, 2, 7, 1000, 60001}) {
    std::vector<int32_t> perm = uv::data::sorted_key_permutation(n, 1234, 3);
    ASSERT_EQ(static_cast<int64_t>(perm.size()), n);
    std::unique_ptr<uv::Backend> cpu = uv::make_cpu_backend();
    std::vector<int32_t> from_backend(static_cast<size_t>(n), -1);
    cpu->shuffled_order(from_backend.data(), n, 1234, uv::rng_stream(uv::RngStream::kShuffle, 3));
    EXPECT_EQ(from_backend, perm) << "n = " << n;
    std::sort(perm.begin(), perm.end());
    std::vector<int32_t> identity(n);
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_EQ(perm, identity) << "n = " << n;
  }
  const std::vector<int32_t> first = uv::data::sorted_key_permutation(1000, 42, 5);
  EXPECT_EQ(uv::data::sorted_key_permutation(1000, 42, 5), first);
  EXPECT_NE(uv::data::sorted_key_permutation(1000, 42, 6), first);
  EXPECT_NE(uv::data::sorted_key_permutation(1000, 43, 5), first);
  EXPECT_NE(uv::data::epoch_permutation(1000, 42, 5), first);
}

TEST(DataShuffle, SortedKeyPermutationRoughlyUniform) {
  std::map<std::vector<int32_t>, int> seen;  // as RoughlyUniform: 6 orders, each ~1000 of 6000
  for (uint64_t epoch = 0; epoch < 6000; ++epoch) ++seen[uv::data::sorted_key_permutation(3, 99, epoch)];
  EXPECT_EQ(seen.size(), 6u);
  for (const auto& [order, times] : seen) EXPECT_NEAR(times, 1000, 145) << order[0] << order[1] << order[2];
}

// ---------------------------------------------------------------------------------------------------
// Batches

// The backend's gather is how batches are taken from a (resident) data set.
TEST_F(DataDataset, GatherBatchCopiesRows) {
  uv::data::write_idx(path("images"), make_array({7, 3, 5}, 27), IdxCompression::kRaw);
  IdxArray labels;
  labels.dims = {7};
  labels.values = {6, 5, 4, 3, 2, 1, 0};
  uv::data::write_idx(path("labels"), labels, IdxCompression::kRaw);
  const uv::data::Dataset data = uv::data::load_idx_pair(path("images"), path("labels"));
  const std::vector<int32_t> perm = {3, 6, 0, 5, 1, 4, 2};

  const int64_t begin = 2, batch = 3, features = data.features();
  std::vector<float> x(batch * features, std::nanf(""));  // (batch, features), poisoned
  std::vector<int32_t> y(batch, -1);                       // (batch)
  const std::unique_ptr<uv::Backend> cpu = uv::make_cpu_backend();
  cpu->gather_rows(data.images.data(), perm.data() + begin, batch, features, x.data());
  cpu->gather_labels(data.labels.data(), perm.data() + begin, batch, y.data());
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t example = perm[begin + b];
    EXPECT_EQ(y[b], data.labels[example]);
    for (int64_t f = 0; f < features; ++f) {
      EXPECT_EQ(x[b * features + f], data.image(example)[f]) << "row " << b << " feature " << f;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Named data sets

TEST_F(DataLoad, MnistRawDirectory) {
  write_split("mnist", IdxCompression::kRaw, 13, 7);
  const uv::data::DataSplit split = uv::data::load_dataset("mnist", path("mnist"));
  EXPECT_EQ(split.train.name, "mnist/train");
  EXPECT_EQ(split.test.name, "mnist/test");
  EXPECT_EQ(split.train.count, 13);
  EXPECT_EQ(split.test.count, 7);
  EXPECT_EQ(split.train.rows, 4);
  EXPECT_EQ(split.train.cols, 3);
  EXPECT_EQ(split.train.labels[12], 2);
}

TEST_F(DataLoad, MnistFallsBackToGzip) {
  write_split("mnist", IdxCompression::kRaw, 13, 7);
  const std::string raw = path("mnist/t10k-labels-idx1-ubyte");
  write_gzip(raw + ".gz", read_bytes(raw));
  fs::remove(raw);
  EXPECT_EQ(uv::data::load_dataset("mnist", path("mnist")).test.count, 7);
}

TEST_F(DataLoad, FashionGzipDirectory) {
  write_split("fashion", IdxCompression::kGzip, 11, 5);
  const uv::data::DataSplit split = uv::data::load_dataset("fashion_mnist", path("fashion"));
  EXPECT_EQ(split.train.name, "fashion_mnist/train");
  EXPECT_EQ(split.train.count, 11);
  EXPECT_EQ(split.test.count, 5);
}

TEST_F(DataLoad, FashionAcceptsRaw) {
  write_split("fashion", IdxCompression::kRaw, 11, 5);
  EXPECT_EQ(uv::data::load_dataset("fashion_mnist", path("fashion")).train.count, 11);
}

TEST_F(DataLoad, UnknownName) {
  expect_user_error([&] { uv::data::load_dataset("cifar", dir()); }, "'cifar'",
                    "accepted names: mnist, fashion_mnist, cifar10, stl10");
}

TEST_F(DataLoad, MissingDirectory) {
  expect_user_error([&] { uv::data::load_dataset("mnist", path("nowhere")); }, path("nowhere"),
                    "run `make data`");
}

TEST_F(DataLoad, MissingFile) {
  write_split("mnist", IdxCompression::kRaw, 3, 2);
  fs::remove(path("mnist/t10k-images-idx3-ubyte"));
  expect_user_error([&] { uv::data::load_dataset("mnist", path("mnist")); },
                    path("mnist/t10k-images-idx3-ubyte"), "run `make data`");
}

TEST_F(DataLoad, TrainAndTestImageSizesMustAgree) {
  write_split("mnist", IdxCompression::kRaw, 3, 2);
  uv::data::write_idx(path("mnist/t10k-images-idx3-ubyte"), make_array({2, 3, 4}, 28),
                      IdxCompression::kRaw);
  expect_user_error([&] { uv::data::load_dataset("mnist", path("mnist")); },
                    path("mnist/t10k-images-idx3-ubyte"), "are 4x3 but");
}

// The real data sets, where installed: standard sizes and labels spread over all ten classes.
void check_real_split(const uv::data::DataSplit& split) {
  EXPECT_EQ(split.train.count, 60000);
  EXPECT_EQ(split.test.count, 10000);
  EXPECT_EQ(split.train.features(), 784);
  std::vector<int> per_class(10, 0);
  for (int32_t label : split.train.labels) ++per_class[label];
  for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[c], 5000) << "class " << c;
  const auto [lowest, highest] = std::minmax_element(split.train.images.begin(), split.train.images.end());
  EXPECT_EQ(*lowest, 0.0f);
  EXPECT_EQ(*highest, 1.0f);
}

TEST(DataReal, Mnist) {
  const std::string dir = source_dir() + "/data/mnist";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " absent (run `make data`)";
  check_real_split(uv::data::load_dataset("mnist", dir));
}

TEST(DataReal, FashionMnist) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " absent (package dataset-fashion-mnist)";
  check_real_split(uv::data::load_dataset("fashion_mnist", dir));
}

}  // namespace
