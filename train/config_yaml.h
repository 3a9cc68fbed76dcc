// The YAML side of the training config: where a value comes from and how an error names it
// (file:line:column or --set), the codecs of the generic value kinds (bounded integers and
// numbers, booleans, choices, paths, registered names), the text helpers and the one-document
// loader. train/config.cpp builds the schema on them. Private to train/.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "tessera/autograd/error.h"

namespace tessera::train::yaml_codec {

// ---------------------------------------------------------------- text

std::string join_path(std::string_view prefix, std::string_view key);
std::vector<std::string> split_path(std::string_view path);
std::string_view last_segment(std::string_view path);
// A YAML double-quoted string: safe for any text (paths like "null" or "*x" included).
std::string yaml_quoted(std::string_view s);
// User input quoted for a message, cut so that the message stays one readable line.
std::string echoed(std::string_view s);
// Shortest text that reads back as the same double, always recognisable as a float.
std::string format_double(double v);
template <class T>
std::optional<T> parse_integer(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return std::nullopt;
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}
std::optional<double> parse_number(std::string_view s);  // finite numbers only
std::optional<bool> parse_bool(std::string_view s);
// A node as short flow YAML, for "got ..." in messages; describe() adds "a list"/"a map".
std::string flow_text(const YAML::Node& n);
std::string describe(const YAML::Node& n);
// " (did you mean x?)" for the candidate a typo most plausibly meant, or "".
std::optional<std::string> closest(std::string_view typed, const std::vector<std::string>& candidates);
std::string did_you_mean(std::string_view typed, const std::vector<std::string>& candidates);

// ---------------------------------------------------------------- where values come from

// Where values come from: a file (marks give line:column) or one --set override.
struct Source {
  std::string name;           // file name or "<string>"
  std::string override_path;  // set for --set values: messages name it instead of a line
};

// ConfigError "<where>: <key>: <message>", where is file:line:column or "--set <key>".
[[noreturn]] void fail_at(const Source& src, const YAML::Mark& mark, std::string_view key, std::string_view message);

// A value being parsed: its key path, its node and the position to report.
struct Ctx {
  const Source& src;
  std::string key;
  YAML::Node node;
  YAML::Mark mark;

  [[noreturn]] void fail(std::string_view message) const { fail_at(src, mark, key, message); }
  [[noreturn]] void expected(std::string_view what) const {
    fail(fmt::format("expected {}, got {}", what, describe(node)));
  }
  bool is_null() const { return !node.IsDefined() || node.IsNull(); }
  const std::string* scalar() const { return node.IsDefined() && node.IsScalar() ? &node.Scalar() : nullptr; }
  Ctx sub(std::string_view name, const YAML::Node& n, const YAML::Mark& fallback) const {
    return {src, fmt::format("{}.{}", key, name), n, n.IsNull() ? fallback : n.Mark()};
  }
  Ctx item(std::size_t i, const YAML::Node& n) const {
    return {src, fmt::format("{}[{}]", key, i), n, n.IsNull() ? mark : n.Mark()};
  }
};

// The one document of `yaml` (Null when empty); ConfigError for invalid YAML or several documents.
YAML::Node load_single_document(const std::string& yaml, const Source& src);

// ---------------------------------------------------------------- codecs
// Each parses and validates a node into a value, dumps a value as flow YAML, and describes
// its type and allowed range for the docs.

template <class E> using NameTable = std::span<const std::pair<std::string_view, E>>;


template <class E>
std::string_view name_of(NameTable<E> names, E value) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  return "?";
}

// Every integer key has both bounds: they keep every size derived from the config
// (elements, bytes, steps, threads) far from overflow; what fits them but not the machine
// is the memory check's to refuse (train/memory.h).
template <class T>
struct Integer {
  T min;
  T max;
  std::string phrase() const { return fmt::format("an integer from {} to {}", min, max); }
  std::string type() const { return "int"; }
  std::string range() const { return fmt::format("{} to {}", min, max); }
  void parse(const Ctx& c, T& out) const {
    const std::optional<T> v = c.scalar() ? parse_integer<T>(*c.scalar()) : std::nullopt;
    if (!v || *v < min || *v > max) c.expected(phrase());
    out = *v;
  }
  std::string dump(T v) const { return fmt::format("{}", v); }
};

// Every float key has both bounds too: finite inputs of any size would otherwise reach
// products such as warm-up epochs times steps per epoch.
struct Number {
  double low;
  bool low_closed;
  double high;
  bool high_closed;

  bool contains(double v) const {
    if (low_closed ? v < low : v <= low) return false;
    return high_closed ? v <= high : v < high;
  }
  std::string phrase() const { return "a number in " + range(); }
  std::string type() const { return "float"; }
  std::string range() const {
    return fmt::format("{}{}, {}{}", low_closed ? '[' : '(', low, high, high_closed ? ']' : ')');
  }
  double read(const Ctx& c) const {
    const std::optional<double> v = c.scalar() ? parse_number(*c.scalar()) : std::nullopt;
    if (!v || !contains(*v)) c.expected(phrase());
    return *v;
  }
  void parse(const Ctx& c, double& out) const { out = read(c); }
  std::string dump(double v) const { return format_double(v); }
};

struct Boolean {
  std::string type() const { return "bool"; }
  std::string range() const { return "true | false"; }
  void parse(const Ctx& c, bool& out) const {
    const std::optional<bool> v = c.scalar() ? parse_bool(*c.scalar()) : std::nullopt;
    if (!v) c.expected("true or false");
    out = *v;
  }
  std::string dump(bool v) const { return v ? "true" : "false"; }
};

template <class E>
struct Choice {
  NameTable<E> names;
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    for (const auto& [name, v] : names) out.emplace_back(name);
    return out;
  }
  std::string type() const { return "string"; }
  std::string range() const { return fmt::format("{}", fmt::join(list(), " | ")); }
  void parse(const Ctx& c, E& out) const {
    if (const std::string* s = c.scalar())
      for (const auto& [name, v] : names)
        if (name == *s) {
          out = v;
          return;
        }
    c.fail(fmt::format("expected one of {}, got {}{}", fmt::join(list(), ", "), describe(c.node),
                       c.scalar() ? did_you_mean(*c.scalar(), list()) : ""));
  }
  std::string dump(E v) const { return std::string(name_of(names, v)); }
};

struct Path {
  std::string type() const { return "path"; }
  std::string range() const { return ""; }
  void parse(const Ctx& c, std::filesystem::path& out) const {
    if (!c.scalar()) c.expected("a path");
    out = *c.scalar();
  }
  std::string dump(const std::filesystem::path& p) const { return yaml_quoted(p.string()); }
};

// One of the names a registry knows now (datasets; the program may have added its own).
struct RegisteredName {
  std::vector<std::string> (*names)();
  std::string type() const { return "string"; }
  std::string range() const { return fmt::format("{}", fmt::join(names(), " | ")); }
  void parse(const Ctx& c, std::string& out) const {
    const std::vector<std::string> known = names();
    if (const std::string* s = c.scalar())
      if (std::find(known.begin(), known.end(), *s) != known.end()) {
        out = *s;
        return;
      }
    c.fail(fmt::format("expected one of {}, got {}{}", fmt::join(known, ", "), describe(c.node),
                       c.scalar() ? did_you_mean(*c.scalar(), known) : ""));
  }
  std::string dump(const std::string& v) const { return v; }
};

// One of a fixed list of names (a model's choice keys).
struct OneOf {
  std::vector<std::string> names;
  std::string type() const { return "string"; }
  std::string range() const { return fmt::format("{}", fmt::join(names, " | ")); }
  void parse(const Ctx& c, std::string& out) const {
    if (const std::string* s = c.scalar(); s && std::find(names.begin(), names.end(), *s) != names.end()) {
      out = *s;
      return;
    }
    c.fail(fmt::format("expected one of {}, got {}{}", fmt::join(names, ", "), describe(c.node),
                       c.scalar() ? did_you_mean(*c.scalar(), names) : ""));
  }
  std::string dump(const std::string& v) const { return v; }
};

// An int (a square image) or [height, width], each side from min to max.
struct ImageSize {
  std::int64_t min, max;
  std::string type() const { return "int or [height, width]"; }
  std::string range() const { return fmt::format("each {} to {}", min, max); }
  void parse(const Ctx& c, std::array<std::int64_t, 2>& out) const {
    const Integer<std::int64_t> side{min, max};
    const auto wrong = [&] { c.expected(fmt::format("an integer from {} to {} or [height, width]", min, max)); };
    if (c.scalar()) {
      const auto v = parse_integer<std::int64_t>(*c.scalar());
      if (!v || *v < min || *v > max) wrong();
      out = {*v, *v};
    } else if (c.node.IsDefined() && c.node.IsSequence()) {
      if (c.node.size() != 2) wrong();
      std::array<std::int64_t, 2> hw{};
      for (std::size_t i = 0; i < 2; ++i) side.parse(c.item(i, c.node[i]), hw[i]);
      out = hw;
    } else {
      wrong();
    }
  }
  std::string dump(const std::array<std::int64_t, 2>& hw) const {
    return hw[0] == hw[1] ? fmt::format("{}", hw[0]) : fmt::format("[{}, {}]", hw[0], hw[1]);
  }
};

}  // namespace tessera::train::yaml_codec
