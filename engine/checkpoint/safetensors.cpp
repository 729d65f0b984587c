#include "engine/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/core/error.h"

// ASSUMPTION: the host is little-endian, so element bytes go to and from the file unchanged.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace uv::ckpt {
namespace {

// Insertion-ordered: the writer emits tensors in the caller's order, and the reader's stable sort keeps
// the file's order for tensors sharing an offset (empty ones).
using Json = nlohmann::ordered_json;

constexpr uint64_t kLengthPrefixBytes = 8;
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // a longer claimed header is a corrupt length
constexpr uint64_t kDataAlignment = 8;
const std::string kMetadataKey = "__metadata__";

// Bytes per element of a supported dtype, 0 for any other.
uint64_t element_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  return 0;
}

// numel(shape) * element_bytes, or nothing if that overflows 64 bits (a corrupt header can claim any
// shape). ASSUMPTION: no dimension is negative.
std::optional<uint64_t> checked_byte_size(const std::vector<int64_t>& shape, uint64_t element_bytes) {
  // A zero dimension makes the product 0 even when the other dimensions would overflow.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t total = element_bytes;
  for (int64_t dim : shape) {
    const auto factor = static_cast<uint64_t>(dim);
    if (total > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
    total *= factor;
  }
  return total;
}

bool has_negative_dim(const std::vector<int64_t>& shape) {
  return std::any_of(shape.begin(), shape.end(), [](int64_t dim) { return dim < 0; });
}

std::string format_shape(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string format_offsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// ---------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------

// The JSON header, space-padded so the data buffer starts on an 8-byte boundary.
std::string encode_header(const SafetensorsFile& file, const std::string& path) {
  Json header = Json::object();
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;
  uint64_t offset = 0;
  for (const TensorRecord& tensor : file.tensors) {
    UV_CHECK(tensor.name != kMetadataKey && !header.contains(tensor.name),
             "checkpoint " << path << ": tensor name '" << tensor.name << "' is reserved or repeated");
    UV_CHECK(element_size(tensor.dtype) != 0,
             "checkpoint " << path << ": tensor '" << tensor.name << "' has unsupported dtype "
                           << tensor.dtype);
    UV_CHECK(!has_negative_dim(tensor.shape) &&
                 checked_byte_size(tensor.shape, element_size(tensor.dtype)) == tensor.bytes.size(),
             "checkpoint " << path << ": tensor '" << tensor.name << "' holds " << tensor.bytes.size()
                           << " bytes, which does not match " << tensor.dtype << " shape "
                           << format_shape(tensor.shape));
    const uint64_t end = offset + tensor.bytes.size();
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", Json::array({offset, end})}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::type_error& e) {  // names and metadata must be valid UTF-8
    throw Error("cannot write checkpoint " + path + ": " + e.what());
  }
  text.append((kDataAlignment - text.size() % kDataAlignment) % kDataAlignment, ' ');
  return text;
}

// `error_number` is errno, read by the caller before anything could overwrite it.
[[noreturn]] void throw_write_error(int error_number, const char* step, const std::string& subject,
                                    const std::string& path) {
  throw Error("cannot write checkpoint " + path + ": " + step + " " + subject +
              " failed: " + std::strerror(error_number));
}

// Closes and removes the temporary unless it was renamed into place, so every failure path, including
// an exception from an allocation, leaves no temporary behind.
struct TemporaryFile {
  std::string path;
  FILE* stream = nullptr;
  bool renamed = false;

  ~TemporaryFile() {
    if (stream != nullptr) std::fclose(stream);
    if (!renamed) std::remove(path.c_str());
  }
};

bool write_all(FILE* stream, const void* data, size_t size) {
  return size == 0 || std::fwrite(data, 1, size, stream) == size;
}

// Makes the rename itself durable: without this a crash can bring back the old directory entry.
void fsync_directory(const std::string& directory, const std::string& path) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_write_error(errno, "open of directory", directory, path);
  if (::fsync(fd) != 0) {
    const int error_number = errno;
    ::close(fd);
    throw_write_error(error_number, "fsync of directory", directory, path);
  }
  ::close(fd);
}

// ---------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------

[[noreturn]] void throw_corrupt(const std::string& path, const std::string& what) {
  UV_FAIL("corrupt checkpoint " << path << ": " << what);
}

struct CloseFile {
  void operator()(FILE* stream) const { std::fclose(stream); }
};

void read_exact(FILE* stream, void* out, size_t size, const std::string& path) {
  if (size == 0 || std::fread(out, 1, size, stream) == size) return;
  if (std::ferror(stream)) {
    const int error_number = errno;
    throw Error("cannot read checkpoint " + path + ": " + std::strerror(error_number));
  }
  // The size came from fstat, so a short read means the file shrank while we read it.
  throw_corrupt(path, "file ended early");
}

// A tensor entry of the header, before its bytes are read.
struct HeaderEntry {
  TensorRecord record;
  uint64_t begin = 0;  // data_offsets, relative to the data buffer
  uint64_t end = 0;
};

const Json& require_field(const Json& entry, const char* key, const std::string& name,
                          const std::string& path) {
  const auto it = entry.find(key);
  if (it == entry.end()) throw_corrupt(path, "tensor '" + name + "' has no \"" + key + "\"");
  return *it;
}

HeaderEntry parse_entry(const std::string& name, const Json& entry, uint64_t data_size,
                        const std::string& path) {
  const std::string where = "tensor '" + name + "'";
  if (!entry.is_object()) throw_corrupt(path, where + " is not a JSON object");
  HeaderEntry parsed;
  parsed.record.name = name;

  const Json& dtype = require_field(entry, "dtype", name, path);
  if (!dtype.is_string()) throw_corrupt(path, where + ": \"dtype\" is not a string");
  parsed.record.dtype = dtype.get<std::string>();
  const uint64_t element_bytes = element_size(parsed.record.dtype);
  if (element_bytes == 0) {
    throw_corrupt(path, where + " has unsupported dtype '" + parsed.record.dtype +
                            "' (supported: F32, F64, I64)");
  }

  const Json& shape = require_field(entry, "shape", name, path);
  if (!shape.is_array()) throw_corrupt(path, where + ": \"shape\" is not an array");
  for (const Json& dim : shape) {
    // nlohmann parses non-negative integers as unsigned and negative ones as signed.
    if (dim.is_number_unsigned()) {
      const auto value = dim.get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw_corrupt(path, where + ": dimension " + std::to_string(value) + " is too large");
      }
      parsed.record.shape.push_back(static_cast<int64_t>(value));
    } else if (dim.is_number_integer()) {
      throw_corrupt(path, where + " has negative dimension " + dim.dump() + " in its shape");
    } else {
      throw_corrupt(path, where + ": shape entry " + dim.dump() + " is not an integer");
    }
  }

  const Json& offsets = require_field(entry, "data_offsets", name, path);
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    throw_corrupt(path, where + ": \"data_offsets\" " + offsets.dump() +
                            " is not two non-negative integers");
  }
  parsed.begin = offsets[0].get<uint64_t>();
  parsed.end = offsets[1].get<uint64_t>();
  const std::string offsets_text = "data_offsets " + format_offsets(parsed.begin, parsed.end);
  if (parsed.begin > parsed.end) throw_corrupt(path, where + ": " + offsets_text + " are reversed");

  const std::optional<uint64_t> byte_size = checked_byte_size(parsed.record.shape, element_bytes);
  if (byte_size != parsed.end - parsed.begin) {
    throw_corrupt(path, where + ": " + offsets_text + " span " +
                            std::to_string(parsed.end - parsed.begin) + " bytes but " +
                            parsed.record.dtype + " shape " + format_shape(parsed.record.shape) +
                            " needs " + (byte_size ? std::to_string(*byte_size) : "more than 2^64"));
  }
  if (parsed.end > data_size) {
    throw_corrupt(path, where + ": " + offsets_text + " lie outside the " +
                            std::to_string(data_size) + "-byte data buffer");
  }
  return parsed;
}

std::map<std::string, std::string> parse_metadata(const Json& metadata, const std::string& path) {
  if (!metadata.is_object()) throw_corrupt(path, "\"" + kMetadataKey + "\" is not a JSON object");
  std::map<std::string, std::string> parsed;
  for (const auto& item : metadata.items()) {
    if (!item.value().is_string()) {
      throw_corrupt(path, "\"" + kMetadataKey + "\" value for key '" + item.key() +
                              "' is not a string");
    }
    parsed[item.key()] = item.value().get<std::string>();
  }
  return parsed;
}

// Orders the entries by offset (JSON key order carries no meaning) and requires them to tile the data
// buffer exactly: no overlaps, no gaps, nothing after the last tensor.
void check_layout(std::vector<HeaderEntry>& entries, uint64_t data_size, const std::string& path) {
  std::stable_sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  const HeaderEntry* previous = nullptr;
  for (const HeaderEntry& entry : entries) {
    const std::string where = "tensor '" + entry.record.name + "' at data_offsets " +
                              format_offsets(entry.begin, entry.end);
    if (entry.begin < expected_begin) {
      throw_corrupt(path, where + " overlaps tensor '" + previous->record.name + "' at " +
                              format_offsets(previous->begin, previous->end));
    }
    if (entry.begin > expected_begin) {
      throw_corrupt(path, "gap of " + std::to_string(entry.begin - expected_begin) +
                              " bytes before " + where);
    }
    expected_begin = entry.end;
    previous = &entry;
  }
  if (expected_begin != data_size) {
    throw_corrupt(path, std::to_string(data_size - expected_begin) +
                            " trailing bytes after the last tensor");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// TensorRecord, SafetensorsFile
// ---------------------------------------------------------------------------------------------------

TensorRecord TensorRecord::from_bytes(std::string name, std::string dtype, std::vector<int64_t> shape,
                                      const void* data) {
  UV_CHECK(element_size(dtype) != 0, "tensor '" << name << "': unsupported dtype " << dtype);
  UV_CHECK(!has_negative_dim(shape), "tensor '" << name << "': negative dimension in shape "
                                                << format_shape(shape));
  const std::optional<uint64_t> byte_size = checked_byte_size(shape, element_size(dtype));
  UV_CHECK(byte_size.has_value(), "tensor '" << name << "': shape " << format_shape(shape)
                                             << " is too large");
  TensorRecord record;
  record.name = std::move(name);
  record.dtype = std::move(dtype);
  record.shape = std::move(shape);
  const auto* first = static_cast<const uint8_t*>(data);
  record.bytes.assign(first, first + *byte_size);
  return record;
}

TensorRecord TensorRecord::from_f32(std::string name, std::vector<int64_t> shape, const float* data) {
  return from_bytes(std::move(name), "F32", std::move(shape), data);
}

int64_t TensorRecord::numel() const {
  UV_CHECK(!has_negative_dim(shape), "tensor '" << name << "': negative dimension in shape "
                                                << format_shape(shape));
  const std::optional<uint64_t> count = checked_byte_size(shape, 1);
  UV_CHECK(count && *count <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
           "tensor '" << name << "': shape " << format_shape(shape) << " is too large");
  return static_cast<int64_t>(*count);
}

std::vector<float> TensorRecord::to_f32() const {
  UV_REQUIRE(dtype == "F32", "tensor '" << name << "' has dtype " << dtype << ", expected F32");
  std::vector<float> values(static_cast<size_t>(numel()));
  UV_CHECK(bytes.size() == values.size() * sizeof(float),
           "tensor '" << name << "' holds " << bytes.size() << " bytes for shape "
                      << format_shape(shape));
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

const TensorRecord* SafetensorsFile::find(const std::string& name) const {
  for (const TensorRecord& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

const TensorRecord& SafetensorsFile::at(const std::string& name,
                                        const std::string& path_for_messages) const {
  const TensorRecord* tensor = find(name);
  if (tensor == nullptr) UV_FAIL("checkpoint " << path_for_messages << " has no tensor '" << name << "'");
  return *tensor;
}

// ---------------------------------------------------------------------------------------------------
// File I/O
// ---------------------------------------------------------------------------------------------------

void write_safetensors_atomic(const std::string& path, const SafetensorsFile& file) {
  const std::string header = encode_header(file, path);
  uint8_t length_prefix[kLengthPrefixBytes];
  for (uint64_t i = 0; i < kLengthPrefixBytes; ++i) {
    length_prefix[i] = static_cast<uint8_t>(header.size() >> (8 * i));
  }

  // Same directory as `path`, so the rename cannot cross filesystems and is atomic.
  TemporaryFile temporary{path + ".tmp." + std::to_string(::getpid())};
  temporary.stream = std::fopen(temporary.path.c_str(), "wb");
  if (temporary.stream == nullptr) throw_write_error(errno, "creation of", temporary.path, path);
  bool written = write_all(temporary.stream, length_prefix, sizeof(length_prefix)) &&
                 write_all(temporary.stream, header.data(), header.size());
  for (size_t i = 0; written && i < file.tensors.size(); ++i) {
    written = write_all(temporary.stream, file.tensors[i].bytes.data(), file.tensors[i].bytes.size());
  }
  if (!written) throw_write_error(errno, "write of", temporary.path, path);
  if (std::fflush(temporary.stream) != 0) throw_write_error(errno, "flush of", temporary.path, path);
  if (::fsync(::fileno(temporary.stream)) != 0) {
    throw_write_error(errno, "fsync of", temporary.path, path);
  }
  const int close_result = std::fclose(temporary.stream);
  temporary.stream = nullptr;  // fclose releases the stream even when it fails
  if (close_result != 0) throw_write_error(errno, "close of", temporary.path, path);
  if (std::rename(temporary.path.c_str(), path.c_str()) != 0) {
    throw_write_error(errno, "rename of", temporary.path, path);
  }
  temporary.renamed = true;

  const std::string directory = std::filesystem::path(path).parent_path().string();
  fsync_directory(directory.empty() ? "." : directory, path);
}

namespace {

// read_safetensors, or (with_tensors false) the same validation of the header alone: the tensors
// then come back without their bytes.
SafetensorsFile read_file(const std::string& path, bool with_tensors) {
  const std::unique_ptr<FILE, CloseFile> stream(std::fopen(path.c_str(), "rb"));
  if (!stream) {
    const int error_number = errno;
    UV_FAIL("cannot open checkpoint " << path << ": " << std::strerror(error_number));
  }
  struct stat info {};
  if (::fstat(::fileno(stream.get()), &info) != 0) {
    const int error_number = errno;
    throw Error("cannot stat checkpoint " + path + ": " + std::strerror(error_number));
  }
  UV_REQUIRE(S_ISREG(info.st_mode), "checkpoint " << path << " is not a regular file");
  const auto file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < kLengthPrefixBytes) {
    throw_corrupt(path, "file is " + std::to_string(file_size) +
                            " bytes, too short for the 8-byte header length");
  }

  uint8_t length_prefix[kLengthPrefixBytes];
  read_exact(stream.get(), length_prefix, sizeof(length_prefix), path);
  uint64_t header_size = 0;
  for (uint64_t i = kLengthPrefixBytes; i-- > 0;) header_size = (header_size << 8) | length_prefix[i];
  if (header_size > kMaxHeaderBytes) {
    throw_corrupt(path, "header length " + std::to_string(header_size) + " exceeds the " +
                            std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (header_size > file_size - kLengthPrefixBytes) {
    throw_corrupt(path, "header length " + std::to_string(header_size) + " exceeds the " +
                            std::to_string(file_size - kLengthPrefixBytes) +
                            " bytes after the length prefix");
  }
  const uint64_t data_size = file_size - kLengthPrefixBytes - header_size;

  std::string header_text(header_size, '\0');
  read_exact(stream.get(), header_text.data(), header_text.size(), path);
  // nlohmann's lexer treats a NUL byte as the end of input and would ignore whatever follows it;
  // JSON text never contains one.
  if (header_text.find('\0') != std::string::npos) throw_corrupt(path, "header contains a NUL byte");
  Json header;
  try {
    header = Json::parse(header_text);
  } catch (const Json::parse_error& e) {
    throw_corrupt(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw_corrupt(path, "header is not a JSON object");

  SafetensorsFile file;
  std::vector<HeaderEntry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      file.metadata = parse_metadata(item.value(), path);
    } else {
      entries.push_back(parse_entry(item.key(), item.value(), data_size, path));
    }
  }
  check_layout(entries, data_size, path);

  // The layout check guarantees the entries tile the data buffer, so they read back to back.
  file.tensors.reserve(entries.size());
  for (HeaderEntry& entry : entries) {
    if (with_tensors) {
      entry.record.bytes.resize(entry.end - entry.begin);
      read_exact(stream.get(), entry.record.bytes.data(), entry.record.bytes.size(), path);
    }
    file.tensors.push_back(std::move(entry.record));
  }
  return file;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) { return read_file(path, true); }

SafetensorsFile read_safetensors_header(const std::string& path) { return read_file(path, false); }

}  // namespace uv::ckpt
