// safetensors: round trips of every dtype, the byte layout, each kind of corruption,
// atomic replacement, interop with files laid out by the Python library's rules, and the
// name/shape check.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tessera/autograd/bf16.h"
#include "support/test_support.h"
#include "tessera/autograd/safetensors.h"

using namespace tessera;
using namespace tessera::io;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A file from a header text and data bytes; the header is padded to 8 bytes unless told not.
std::string safetensors_bytes(std::string header, std::string_view data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + std::string(data);
}

template <class T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// The IoError message of loading `bytes` from a file; fails the test when none is thrown.
std::string load_error_of(const test::TempDir& dir, std::string_view bytes) {
  const fs::path path = dir / "bad.safetensors";
  write_bytes(path, bytes);
  try {
    load_safetensors(path);
  } catch (const IoError& e) {
    const std::string message = e.what();
    BOOST_TEST(message.find(path.string()) != std::string::npos, "the message names the file: " << message);
    return message;
  }
  BOOST_ERROR("expected an IoError for a corrupt file");
  return "";
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// One entry of a hand-written header.
std::string entry(std::string_view name, std::string_view dtype, std::string_view shape,
                  std::uint64_t begin, std::uint64_t end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape, begin, end);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(safetensors)

BOOST_AUTO_TEST_CASE(every_dtype_round_trips_bit_exactly) {
  test::TempDir dir("st_round_trip");
  const fs::path path = dir / "weights.safetensors";
  TensorMap tensors;
  tensors["blocks.0.attn.qkv.weight"] = from_vector<float>({1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f}, {2, 3});
  tensors["head.bias"] = from_vector<double>({0.1, -1e-300, 12345.6789}, {3}, {.dtype = f64});
  tensors["pos_embed"] = from_vector<float>({1.0f, -2.5f, 0.15625f, 65536.0f}, {1, 2, 2}).to(bf16);
  tensors["labels"] = from_vector<std::int64_t>({-1, 0, 9007199254740993LL, INT64_MIN}, {4}, {.dtype = i64});
  BOOST_TEST_REQUIRE((tensors["head.bias"].dtype() == f64 && tensors["labels"].dtype() == i64));
  const Metadata metadata{{"format", "pt"}, {"epoch", "3"}, {"note", "ünïcode \"quoted\""}};
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile loaded = load_safetensors(path);
  BOOST_TEST((loaded.metadata == metadata));
  BOOST_TEST_REQUIRE(loaded.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor& u = loaded.tensors.at(name);
    BOOST_TEST((u.shape() == t.shape()), name);
    BOOST_TEST((u.dtype() == t.dtype()), name);
    BOOST_TEST(std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) == 0, name);
  }
  BOOST_TEST(loaded.tensors.at("labels").to_vector<std::int64_t>()[2] == 9007199254740993LL);
  BOOST_TEST((loaded.tensors.at("pos_embed").to(f32).to_vector<float>() ==
              std::vector<float>{1.0f, -2.5f, 0.15625f, 65536.0f}));
  BOOST_TEST(loaded.tensors.at("head.bias").to_vector<double>()[1] == -1e-300);
}

BOOST_AUTO_TEST_CASE(scalars_empty_tensors_and_empty_files_round_trip) {
  test::TempDir dir("st_edge");
  const fs::path path = dir / "edge.safetensors";
  TensorMap tensors;
  tensors["scalar"] = scalar_tensor(2.5);
  tensors["empty"] = empty({0, 3});  // (zeros() of an empty shape memsets a null pointer: UB)
  tensors["empty_i64"] = empty({0}, {.dtype = i64});
  tensors["step"] = full({}, 42.0, {.dtype = i64});
  save_safetensors(path, tensors);
  const SafetensorsFile loaded = load_safetensors(path);
  BOOST_TEST(loaded.metadata.empty());
  BOOST_TEST(loaded.tensors.at("scalar").dim() == 0);
  BOOST_TEST(loaded.tensors.at("scalar").item() == 2.5);
  BOOST_TEST(loaded.tensors.at("step").item() == 42.0);
  BOOST_TEST((loaded.tensors.at("empty").shape() == Shape{0, 3}));
  BOOST_TEST(loaded.tensors.at("empty").numel() == 0);
  BOOST_TEST((loaded.tensors.at("empty_i64").dtype() == DType::i64));

  save_safetensors(path, {});
  BOOST_TEST(read_bytes(path) == le64(8) + "{}      ");
  BOOST_TEST(load_safetensors(path).tensors.empty());
}

BOOST_AUTO_TEST_CASE(layout_is_aligned_padded_and_deterministic) {
  test::TempDir dir("st_layout");
  const fs::path path = dir / "layout.safetensors";
  TensorMap tensors;
  tensors["b"] = from_vector<float>({1.0f, 2.0f}, {2});
  tensors["a"] = from_vector<double>({3.0}, {1}, {.dtype = f64});
  tensors["c"] = from_vector<float>({1.0f, 2.0f, 3.0f}, {3}).to(bf16);
  tensors["d"] = from_vector<std::int64_t>({5}, {1}, {.dtype = i64});
  save_safetensors(path, tensors, {{"k", "v"}});
  const std::string bytes = read_bytes(path);

  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  BOOST_TEST(n % 8 == 0u);
  const std::string header = bytes.substr(8, n);
  BOOST_TEST(header.front() == '{');
  BOOST_TEST(header.find_last_not_of(' ') + 1 > header.size() - 8);  // at most 7 spaces of padding

  // Largest elements first, then by name: every tensor starts aligned to its element size.
  const nlohmann::json j = nlohmann::json::parse(header);
  BOOST_TEST(j["__metadata__"]["k"] == "v");
  BOOST_TEST((j["a"]["data_offsets"] == nlohmann::json{0, 8}));
  BOOST_TEST((j["d"]["data_offsets"] == nlohmann::json{8, 16}));
  BOOST_TEST((j["b"]["data_offsets"] == nlohmann::json{16, 24}));
  BOOST_TEST((j["c"]["data_offsets"] == nlohmann::json{24, 30}));
  BOOST_TEST(j["c"]["dtype"] == "BF16");
  BOOST_TEST((j["c"]["shape"] == nlohmann::json{3}));
  BOOST_TEST(bytes.size() == 8 + n + 30);
  BOOST_TEST(bytes.substr(8 + n, 8) == raw<double>({3.0}));
  BOOST_TEST(bytes.substr(8 + n + 24, 2) == std::string("\x80\x3f", 2));  // bf16 1.0

  const SafetensorsHeader h = read_safetensors_header(path);
  BOOST_TEST(h.data_offset == 8 + n);
  BOOST_TEST_REQUIRE(h.entries.size() == 4u);
  BOOST_TEST(h.entries[0].name == "a");
  BOOST_TEST(h.entries[3].name == "c");
  BOOST_TEST((h.entries[3].dtype == DType::bf16));

  save_safetensors(dir / "again.safetensors", tensors, {{"k", "v"}});
  BOOST_TEST(read_bytes(dir / "again.safetensors") == bytes);
}

BOOST_AUTO_TEST_CASE(reads_a_file_laid_out_by_the_python_library) {
  // Bytes as Python's safetensors.torch.save_file writes them (the Rust serializer):
  // "__metadata__" first, tensors ordered by alignment then name, compact JSON padded
  // with spaces to 8 bytes, little-endian data. Values spelled out as IEEE bit patterns.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("scale":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
      R"("step":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
      R"("bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
      R"("weight":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]},)"
      R"("half":{"dtype":"BF16","shape":[3],"data_offsets":[40,46]}})";
  const std::string data = std::string(
      "\x00\x00\x00\x00\x00\x00\xf0\x3f"   // scale = 1.0 (0x3FF0000000000000)
      "\xff\xff\xff\xff\xff\xff\xff\xff"   // step = -1
      "\x00\x00\x80\x3f\x00\x00\x00\xc0"   // bias = [1.0, -2.0]
      "\x00\x00\x00\x3f\x00\x00\x40\x40"   // weight = [[0.5, 3.0],
      "\x00\x00\x80\x3e\x00\x00\xc0\xbf"   //           [0.25, -1.5]]
      "\x80\x3f\x20\xc0\x00\x00",          // half = [1.0, -2.5, 0.0]
      46);
  test::TempDir dir("st_interop");
  const fs::path path = dir / "model.safetensors";
  const std::string file = safetensors_bytes(header, data);
  BOOST_TEST_REQUIRE((file.size() - 8 - data.size()) % 8 == 0u);
  write_bytes(path, file);

  const SafetensorsFile f = load_safetensors(path);
  BOOST_TEST(f.metadata.at("format") == "pt");
  BOOST_TEST(f.tensors.at("scale").dim() == 0);
  BOOST_TEST(f.tensors.at("scale").item() == 1.0);
  BOOST_TEST(f.tensors.at("step").to_vector<std::int64_t>()[0] == -1);
  BOOST_TEST((f.tensors.at("bias").to_vector<float>() == std::vector<float>{1.0f, -2.0f}));
  BOOST_TEST((f.tensors.at("weight").shape() == Shape{2, 2}));
  BOOST_TEST((f.tensors.at("weight").to_vector<float>() == std::vector<float>{0.5f, 3.0f, 0.25f, -1.5f}));
  BOOST_TEST((f.tensors.at("half").to(f32).to_vector<float>() == std::vector<float>{1.0f, -2.5f, 0.0f}));

  // And the other way: our writer produces the same data section and an equivalent header.
  const fs::path ours = dir / "ours.safetensors";
  save_safetensors(ours, f.tensors, f.metadata);
  const std::string written = read_bytes(ours);
  const std::uint64_t n = read_safetensors_header(ours).data_offset - 8;
  BOOST_TEST(written.substr(8 + n) == data);
  BOOST_TEST((nlohmann::json::parse(written.substr(8, n)) == nlohmann::json::parse(header)));
}

BOOST_AUTO_TEST_CASE(every_kind_of_corruption_is_an_io_error) {
  test::TempDir dir("st_corrupt");
  const std::string f32x2 = raw<float>({1.0f, 2.0f});
  const auto one = [&](std::string_view extra = "") {
    return fmt::format("{{{}{}}}", entry("a", "F32", "[2]", 0, 8), extra);
  };

  BOOST_TEST(contains(load_error_of(dir, ""), "the file is 0 bytes, too short for the 8-byte header length"));
  BOOST_TEST(contains(load_error_of(dir, std::string("\x02\0\0", 3)), "the file is 3 bytes, too short"));
  BOOST_TEST(contains(load_error_of(dir, le64(1000) + "{}      "),
                      "the header length 1000 runs past the end of the file (16 bytes)"));
  BOOST_TEST(contains(load_error_of(dir, le64(~0ull) + "{}"), "runs past the end of the file"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a": )", "")), "the header is not valid JSON: "));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("[1, 2]", "")), "the header is not a JSON object: [1,2]"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F16", "[4]", 0, 8) + "}", f32x2)),
                      "tensor \"a\": dtype \"F16\" is not supported (F32, F64, BF16, I64)"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", f32x2)),
                      "tensor \"a\": dtype must be a string, got 4"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[-2]", 0, 8) + "}", f32x2)),
                      "tensor \"a\": shape must hold non-negative integers, got -2"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[2.0]", 0, 8) + "}", f32x2)),
                      "tensor \"a\": shape must hold non-negative integers, got 2.0"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "2", 0, 8) + "}", f32x2)),
                      "tensor \"a\": shape must be a list, got 2"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(
                          "{" + entry("a", "F32", "[4294967296,4294967296,4]", 0, 8) + "}", f32x2)),
                      "tensor \"a\": shape [4294967296,4294967296,4] is too large"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(
                          "{" + entry("a", "F32", "[4294967296,0,4294967296]", 0, 0) + "}", "")),
                      "tensor \"a\": shape [4294967296,0,4294967296] is too large"));
  write_bytes(dir / "empty.safetensors", safetensors_bytes("{" + entry("a", "F32", "[5,0,7]", 0, 0) + "}", ""));
  BOOST_TEST((load_safetensors(dir / "empty.safetensors").tensors.at("a").shape() == Shape{5, 0, 7}));
  // Offsets: out of range, not matching the shape, reversed, malformed.
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[4]", 0, 16) + "}", f32x2)),
                      "tensor \"a\": data_offsets [0, 16) run past the data section (8 bytes)"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[3]", 0, 8) + "}", f32x2)),
                      "tensor \"a\": data_offsets [0, 8) hold 8 bytes, but shape (3) of F32 needs 12"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[0]", 8, 0) + "}", f32x2)),
                      "data_offsets [8, 0) end before they begin"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", f32x2)),
                      "tensor \"a\": data_offsets must be [begin, end], got [0]"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", f32x2)),
                      "data_offsets must hold non-negative integers, got -8"));
  // Tensors must tile the data section.
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[2]", 0, 8) + "," +
                                                               entry("b", "F32", "[2]", 4, 12) + "}",
                                                           f32x2 + raw<float>({3.0f}))),
                      "tensor \"b\" at [4, 12) overlaps tensor \"a\" at [0, 8)"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[2]", 0, 8) + "," +
                                                               entry("b", "F32", "[1]", 12, 16) + "}",
                                                           f32x2 + f32x2)),
                      "bytes [8, 12) of the data section belong to no tensor"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(one(), f32x2 + "junk")),
                      "4 bytes of trailing data after the last tensor"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(one(), f32x2, /*pad=*/false) + "x"),
                      "1 bytes of trailing data"));
  // Duplicates and malformed entries.
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes("{" + entry("a", "F32", "[2]", 0, 8) + "," +
                                                               entry("a", "F32", "[2]", 0, 8) + "}",
                                                           f32x2)),
                      "duplicate tensor name \"a\""));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f32x2)),
                      "duplicate key \"dtype\" in the header"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", f32x2)),
                      "tensor \"a\": missing field \"shape\""));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", f32x2)),
                      "tensor \"a\": unknown field \"x\""));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(R"({"a":[1]})", "")),
                      "tensor \"a\": expected an object with dtype, shape and data_offsets"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(one(R"(,"__metadata__":{"epoch":3})"), f32x2)),
                      "__metadata__ \"epoch\" must be a string, got 3"));
  BOOST_TEST(contains(load_error_of(dir, safetensors_bytes(one(R"(,"__metadata__":[])"), f32x2)),
                      "__metadata__ must be a map of strings"));

  // A valid file cut short inside its data.
  const fs::path good = dir / "good.safetensors";
  save_safetensors(good, {{"w", from_vector<float>({1, 2, 3, 4}, {4})}});
  const std::string bytes = read_bytes(good);
  BOOST_TEST(contains(load_error_of(dir, bytes.substr(0, bytes.size() - 4)), "run past the data section (12 bytes)"));

  BOOST_TEST(contains(
      [&] {
        try {
          load_safetensors(dir / "absent.safetensors");
        } catch (const IoError& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      "load_safetensors: '" + (dir / "absent.safetensors").string() + "': cannot open: No such file or directory"));
}

BOOST_AUTO_TEST_CASE(oversized_headers_are_refused_before_allocation) {
  test::TempDir dir("st_huge_header");
  const fs::path path = dir / "huge.safetensors";
  write_bytes(path, le64(150'000'000) + "{}");
  fs::resize_file(path, 150'000'100);  // sparse: the length fits in the file
  try {
    load_safetensors(path);
    BOOST_ERROR("expected an IoError");
  } catch (const IoError& e) {
    BOOST_TEST(contains(e.what(), "the header length 150000000 exceeds the 100000000 byte limit"), e.what());
  }
}

BOOST_AUTO_TEST_CASE(a_successful_save_replaces_the_file_and_leaves_no_temporary) {
  test::TempDir dir("st_replace");
  const fs::path path = dir / "ckpt.safetensors";
  save_safetensors(path, {{"w", from_vector<float>({1, 2}, {2})}});
  save_safetensors(path, {{"w", from_vector<float>({3, 4, 5}, {3})}});
  BOOST_TEST((load_safetensors(path).tensors.at("w").to_vector<float>() == std::vector<float>{3, 4, 5}));
  BOOST_TEST((files_in(dir.path()) == std::vector<std::string>{"ckpt.safetensors"}));
}

BOOST_AUTO_TEST_CASE(a_failed_save_keeps_the_previous_file) {
  test::TempDir dir("st_atomic");
  const fs::path path = dir / "ckpt.safetensors";
  save_safetensors(path, {{"w", from_vector<float>({1, 2}, {2})}});
  const std::string before = read_bytes(path);
  const auto unchanged = [&](const char* what) {
    BOOST_TEST(read_bytes(path) == before, what);
    BOOST_TEST((files_in(dir.path()) == std::vector<std::string>{"ckpt.safetensors"}), what);
    BOOST_TEST((load_safetensors(path).tensors.at("w").to_vector<float>() == std::vector<float>{1, 2}), what);
  };
  const TensorMap big{{"w", zeros({1 << 20})}};  // 4 MiB

  // The write fails half way (file size limit: the header fits, the data does not).
  {
    rlimit old{};
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG, not a signal
    rlimit small = old;
    small.rlim_cur = 1 << 16;
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
      save_safetensors(path, big);
    } catch (const IoError& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, previous_handler);
    BOOST_TEST(contains(message, "save_safetensors: '" + path.string() + "': write failed: File too large"), message);
    unchanged("write failure");
  }

  // The temporary file cannot be created (no file descriptors left).
  {
    rlimit old{};
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    rlimit none = old;
    none.rlim_cur = 3;
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &none) == 0);
    std::string message;
    try {
      save_safetensors(path, big);
    } catch (const IoError& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_NOFILE, &old);
    BOOST_TEST(contains(message, "cannot create a temporary file in '" + dir.path().string() + "'"), message);
    unchanged("no temporary file");
  }

  // A tensor that cannot be written is found before anything is written.
  BOOST_CHECK_THROW(save_safetensors(path, {{"w", zeros({2})}, {"z", Tensor()}}), IoError);
  unchanged("undefined tensor");
  BOOST_CHECK_THROW(save_safetensors(path, {{"__metadata__", zeros({2})}}), IoError);
  unchanged("reserved name");
  BOOST_CHECK_EXCEPTION(save_safetensors(path, {{"w\xff", zeros({2})}}), IoError, [](const IoError& e) {
    return contains(e.what(), "cannot encode the header");  // JSON needs UTF-8 names
  });
  unchanged("invalid UTF-8 name");

  // The rename fails: the target is a directory; it and the directory around it stay as they were.
  const fs::path occupied = dir / "occupied";
  fs::create_directory(occupied);
  fs::remove(path);
  try {
    save_safetensors(occupied, big);
    BOOST_ERROR("expected an IoError");
  } catch (const IoError& e) {
    BOOST_TEST(contains(e.what(), "cannot replace it with the new file"), e.what());
  }
  BOOST_TEST(fs::is_directory(occupied));
  BOOST_TEST((files_in(dir.path()) == std::vector<std::string>{"occupied"}));
}

BOOST_AUTO_TEST_CASE(an_unwritable_directory_keeps_the_previous_file) {
  test::TempDir dir("st_readonly");
  const fs::path sub = dir / "ro";
  fs::create_directory(sub);
  const fs::path path = sub / "ckpt.safetensors";
  save_safetensors(path, {{"w", from_vector<float>({1, 2}, {2})}});
  const std::string before = read_bytes(path);
  fs::permissions(sub, fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() == 0) {  // root writes anyway; the descriptor-limit case above covers this path
    fs::permissions(sub, fs::perms::owner_all);
    BOOST_TEST_MESSAGE("running as root: directory permissions cannot stop the write; skipped");
    return;
  }
  BOOST_CHECK_EXCEPTION(save_safetensors(path, {{"w", zeros({3})}}), IoError, [&](const IoError& e) {
    return contains(e.what(), "cannot create a temporary file") && contains(e.what(), "Permission denied");
  });
  fs::permissions(sub, fs::perms::owner_all);
  BOOST_TEST(read_bytes(path) == before);
}

BOOST_AUTO_TEST_CASE(check_tensor_shapes_lists_every_mismatch_at_once) {
  const TensorMap loaded{{"a", zeros({2, 3})}, {"b", zeros({4})}, {"c", zeros({1})}, {"e", zeros({7})}};
  const std::map<std::string, Shape> expected{{"a", {3, 2}}, {"b", {4}}, {"d", {5}}, {"e", {7, 1}}, {"f", {}}};
  std::string message;
  try {
    check_tensor_shapes(loaded, expected, "checkpoint runs/x/model.safetensors");
  } catch (const IoError& e) {
    message = e.what();
  }
  BOOST_TEST(message ==
             "checkpoint runs/x/model.safetensors: tensors do not match (2 missing, 1 unexpected, 2 wrong shape):\n"
             "  missing: d (5)\n"
             "  missing: f ()\n"
             "  unexpected: c (1)\n"
             "  wrong shape: a is (2,3), expected (3,2)\n"
             "  wrong shape: e is (7), expected (7,1)");
  BOOST_CHECK_NO_THROW(check_tensor_shapes(loaded, {{"a", {2, 3}}, {"b", {4}}, {"c", {1}}, {"e", {7}}}, "x"));
}

BOOST_AUTO_TEST_SUITE_END()
