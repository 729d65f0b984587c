// Checkpoint files in the safetensors format (huggingface/safetensors), so other tools can read them:
//   [8 bytes]  N, little-endian u64: length of the JSON header
//   [N bytes]  UTF-8 JSON object, padded with spaces so the data buffer starts 8-byte aligned:
//                { "__metadata__": {string: string},   (optional)
//                  "<tensor name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ... }
//   [rest]     data buffer; offsets are relative to its start, tensors packed with no gaps, and the
//              last tensor ends exactly at the end of the file.
// Elements are stored little-endian. Supported dtypes: F32, F64, I64.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace uv::ckpt {

struct TensorRecord {
  std::string name;
  std::string dtype = "F32";   // "F32", "F64" or "I64"
  std::vector<int64_t> shape;  // empty for a scalar
  std::vector<uint8_t> bytes;  // (numel * element size) raw little-endian elements

  // Copies numel(shape) elements of `dtype` from `data`.
  static TensorRecord from_bytes(std::string name, std::string dtype, std::vector<int64_t> shape,
                                 const void* data);
  // Copies numel(shape) floats from `data`.
  static TensorRecord from_f32(std::string name, std::vector<int64_t> shape, const float* data);

  int64_t numel() const;
  // The elements as floats (a copy: `bytes` holds no float objects to alias). A dtype other than F32
  // is a user error, since records usually come from a checkpoint file.
  std::vector<float> to_f32() const;
};

struct SafetensorsFile {
  std::vector<TensorRecord> tensors;  // written in this order; read back in data-offset order
  std::map<std::string, std::string> metadata;

  // nullptr if there is no tensor called `name`.
  const TensorRecord* find(const std::string& name) const;
  // Throws uv::UserError naming `name` and `path_for_messages` if there is no such tensor.
  const TensorRecord& at(const std::string& name, const std::string& path_for_messages) const;
};

// Writes `file` to `path + ".tmp.<pid>"`, fsyncs it, renames it over `path` and fsyncs the directory,
// so a crash leaves either the old file or the complete new one. On failure uv::Error names the path
// and the OS error; up to the rename the temporary is removed and `path` is untouched, while a failed
// directory fsync leaves the new file in place but not known to be durable. Concurrent writes to the
// same path from one process are not supported (they would share the temporary).
void write_safetensors_atomic(const std::string& path, const SafetensorsFile& file);

// Reads and validates a whole file. Throws uv::UserError naming `path` if it cannot be opened or is
// not a well-formed safetensors file ("corrupt checkpoint <path>: <what>"), and uv::Error on an I/O
// error while reading.
SafetensorsFile read_safetensors(const std::string& path);
// The same checks of the file's size and header, without reading the tensor data: the metadata, and
// each tensor's name, dtype and shape with empty bytes (what a resume reads before it allocates).
SafetensorsFile read_safetensors_header(const std::string& path);

}  // namespace uv::ckpt
