#include "engine/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <limits>
#include <numeric>
#include <sstream>

#include "engine/core/error.h"

namespace uv::data {

size_t IdxArray::count() const {
  return std::accumulate(dims.begin(), dims.end(), size_t{1}, std::multiplies<size_t>());
}

namespace {

constexpr unsigned kGzBufferBytes = 1u << 17;  // zlib's default 8 KiB makes MNIST loads syscall-bound
constexpr size_t kReadChunkBytes = size_t{16} << 20;
constexpr size_t kGzMaxCall = size_t{1} << 30;  // gzread/gzwrite take an unsigned and return an int

std::string in_file(const std::string& path) { return "IDX file '" + path + "': "; }

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
  }
}

std::string hex_bytes(const uint8_t* bytes, size_t n) {
  std::ostringstream out;
  out << std::hex << std::setfill('0');
  for (size_t i = 0; i < n; ++i) out << (i ? " " : "") << std::setw(2) << int{bytes[i]};
  return out.str();
}

std::string hex_byte(uint8_t byte) { return "0x" + hex_bytes(&byte, 1); }

// One reader for both encodings: zlib passes files without the gzip magic through unchanged.
class IdxSource {
 public:
  explicit IdxSource(const std::string& path) : path_(path) {
    std::error_code ignored;
    UV_REQUIRE(!std::filesystem::is_directory(path, ignored),
               "cannot open IDX file '" << path << "': it is a directory");
    file_ = gzopen(path.c_str(), "rb");
    UV_REQUIRE(file_ != nullptr,
               "cannot open IDX file '" << path << "': " << std::strerror(errno));
    gzbuffer(file_, kGzBufferBytes);
  }
  ~IdxSource() { gzclose(file_); }
  IdxSource(const IdxSource&) = delete;
  IdxSource& operator=(const IdxSource&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. A gzip stream cut short is reported by
  // zlib as a soft error next to a short count, so the error state is checked after every call.
  size_t read(uint8_t* dst, size_t n) {
    size_t total = 0;
    while (total < n) {
      const unsigned want = static_cast<unsigned>(std::min(n - total, kGzMaxCall));
      const int got = gzread(file_, dst + total, want);
      int errnum = Z_OK;
      const char* what = gzerror(file_, &errnum);
      UV_REQUIRE(errnum != Z_ERRNO, in_file(path_) << "read error: " << zlib_message(what));
      UV_REQUIRE(got >= 0 && errnum == Z_OK,
                 in_file(path_) << "corrupt gzip stream (" << zlib_message(what) << ")");
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }

 private:
  // zlib prefixes its messages with the path, which our messages already name.
  std::string zlib_message(const char* message) const {
    const std::string text = message, prefix = path_ + ": ";
    return text.compare(0, prefix.size(), prefix) == 0 ? text.substr(prefix.size()) : text;
  }

  std::string path_;
  gzFile file_ = nullptr;
};

uint32_t load_be32(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

void store_be32(uint32_t value, uint8_t* bytes) {
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (24 - 8 * i));
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  IdxSource source(path);

  uint8_t magic[4];  // 0x00 0x00 <type> <ndim>
  const size_t magic_found = source.read(magic, sizeof magic);
  UV_REQUIRE(magic_found == sizeof magic, in_file(path) << "truncated header: expected 4 magic bytes, found "
                                                         << magic_found);
  UV_REQUIRE(magic[0] == 0 && magic[1] == 0,
             in_file(path) << "wrong magic: an IDX file starts with 00 00 <type> <ndim>, found "
                           << hex_bytes(magic, sizeof magic));
  IdxArray array;
  array.type = magic[2];
  UV_REQUIRE(array.type == kIdxTypeU8,
             in_file(path) << "unsupported IDX data type " << hex_byte(array.type) << " ("
                           << idx_type_name(array.type) << "); only " << hex_byte(kIdxTypeU8) << " ("
                           << idx_type_name(kIdxTypeU8) << ") is supported");
  const int ndim = magic[3];
  UV_REQUIRE(ndim >= 1 && ndim <= kIdxMaxDims,
             in_file(path) << "unsupported number of dimensions " << ndim << "; expected 1 to "
                           << kIdxMaxDims);

  uint8_t dim_bytes[4 * kIdxMaxDims];  // (ndim, 4) big-endian u32
  const size_t dim_bytes_expected = 4 * static_cast<size_t>(ndim);
  const size_t dim_bytes_found = source.read(dim_bytes, dim_bytes_expected);
  UV_REQUIRE(dim_bytes_found == dim_bytes_expected,
             in_file(path) << "truncated header: expected " << dim_bytes_expected
                           << " bytes of dimension sizes, found " << dim_bytes_found);
  size_t expected = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint32_t size = load_be32(dim_bytes + 4 * d);
    UV_REQUIRE(size == 0 || expected <= std::numeric_limits<size_t>::max() / size,
               in_file(path) << "dimension sizes overflow the address space");
    expected *= size;
    array.dims.push_back(size);
  }

  // Grow by chunks rather than trusting the header up front: a corrupt size must not allocate
  // gigabytes before the missing data is noticed.
  while (array.values.size() < expected) {
    const size_t have = array.values.size();
    const size_t want = std::min(expected - have, kReadChunkBytes);
    array.values.resize(have + want);
    const size_t got = source.read(array.values.data() + have, want);
    array.values.resize(have + got);
    if (got < want) break;
  }
  UV_REQUIRE(array.values.size() == expected,
             in_file(path) << "truncated data: the header promises " << expected
                           << " data bytes, found " << array.values.size());

  // Reading to the end also makes zlib verify the gzip trailer (CRC and length).
  uint8_t scratch[4096];
  size_t extra = 0;
  for (size_t got; (got = source.read(scratch, sizeof scratch)) > 0;) extra += got;
  UV_REQUIRE(extra == 0, in_file(path) << "trailing garbage: " << extra << " extra bytes after the "
                                       << expected << " data bytes the header promises");
  return array;
}

void write_idx(const std::string& path, const IdxArray& array, IdxCompression compression) {
  UV_CHECK(array.type == kIdxTypeU8, "write_idx supports only type " << hex_byte(kIdxTypeU8));
  UV_CHECK(!array.dims.empty() && array.dims.size() <= static_cast<size_t>(kIdxMaxDims),
           "write_idx needs 1 to " << kIdxMaxDims << " dims, got " << array.dims.size());
  UV_CHECK(array.values.size() == array.count(),
           "write_idx: " << array.values.size() << " values for dims holding " << array.count());

  std::vector<uint8_t> header(4 + 4 * array.dims.size());  // magic, then (ndim) big-endian u32
  header[2] = array.type;
  header[3] = static_cast<uint8_t>(array.dims.size());
  for (size_t d = 0; d < array.dims.size(); ++d) store_be32(array.dims[d], header.data() + 4 + 4 * d);

  // "T" makes zlib write the bytes unchanged, so both encodings share one writer.
  const char* mode = compression == IdxCompression::kGzip ? "wb" : "wbT";
  gzFile file = gzopen(path.c_str(), mode);
  UV_REQUIRE(file != nullptr, "cannot write IDX file '" << path << "': " << std::strerror(errno));
  const auto write_all = [file](const std::vector<uint8_t>& bytes) {
    for (size_t done = 0; done < bytes.size();) {
      const unsigned want = static_cast<unsigned>(std::min(bytes.size() - done, kGzMaxCall));
      if (gzwrite(file, bytes.data() + done, want) != static_cast<int>(want)) return false;
      done += want;
    }
    return true;
  };
  const bool ok = write_all(header) && write_all(array.values);
  const std::string what = ok ? "" : gzerror(file, nullptr);
  const bool closed = gzclose(file) == Z_OK;
  UV_REQUIRE(ok && closed, "cannot write IDX file '" << path << "': "
                                                     << (ok ? "close failed" : what));
}

}  // namespace uv::data
