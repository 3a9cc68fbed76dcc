#include "tessera/autograd/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/autograd/error.h"
#include "autograd/input_file.h"

namespace tessera::io {

// Tensor bytes are written and read as they lie in memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

// Python safetensors refuses larger headers; so do we, before allocating one.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

std::string errno_text() { return std::strerror(errno); }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DType t : {DType::f32, DType::f64, DType::bf16, DType::i64})
    if (safetensors_dtype_name(t) == name) return t;
  return std::nullopt;
}

// ---------------------------------------------------------------- writing

// A temporary file beside the target that becomes the target only on commit(); until
// then (and if anything fails) the target is untouched and the temporary is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target) : target_(target) {
    static std::atomic<std::uint64_t> counter{0};
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
    temp_ = dir / fmt::format(".{}.tmp-{}-{}", target.filename().string(), ::getpid(), counter++);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    TESSERA_CHECK(fd_ >= 0, IoError, "save_safetensors: '{}': cannot create a temporary file in '{}': {}",
                  target.string(), dir.string(), errno_text());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  void write(const void* data, std::size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, p, std::min<std::size_t>(bytes, std::size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      TESSERA_CHECK(n > 0, IoError, "save_safetensors: '{}': write failed: {}", target_.string(),
                    n < 0 ? errno_text() : "no progress");
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }

  void commit() {
    TESSERA_CHECK(::fsync(fd_) == 0, IoError, "save_safetensors: '{}': fsync failed: {}",
                  target_.string(), errno_text());
    const int fd = fd_;
    fd_ = -1;
    TESSERA_CHECK(::close(fd) == 0, IoError, "save_safetensors: '{}': close failed: {}",
                  target_.string(), errno_text());
    TESSERA_CHECK(::rename(temp_.c_str(), target_.c_str()) == 0, IoError,
                  "save_safetensors: '{}': cannot replace it with the new file: {}", target_.string(),
                  errno_text());
    committed_ = true;
    // Make the rename itself durable. Best effort: some filesystems refuse to fsync a
    // directory, and the new file is complete either way.
    const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : ".";
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// ---------------------------------------------------------------- reading

// The text of a JSON value for messages, kept short.
std::string brief(const json& j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

std::uint64_t checked_uint(const InputFile& f, const json& j, std::string_view name,
                           std::string_view field) {
  if (!j.is_number_unsigned())
    f.fail("tensor \"{}\": {} must hold non-negative integers, got {}", name, field, brief(j));
  return j.get<std::uint64_t>();
}

TensorEntry parse_entry(const InputFile& f, const std::string& name, const json& j) {
  if (!j.is_object()) f.fail("tensor \"{}\": expected an object with dtype, shape and data_offsets, got {}", name, brief(j));
  for (const auto& [field, value] : j.items())
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      f.fail("tensor \"{}\": unknown field \"{}\"", name, field);
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!j.contains(field)) f.fail("tensor \"{}\": missing field \"{}\"", name, field);

  TensorEntry e;
  e.name = name;
  const json& dtype = j["dtype"];
  if (!dtype.is_string()) f.fail("tensor \"{}\": dtype must be a string, got {}", name, brief(dtype));
  const std::optional<DType> t = dtype_from_name(dtype.get<std::string>());
  if (!t) f.fail("tensor \"{}\": dtype {} is not supported (F32, F64, BF16, I64)", name, brief(dtype));
  e.dtype = *t;

  const json& shape = j["shape"];
  if (!shape.is_array()) f.fail("tensor \"{}\": shape must be a list, got {}", name, brief(shape));
  for (const json& d : shape) {
    const std::uint64_t n = checked_uint(f, d, name, "shape");
    if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      f.fail("tensor \"{}\": shape {} has a dimension too large", name, brief(shape));
    e.shape.push_back(static_cast<std::int64_t>(n));
  }
  // The element count must fit a tensor (int64) even when a zero makes it empty, since
  // shapes are multiplied out elsewhere; the byte size must fit as well.
  const std::uint64_t limit = std::numeric_limits<std::int64_t>::max() / dtype_size(e.dtype);
  std::uint64_t numel = 1;
  bool empty_tensor = false;
  for (const std::int64_t n : e.shape) {
    if (n == 0) {
      empty_tensor = true;
      continue;
    }
    if (numel > limit / static_cast<std::uint64_t>(n))
      f.fail("tensor \"{}\": shape {} is too large", name, brief(shape));
    numel *= static_cast<std::uint64_t>(n);
  }
  const std::uint64_t bytes = empty_tensor ? 0 : numel * dtype_size(e.dtype);

  const json& offsets = j["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    f.fail("tensor \"{}\": data_offsets must be [begin, end], got {}", name, brief(offsets));
  e.begin = checked_uint(f, offsets[0], name, "data_offsets");
  e.end = checked_uint(f, offsets[1], name, "data_offsets");
  if (e.end < e.begin) f.fail("tensor \"{}\": data_offsets [{}, {}) end before they begin", name, e.begin, e.end);
  if (e.end - e.begin != bytes)
    f.fail("tensor \"{}\": data_offsets [{}, {}) hold {} bytes, but shape {} of {} needs {}", name,
           e.begin, e.end, e.end - e.begin, shape_str(e.shape), safetensors_dtype_name(e.dtype), bytes);
  return e;
}

SafetensorsHeader parse_header(const InputFile& f) {
  if (f.size() < 8) f.fail("the file is {} bytes, too short for the 8-byte header length", f.size());
  unsigned char prefix[8];
  f.read_at(prefix, 8, 0);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];
  if (n > f.size() - 8)
    f.fail("the header length {} runs past the end of the file ({} bytes)", n, f.size());
  if (n > kMaxHeaderBytes) f.fail("the header length {} exceeds the {} byte limit", n, kMaxHeaderBytes);
  std::string text(n, '\0');
  f.read_at(text.data(), n, 8);

  // nlohmann keeps the last of duplicate keys; the callback sees every key, one set per
  // open object, so duplicates are caught at any depth.
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::pair<std::string, std::size_t>> duplicate;  // key, depth
  const auto watch = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    else if (event == json::parse_event_t::object_end) open_objects.pop_back();
    else if (event == json::parse_event_t::key && !open_objects.empty() && !duplicate &&
             !open_objects.back().insert(parsed.get<std::string>()).second)
      duplicate.emplace(parsed.get<std::string>(), open_objects.size());
    return true;
  };
  json header;
  try {
    header = json::parse(text, watch);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (const std::size_t close = what.find("] "); what.starts_with("[json.") && close != std::string::npos)
      what = what.substr(close + 2);
    f.fail("the header is not valid JSON: {}", what);
  }
  if (duplicate && duplicate->second == 1) f.fail("duplicate tensor name \"{}\"", duplicate->first);
  if (duplicate) f.fail("duplicate key \"{}\" in the header", duplicate->first);
  if (!header.is_object()) f.fail("the header is not a JSON object: {}", brief(header));

  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const std::uint64_t data_size = f.size() - h.data_offset;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) f.fail("__metadata__ must be a map of strings, got {}", brief(value));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) f.fail("__metadata__ \"{}\" must be a string, got {}", mk, brief(mv));
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    TensorEntry e = parse_entry(f, key, value);
    if (e.end > data_size)
      f.fail("tensor \"{}\": data_offsets [{}, {}) run past the data section ({} bytes)", key, e.begin,
             e.end, data_size);
    h.entries.push_back(std::move(e));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing after.
  std::sort(h.entries.begin(), h.entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& e : h.entries) {
    if (e.begin < covered)
      f.fail("tensor \"{}\" at [{}, {}) overlaps tensor \"{}\" at [{}, {})", e.name, e.begin, e.end,
             previous->name, previous->begin, previous->end);
    if (e.begin > covered)
      f.fail("bytes [{}, {}) of the data section belong to no tensor", covered, e.begin);
    if (e.end > covered || !previous) previous = &e;
    covered = std::max(covered, e.end);
  }
  if (covered < data_size)
    f.fail("{} bytes of trailing data after the last tensor (the data section should end at byte {})",
           data_size - covered, h.data_offset + covered);
  return h;
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i64: return "I64";
  }
  return "?";
}

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const Metadata& metadata) {
  // Everything that can be checked is checked before the temporary file exists.
  std::vector<std::pair<const std::string*, const Tensor*>> order;
  for (const auto& [name, t] : tensors) {
    TESSERA_CHECK(name != "__metadata__", IoError,
                  "save_safetensors: '{}': \"__metadata__\" is reserved and cannot name a tensor",
                  path.string());
    TESSERA_CHECK(t.defined(), IoError, "save_safetensors: '{}': tensor \"{}\" is undefined",
                  path.string(), name);
    order.emplace_back(&name, &t);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second->dtype()) > dtype_size(b.second->dtype());
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    const std::uint64_t end = offset + t->nbytes();
    header[*name] = {{"dtype", safetensors_dtype_name(t->dtype())},
                     {"shape", t->shape()},
                     {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // names and metadata must be valid UTF-8
    throw IoError(fmt::format("save_safetensors: '{}': cannot encode the header: {}", path.string(),
                              e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  AtomicFile file(path);
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  file.write(prefix, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : order) {
    // One tensor on the host at a time; detach so no copy is recorded on the tape.
    const Tensor host = t->device().is_cpu() ? *t : t->detach().cpu();
    if (host.nbytes() > 0) file.write(host.raw_data(), host.nbytes());
  }
  file.commit();
}

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) {
  const InputFile f(path, "read_safetensors_header");
  return parse_header(f);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  const InputFile f(path, "load_safetensors");
  const SafetensorsHeader h = parse_header(f);
  SafetensorsFile out;
  out.metadata = h.metadata;
  for (const TensorEntry& e : h.entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    if (t.nbytes() > 0) f.read_at(t.raw_data(), t.nbytes(), h.data_offset + e.begin);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void check_tensor_shapes(const TensorMap& loaded, const std::map<std::string, Shape>& expected,
                         std::string_view what) {
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, shape] : expected) {
    const auto it = loaded.find(name);
    if (it == loaded.end()) missing.push_back(fmt::format("  missing: {} {}", name, shape_str(shape)));
    else if (it->second.shape() != shape)
      misshaped.push_back(fmt::format("  wrong shape: {} is {}, expected {}", name,
                                      shape_str(it->second.shape()), shape_str(shape)));
  }
  for (const auto& [name, t] : loaded)
    if (!expected.contains(name))
      unexpected.push_back(fmt::format("  unexpected: {} {}", name, shape_str(t.shape())));
  if (missing.empty() && unexpected.empty() && misshaped.empty()) return;
  std::vector<std::string> lines = missing;
  lines.insert(lines.end(), unexpected.begin(), unexpected.end());
  lines.insert(lines.end(), misshaped.begin(), misshaped.end());
  throw IoError(fmt::format("{}: tensors do not match ({} missing, {} unexpected, {} wrong shape):\n{}",
                            what, missing.size(), unexpected.size(), misshaped.size(),
                            fmt::join(lines, "\n")));
}

}  // namespace tessera::io
