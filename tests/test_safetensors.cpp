// Checkpoint files: round trip, byte layout against the safetensors spec, atomic replacement, and one
// test per kind of corruption that read_safetensors must reject as a user error.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/core/error.h"

namespace {

namespace fs = std::filesystem;
using uv::ckpt::read_safetensors;
using uv::ckpt::read_safetensors_header;
using uv::ckpt::SafetensorsFile;
using uv::ckpt::TensorRecord;
using uv::ckpt::write_safetensors_atomic;

// A fresh directory per test (test_util.h) that can list what it holds.
class TempDirTest : public uv::test::TempDirTest {
 protected:
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
};

using SafetensorsRoundTrip = TempDirTest;
using SafetensorsFormat = TempDirTest;
using SafetensorsAtomicWrite = TempDirTest;
using SafetensorsCorrupt = TempDirTest;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string little_endian_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  return bytes;
}

uint64_t decode_little_endian_u64(const std::string& bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// The documented layout: u64 header length, header, data buffer.
std::string build_file(const std::string& header, const std::string& data) {
  return little_endian_u64(header.size()) + header + data;
}

std::vector<float> ramp(size_t count, float start) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = start + 0.25f * static_cast<float>(i);
  return values;
}

// Every dtype, a scalar, an empty tensor between non-empty ones, and metadata.
SafetensorsFile sample_file() {
  SafetensorsFile file;
  const std::vector<float> embed = ramp(15, -1.0f);  // (3, 5)
  const std::vector<float> bias = ramp(7, 3.0f);     // (7)
  const float scale = 0.5f;
  const std::vector<double> moments = {1.0 / 3.0, -2.5, 1e-300, 7.0};  // (2, 2)
  const std::vector<int64_t> step = {123456789012};                    // (1)
  file.tensors.push_back(TensorRecord::from_f32("embed.weight", {3, 5}, embed.data()));
  file.tensors.push_back(TensorRecord::from_f32("layer.bias", {7}, bias.data()));
  file.tensors.push_back(TensorRecord::from_f32("scale", {}, &scale));
  file.tensors.push_back(TensorRecord::from_f32("empty", {0, 4}, nullptr));
  file.tensors.push_back(TensorRecord::from_bytes("adam.moments", "F64", {2, 2}, moments.data()));
  file.tensors.push_back(TensorRecord::from_bytes("optimizer.step", "I64", {1}, step.data()));
  file.metadata = {{"format", "uvtrain"}, {"step", "42"}};
  return file;
}

void expect_same(const SafetensorsFile& expected, const SafetensorsFile& actual) {
  ASSERT_EQ(expected.tensors.size(), actual.tensors.size());
  for (size_t i = 0; i < expected.tensors.size(); ++i) {
    SCOPED_TRACE(expected.tensors[i].name);
    EXPECT_EQ(expected.tensors[i].name, actual.tensors[i].name);
    EXPECT_EQ(expected.tensors[i].dtype, actual.tensors[i].dtype);
    EXPECT_EQ(expected.tensors[i].shape, actual.tensors[i].shape);
    EXPECT_EQ(expected.tensors[i].bytes, actual.tensors[i].bytes);
  }
  EXPECT_EQ(expected.metadata, actual.metadata);
}

// read_safetensors(path) must throw uv::UserError naming the path, saying "corrupt checkpoint" and
// containing `detail`, which pins the check that fired.
void expect_corrupt(const std::string& path, const std::string& detail) {
  try {
    read_safetensors(path);
    ADD_FAILURE() << "read_safetensors accepted " << path;
  } catch (const uv::UserError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("corrupt checkpoint"), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(detail), std::string::npos) << "expected '" << detail << "' in: " << message;
  }
}

// ---------------------------------------------------------------------------------------------------

TEST_F(SafetensorsRoundTrip, SeveralTensorsAndMetadata) {
  const SafetensorsFile original = sample_file();
  write_safetensors_atomic(path("model.safetensors"), original);
  const SafetensorsFile loaded = read_safetensors(path("model.safetensors"));
  expect_same(original, loaded);
  EXPECT_EQ(loaded.at("embed.weight", "model").to_f32(), ramp(15, -1.0f));
  EXPECT_EQ(loaded.at("scale", "model").to_f32(), std::vector<float>{0.5f});
  EXPECT_EQ(loaded.at("scale", "model").numel(), 1);
  EXPECT_EQ(loaded.at("empty", "model").numel(), 0);
}

// The header alone: the same metadata, names, dtypes and shapes, no bytes; and the same refusal of
// a file cut anywhere (the size check covers the data it does not read).
TEST_F(SafetensorsRoundTrip, HeaderOnlyReadsMetadataAndShapes) {
  const SafetensorsFile original = sample_file();
  write_safetensors_atomic(path("model.safetensors"), original);
  const SafetensorsFile header = read_safetensors_header(path("model.safetensors"));
  EXPECT_EQ(header.metadata, original.metadata);
  ASSERT_EQ(header.tensors.size(), original.tensors.size());
  for (const TensorRecord& t : original.tensors) {
    const TensorRecord* h = header.find(t.name);
    ASSERT_NE(h, nullptr) << t.name;
    EXPECT_EQ(h->dtype, t.dtype) << t.name;
    EXPECT_EQ(h->shape, t.shape) << t.name;
    EXPECT_TRUE(h->bytes.empty()) << t.name;
  }
  const std::string bytes = read_bytes(path("model.safetensors"));
  write_bytes(path("cut.safetensors"), bytes.substr(0, bytes.size() - 1));
  EXPECT_THROW(read_safetensors_header(path("cut.safetensors")), uv::UserError);
}

TEST_F(SafetensorsRoundTrip, EmptyFile) {
  write_safetensors_atomic(path("empty.safetensors"), SafetensorsFile{});
  const SafetensorsFile loaded = read_safetensors(path("empty.safetensors"));
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
}

TEST_F(SafetensorsRoundTrip, FindAndAt) {
  write_safetensors_atomic(path("model.safetensors"), sample_file());
  const SafetensorsFile loaded = read_safetensors(path("model.safetensors"));
  ASSERT_NE(loaded.find("layer.bias"), nullptr);
  EXPECT_EQ(loaded.find("layer.bias")->shape, std::vector<int64_t>{7});
  EXPECT_EQ(loaded.find("missing"), nullptr);
  try {
    loaded.at("missing.weight", "run/model.safetensors");
    ADD_FAILURE() << "at() returned a missing tensor";
  } catch (const uv::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("run/model.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loaded.at("adam.moments", "model").to_f32(), uv::UserError);  // F64, not F32
}

TEST_F(SafetensorsFormat, LengthPrefixAndJsonHeaderMatchTheSpec) {
  const SafetensorsFile original = sample_file();
  write_safetensors_atomic(path("model.safetensors"), original);
  const std::string bytes = read_bytes(path("model.safetensors"));
  ASSERT_GE(bytes.size(), 8u);
  const uint64_t header_size = decode_little_endian_u64(bytes.substr(0, 8));
  EXPECT_EQ(header_size % 8, 0u) << "the data buffer should start 8-byte aligned";
  ASSERT_LE(8 + header_size, bytes.size());

  const std::string header_text = bytes.substr(8, header_size);
  EXPECT_EQ(header_text.front(), '{');
  const size_t last_brace = header_text.find_last_of('}');
  EXPECT_EQ(header_text.find_first_not_of(' ', last_brace + 1), std::string::npos)
      << "padding after the JSON object must be spaces";
  const nlohmann::json header = nlohmann::json::parse(header_text);
  EXPECT_EQ(header.size(), original.tensors.size() + 1);
  EXPECT_EQ(header["__metadata__"], (nlohmann::json{{"format", "uvtrain"}, {"step", "42"}}));

  uint64_t offset = 0;
  for (const TensorRecord& tensor : original.tensors) {
    SCOPED_TRACE(tensor.name);
    const nlohmann::json& entry = header.at(tensor.name);
    EXPECT_EQ(entry.at("dtype"), tensor.dtype);
    EXPECT_EQ(entry.at("shape").get<std::vector<int64_t>>(), tensor.shape);
    const uint64_t end = offset + tensor.bytes.size();
    EXPECT_EQ(entry.at("data_offsets").get<std::vector<uint64_t>>(),
              (std::vector<uint64_t>{offset, end}));
    EXPECT_EQ(bytes.substr(8 + header_size + offset, tensor.bytes.size()),
              std::string(tensor.bytes.begin(), tensor.bytes.end()));
    offset = end;
  }
  EXPECT_EQ(bytes.size(), 8 + header_size + offset) << "no bytes after the last tensor";
}

TEST_F(SafetensorsFormat, ReadsHandBuiltFile) {
  // Key order differs from offset order, the header is not padded, and "a" has its fields reordered:
  // all allowed by the spec.
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("__metadata__":{"k":"v"},)"
      R"("a":{"shape":[1],"data_offsets":[0,8],"dtype":"I64"}})";
  const std::vector<int64_t> a = {-7};
  const std::vector<float> b = {1.5f, -2.25f};
  write_bytes(path("hand.safetensors"), build_file(header, raw_bytes(a) + raw_bytes(b)));

  const SafetensorsFile loaded = read_safetensors(path("hand.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].name, "a");  // read back in data-offset order
  EXPECT_EQ(loaded.tensors[0].dtype, "I64");
  EXPECT_EQ(loaded.tensors[0].shape, std::vector<int64_t>{1});
  EXPECT_EQ(std::string(loaded.tensors[0].bytes.begin(), loaded.tensors[0].bytes.end()), raw_bytes(a));
  EXPECT_EQ(loaded.tensors[1].name, "b");
  EXPECT_EQ(loaded.tensors[1].shape, std::vector<int64_t>{2});
  EXPECT_EQ(loaded.tensors[1].to_f32(), b);
  EXPECT_EQ(loaded.metadata, (std::map<std::string, std::string>{{"k", "v"}}));
}

// ---------------------------------------------------------------------------------------------------

TEST_F(SafetensorsAtomicWrite, LeavesNoTemporaryBehind) {
  write_safetensors_atomic(path("model.safetensors"), sample_file());
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(SafetensorsAtomicWrite, OverwritesExistingFile) {
  write_safetensors_atomic(path("model.safetensors"), sample_file());
  SafetensorsFile replacement;
  const std::vector<float> values = ramp(5, 9.0f);
  replacement.tensors.push_back(TensorRecord::from_f32("only", {5}, values.data()));
  write_safetensors_atomic(path("model.safetensors"), replacement);
  expect_same(replacement, read_safetensors(path("model.safetensors")));
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(SafetensorsAtomicWrite, MissingDirectoryThrowsAndLeavesNothing) {
  const std::string target = path("missing/model.safetensors");
  try {
    write_safetensors_atomic(target, sample_file());
    ADD_FAILURE() << "write into a missing directory succeeded";
  } catch (const uv::UserError& e) {
    ADD_FAILURE() << "an OS failure is not a user error: " << e.what();
  } catch (const uv::Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(SafetensorsAtomicWrite, FailedRenameKeepsTargetAndRemovesTemporary) {
  // rename() cannot replace a non-empty directory, so the last step fails after the data is written.
  const std::string target = path("model.safetensors");
  fs::create_directory(target);
  write_bytes(target + "/keep", "kept");
  EXPECT_THROW(write_safetensors_atomic(target, sample_file()), uv::Error);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(read_bytes(target + "/keep"), "kept");
}

// Lowers the process's file size limit and ignores SIGXFSZ, so writes past the limit fail with EFBIG
// instead of killing the test; restores both on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &previous_limit_);
    rlimit lowered = previous_limit_;
    lowered.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &previous_limit_);
    ::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit previous_limit_{};
  void (*previous_handler_)(int) = nullptr;
};

TEST_F(SafetensorsAtomicWrite, FailedDataWriteKeepsExistingFile) {
  const std::string target = path("model.safetensors");
  write_safetensors_atomic(target, sample_file());
  const std::string before = read_bytes(target);

  SafetensorsFile large;
  const std::vector<float> values(1 << 16, 1.0f);
  large.tensors.push_back(TensorRecord::from_f32("large", {1 << 16}, values.data()));
  {
    const FileSizeLimit limit(4096);  // far below the 256 KiB the large tensor needs
    EXPECT_THROW(write_safetensors_atomic(target, large), uv::Error);
  }
  EXPECT_EQ(read_bytes(target), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(SafetensorsAtomicWrite, InconsistentRecordIsRejectedBeforeWriting) {
  SafetensorsFile file;
  const std::vector<float> values = ramp(6, 0.0f);
  file.tensors.push_back(TensorRecord::from_f32("w", {2, 3}, values.data()));
  file.tensors[0].shape = {2, 4};  // no longer matches the 24 bytes it holds
  EXPECT_THROW(write_safetensors_atomic(path("model.safetensors"), file), uv::Error);
  EXPECT_TRUE(listing().empty());
}

// ---------------------------------------------------------------------------------------------------

TEST_F(SafetensorsCorrupt, MissingFile) {
  const std::string missing = path("absent.safetensors");
  try {
    read_safetensors(missing);
    ADD_FAILURE() << "read a missing file";
  } catch (const uv::UserError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsCorrupt, DirectoryInsteadOfFile) {
  EXPECT_THROW(read_safetensors(dir_.string()), uv::UserError);
}

TEST_F(SafetensorsCorrupt, TruncatedAnywhere) {
  write_safetensors_atomic(path("model.safetensors"), sample_file());
  const std::string bytes = read_bytes(path("model.safetensors"));
  const size_t data_start = 8 + decode_little_endian_u64(bytes.substr(0, 8));
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, data_start / 2,
                     data_start - 1, data_start, data_start + 1, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_bytes(path("cut.safetensors"), bytes.substr(0, cut));
    expect_corrupt(path("cut.safetensors"), "");
  }
}

TEST_F(SafetensorsCorrupt, HeaderLengthFlipped) {
  write_safetensors_atomic(path("model.safetensors"), sample_file());
  const std::string bytes = read_bytes(path("model.safetensors"));
  const uint64_t header_size = decode_little_endian_u64(bytes.substr(0, 8));
  // Any other length either cuts the JSON, swallows data bytes into it, shifts the data buffer, or
  // points past the end of the file.
  for (int bit = 0; bit < 64; ++bit) {
    SCOPED_TRACE("bit " + std::to_string(bit));
    write_bytes(path("flipped.safetensors"),
                little_endian_u64(header_size ^ (uint64_t{1} << bit)) + bytes.substr(8));
    expect_corrupt(path("flipped.safetensors"), "");
  }
  write_bytes(path("long.safetensors"), little_endian_u64(bytes.size()) + bytes.substr(8));
  expect_corrupt(path("long.safetensors"), "bytes after the length prefix");
  write_bytes(path("absurd.safetensors"), little_endian_u64(200ull << 20) + bytes.substr(8));
  expect_corrupt(path("absurd.safetensors"), "-byte limit");
}

TEST_F(SafetensorsCorrupt, ShorterThanLengthPrefix) {
  write_bytes(path("short.safetensors"), std::string(5, '\0'));
  expect_corrupt(path("short.safetensors"), "too short");
}

// One hand-built file per header defect; `detail` pins the check expected to catch it.
struct HeaderCase {
  const char* defect;
  std::string header;
  size_t data_bytes;
  const char* detail;
};

TEST_F(SafetensorsCorrupt, BadHeaders) {
  const std::vector<HeaderCase> cases = {
      {"empty header", "", 8, "not valid JSON"},
      {"garbage JSON", R"({"w": {"dtype": "F32",)", 8, "not valid JSON"},
      {"invalid UTF-8", "{\"\xff\":1}", 8, "not valid JSON"},
      {"NUL then junk", std::string("{}\0junk", 7), 0, "NUL byte"},
      {"array header", "[1, 2]", 8, "header is not a JSON object"},
      {"entry not an object", R"({"w":3})", 8, "tensor 'w' is not a JSON object"},
      {"missing dtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8, R"(has no "dtype")"},
      {"missing shape", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8, R"(has no "shape")"},
      {"missing data_offsets", R"({"w":{"dtype":"F32","shape":[2]}})", 8, R"(has no "data_offsets")"},
      {"dtype not a string", R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8,
       R"("dtype" is not a string)"},
      {"shape not an array", R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8,
       R"("shape" is not an array)"},
      {"fractional dim", R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8,
       "is not an integer"},
      {"three offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", 8,
       "is not two non-negative integers"},
      {"negative offset", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8,
       "is not two non-negative integers"},
      {"string offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", 8,
       "is not two non-negative integers"},
      {"unknown dtype", R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})", 8,
       "unsupported dtype 'BF16'"},
      {"negative dim", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
       "negative dimension -2"},
      {"dim beyond int64", R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})",
       8, "is too large"},
      {"shape overflows 64 bits",
       R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", 8,
       "more than 2^64"},
      {"offsets disagree with shape", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
       "span 8 bytes but F32 shape [3] needs 12"},
      {"reversed offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "reversed"},
      {"end past the buffer", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
       "outside the 4-byte data buffer"},
      {"both past the buffer", R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}})", 8,
       "outside the 8-byte data buffer"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, "overlaps tensor 'a'"},
      {"two names, one region",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       8, "overlaps tensor 'a'"},
      {"gap between tensors",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
       20, "gap of 4 bytes"},
      {"first tensor not at 0", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
       "gap of 4 bytes"},
      {"trailing bytes", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12,
       "4 trailing bytes"},
      {"metadata not an object", R"({"__metadata__":["k","v"]})", 0,
       R"("__metadata__" is not a JSON object)"},
      {"non-string metadata", R"({"__metadata__":{"k":"v","step":42}})", 0,
       "value for key 'step' is not a string"},
  };
  for (const HeaderCase& c : cases) {
    SCOPED_TRACE(c.defect);
    write_bytes(path("bad.safetensors"), build_file(c.header, std::string(c.data_bytes, '\x01')));
    expect_corrupt(path("bad.safetensors"), c.detail);
  }
}

}  // namespace
