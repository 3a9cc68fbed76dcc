// The safetensors format (Hugging Face): write atomically, read with full validation.
// Layout: u64 little-endian header length N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// padded with spaces, then the raw little-endian tensor bytes; offsets are relative to the
// start of that data section.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::io {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  TensorMap tensors;
  Metadata metadata;  // the optional "__metadata__" string map
};

// One header entry, as recorded in the file.
struct TensorEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::uint64_t begin = 0;  // data_offsets, relative to the data section
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> entries;  // in data order
  Metadata metadata;
  std::uint64_t data_offset = 0;  // where the data section starts in the file (8 + N)
};

// Writes `tensors` (any device; copied to the host one at a time) in a stable order:
// by element size, largest first, then by name, so every tensor starts aligned to its
// element size. The bytes go to a temporary file in the same directory that is flushed,
// fsync'd and renamed over `path`, so a failure at any point leaves a previous file
// intact. Throws IoError naming the file and the cause.
void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const Metadata& metadata = {});

// Reads and validates the header only (no tensor data).
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// Reads every tensor into CPU memory. Throws IoError naming the file and the problem:
// a file shorter than 8 bytes, a header length past the end, invalid JSON, a duplicate
// name, an unknown dtype, a bad shape, offsets out of range, overlapping, leaving a gap
// or not matching shape x dtype size, or bytes after the last tensor.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

// Checks a loaded set against the expected names and shapes; throws one IoError that
// lists every missing, unexpected and mis-shaped entry. `what` names the source in the
// message ("checkpoint runs/x/model.safetensors").
void check_tensor_shapes(const TensorMap& loaded, const std::map<std::string, Shape>& expected,
                         std::string_view what);

// The safetensors dtype names: F32, F64, BF16, I64.
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace tessera::io
